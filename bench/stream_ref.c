/*
 * The reference client for `npm run bench`: streams an image into an SEV guest's memory the
 * plain way — pread a chunk into guest memory, KVM_SEV_LAUNCH_UPDATE_DATA it, repeat — with the
 * system's own <linux/kvm.h> (6.1 is enough: KVM_SEV_INIT on a default VM). The Node API does the
 * same work through node-sev; the benchmark reports the ratio of the two, run by run.
 *
 * usage: stream_ref IMAGE CHUNK_BYTES  → one JSON line {bytes, seconds, chunks}
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

static int sev_fd;

static void die(const char *what) {
  fprintf(stderr, "stream_ref: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int sev_op(int vm, uint32_t id, void *data) {
  struct kvm_sev_cmd cmd = {.id = id, .data = (uint64_t)(uintptr_t)data, .sev_fd = (uint32_t)sev_fd};
  int rc = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd);
  if (rc < 0) fprintf(stderr, "stream_ref: sev op %u: %s (fw error %u)\n", id, strerror(errno), cmd.error);
  return rc;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: stream_ref IMAGE CHUNK_BYTES\n");
    return 2;
  }
  int img = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (img < 0) die("open image");
  struct stat st;
  if (fstat(img, &st) < 0) die("stat image");
  size_t size = (size_t)st.st_size;
  size_t chunk = strtoull(argv[2], NULL, 0);
  if (size == 0 || size % 4096 || chunk == 0 || chunk % 4096) {
    fprintf(stderr, "stream_ref: image size and chunk must be non-zero multiples of 4096\n");
    return 2;
  }

  sev_fd = open("/dev/sev", O_RDWR | O_CLOEXEC);
  if (sev_fd < 0) die("open /dev/sev");
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (sev_op(vm, KVM_SEV_INIT, NULL) < 0) return 1;

  uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  struct kvm_enc_region enc = {.addr = (uint64_t)(uintptr_t)mem, .size = size};
  if (ioctl(vm, KVM_MEMORY_ENCRYPT_REG_REGION, &enc) < 0) die("KVM_MEMORY_ENCRYPT_REG_REGION");

  struct kvm_sev_launch_start start = {.policy = 0};
  if (sev_op(vm, KVM_SEV_LAUNCH_START, &start) < 0) return 1;

  double t0 = now();
  size_t chunks = 0;
  for (size_t off = 0; off < size; off += chunk) {
    size_t len = size - off < chunk ? size - off : chunk;
    for (size_t done = 0; done < len;) {
      ssize_t n = pread(img, mem + off + done, len - done, (off_t)(off + done));
      if (n <= 0) die("pread");
      done += (size_t)n;
    }
    struct kvm_sev_launch_update_data up = {.uaddr = (uint64_t)(uintptr_t)(mem + off), .len = (uint32_t)len};
    if (sev_op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &up) < 0) return 1;
    chunks++;
  }
  double t1 = now();

  uint8_t blob[48];
  struct kvm_sev_launch_measure measure = {.uaddr = (uint64_t)(uintptr_t)blob, .len = sizeof blob};
  if (sev_op(vm, KVM_SEV_LAUNCH_MEASURE, &measure) < 0) return 1;
  printf("{\"bytes\":%zu,\"seconds\":%.6f,\"chunks\":%zu,\"measure\":\"", size, t1 - t0, chunks);
  for (int i = 0; i < 32; i++) printf("%02x", blob[i]);
  printf("\"}\n");

  ioctl(vm, KVM_MEMORY_ENCRYPT_UNREG_REGION, &enc);
  munmap(mem, size);
  close(vm);
  close(kvm);
  close(sev_fd);
  close(img);
  return 0;
}
