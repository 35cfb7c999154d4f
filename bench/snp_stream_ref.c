/*
 * The SEV-SNP reference client for `npm run bench`: streams an image into an SNP guest the plain
 * way — pread a chunk into the VMM's memory, KVM_SEV_SNP_LAUNCH_UPDATE it into guest_memfd
 * (repeating the call while the kernel reports partial progress), repeat — on the system's
 * <linux/kvm.h> plus the project's UAPI header for what 6.1 lacks. The Node API does the same
 * through SnpLaunch#streamFile; the benchmark reports the ratio, run by run.
 *
 * usage: snp_stream_ref IMAGE CHUNK_BYTES [--no-read]  → one JSON line {bytes, seconds, chunks}
 *        --no-read: the image is read in first and only the launch is timed (the firmware's
 *        share of the overlap limit)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../test/c/conformance/new_uapi.h"

static int sev_fd;

static void die(const char *what) {
  fprintf(stderr, "snp_stream_ref: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int sev_op(int vm, uint32_t id, void *data) {
  struct kvm_sev_cmd cmd = {.id = id, .data = (uint64_t)(uintptr_t)data, .sev_fd = (uint32_t)sev_fd};
  int rc = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd);
  if (rc < 0) fprintf(stderr, "snp_stream_ref: sev op %u: %s (fw error %u)\n", id, strerror(errno), cmd.error);
  return rc;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void read_range(int img, uint8_t *dst, size_t off, size_t len) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pread(img, dst + done, len - done, (off_t)(off + done));
    if (n <= 0) die("pread");
    done += (size_t)n;
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: snp_stream_ref IMAGE CHUNK_BYTES [--no-read]\n");
    return 2;
  }
  const int no_read = argc > 3 && strcmp(argv[3], "--no-read") == 0;
  int img = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (img < 0) die("open image");
  struct stat st;
  if (fstat(img, &st) < 0) die("stat image");
  size_t size = (size_t)st.st_size;
  size_t chunk = strtoull(argv[2], NULL, 0);
  if (size == 0 || size % 4096 || chunk == 0 || chunk % 4096) {
    fprintf(stderr, "snp_stream_ref: image size and chunk must be non-zero multiples of 4096\n");
    return 2;
  }

  sev_fd = open("/dev/sev", O_RDWR | O_CLOEXEC);
  if (sev_fd < 0) die("open /dev/sev");
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SNP_VM);
  if (vm < 0) die("KVM_CREATE_VM(KVM_X86_SNP_VM)");
  struct kvm_create_guest_memfd gm = {.size = size};
  int gmem = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gm);
  if (gmem < 0) die("KVM_CREATE_GUEST_MEMFD");
  uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  struct kvm_userspace_memory_region2 region = {.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = 0,
      .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)mem, .guest_memfd_offset = 0, .guest_memfd = (uint32_t)gmem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region) < 0) die("KVM_SET_USER_MEMORY_REGION2");
  struct kvm_memory_attributes attrs = {.address = 0, .size = size, .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE};
  if (ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &attrs) < 0) die("KVM_SET_MEMORY_ATTRIBUTES");
  struct kvm_sev_init init = {.ghcb_version = 2};
  if (sev_op(vm, KVM_SEV_INIT2, &init) < 0) return 1;
  struct kvm_sev_snp_launch_start start = {.policy = 0x30000};
  if (sev_op(vm, KVM_SEV_SNP_LAUNCH_START, &start) < 0) return 1;

  if (no_read) read_range(img, mem, 0, size);
  double t0 = now();
  size_t chunks = 0;
  for (size_t off = 0; off < size; off += chunk) {
    size_t len = size - off < chunk ? size - off : chunk;
    if (!no_read) read_range(img, mem + off, off, len);
    struct kvm_sev_snp_launch_update up = {.gfn_start = off / 4096, .uaddr = (uint64_t)(uintptr_t)(mem + off), .len = len,
                                           .type = KVM_SEV_SNP_PAGE_TYPE_NORMAL};
    while (up.len) {  // the kernel may do part of it and say so
      if (sev_op(vm, KVM_SEV_SNP_LAUNCH_UPDATE, &up) < 0) return 1;
    }
    chunks++;
  }
  double t1 = now();
  printf("{\"bytes\":%zu,\"seconds\":%.6f,\"chunks\":%zu,\"measure\":\"%zu\"}\n", size, t1 - t0, chunks, (size_t)getpid());

  munmap(mem, size);
  close(gmem);
  close(vm);
  close(kvm);
  close(sev_fd);
  close(img);
  return 0;
}
