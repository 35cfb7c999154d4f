/*
 * kvm_fuzz: throws random and malformed input at a KVM — whichever answers /dev/kvm: the
 * kernel's, or the emulator's software KVM — and checks that every call ends the way the kernel
 * ends it: a result, or -1 with an errno the kernel uses; never a crash, a hang or a leaked fd.
 *
 *   cc -O1 -o kvm_fuzz test/c/kvm_fuzz.c && ./kvm_fuzz [SEED] [ROUNDS]
 *
 * Rounds mix: random ioctl numbers and arguments (good buffers of random bytes, NULL, unmapped
 * and kernel-half pointers) on the system, VM and vCPU fds; random memslots (overlaps, moves,
 * deletes, odd sizes and flags); random register state; and KVM_RUN on random guest code,
 * each run cut short by a timer signal (KVM_RUN returns EINTR). Prints TAP-style lines.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include "tap.h"

static uint64_t rng;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static uint64_t below(uint64_t n) { return n ? next() % n : 0; }


/* The errnos KVM's ioctls return for bad input. */
static int kernel_errno(int e) {
  switch (e) {
    case EINVAL: case EFAULT: case ENOTTY: case EEXIST: case ENOMEM: case E2BIG: case EBUSY: case EINTR:
    case EBADF: case EIO: case ENOENT: case EPERM: case ENXIO: case EAGAIN: case ENOSPC: case EACCES:
    case ENODEV: case EOPNOTSUPP: case ERANGE:
      return 1;
  }
  return 0;
}

static long calls, unexpected;
static void note(long r, const char *what) {
  calls++;
  if (r < 0 && !kernel_errno(errno)) {
    unexpected++;
    if (unexpected < 10) printf("# %s: errno %d (%s)\n", what, errno, strerror(errno));
  }
}

/* The open fds (the listing's own excluded), as a count and, given `open`, a set. */
static int count_fds_into(unsigned char *open, int max) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd == dirfd(d)) continue;
    n++;
    if (open && fd >= 0 && fd < max) open[fd] = 1;
  }
  if (d) closedir(d);
  return n;
}
static int count_fds(void) { return count_fds_into(NULL, 0); }

/* A buffer of random bytes (the size of the ioctl's argument, at least a page), or a bad pointer.
 * An inaccessible page follows the buffer, so an argument that runs off its end faults (EFAULT)
 * instead of landing in this program's other variables. */
#define BUF_SIZE (3 * 4096)
static uint8_t *buf;
static void map_buf(void) {
  buf = mmap(NULL, BUF_SIZE + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED || mprotect(buf + BUF_SIZE, 4096, PROT_NONE) != 0) {
    perror("kvm_fuzz: buffer");
    exit(2);
  }
}
static unsigned long random_arg(void) {
  switch (below(8)) {
    case 0: return 0;
    case 1: return 8;
    case 2: return 0xffff800000000000ul;
    case 3: return (unsigned long)(buf + BUF_SIZE - 8); /* runs off the end of the buffer */
    case 4: return below(1 << 16);                      /* a small integer (capabilities, types, ids) */
    default:
      for (size_t i = 0; i < BUF_SIZE; i++) buf[i] = (uint8_t)next();
      return (unsigned long)buf;
  }
}

static unsigned long random_request(void) {
  static const unsigned long known[] = {
      KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VCPU,
      KVM_SET_USER_MEMORY_REGION, KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR, KVM_GET_REGS, KVM_SET_REGS,
      KVM_GET_SREGS, KVM_SET_SREGS, KVM_GET_FPU, KVM_SET_FPU, KVM_TRANSLATE, KVM_INTERRUPT, KVM_GET_DEBUGREGS,
      KVM_SET_DEBUGREGS, KVM_GET_MP_STATE, KVM_SET_MP_STATE, KVM_SET_GUEST_DEBUG, KVM_GET_XCRS, KVM_SET_XCRS,
      KVM_MEMORY_ENCRYPT_OP, KVM_MEMORY_ENCRYPT_REG_REGION, KVM_MEMORY_ENCRYPT_UNREG_REGION, KVM_GET_DEVICE_ATTR,
      KVM_HAS_DEVICE_ATTR,
      /* flexible-array structs: the C numbers */
      0xc008ae88 /* GET_MSRS */, 0x4008ae89 /* SET_MSRS */, 0xc008ae05 /* GET_SUPPORTED_CPUID */,
      0x4008ae90 /* SET_CPUID2 */, 0xc008ae91 /* GET_CPUID2 */, 0xc004ae02 /* GET_MSR_INDEX_LIST */,
      0x4004ae8b /* SET_SIGNAL_MASK */, 0x9000aea4 /* GET_XSAVE */, 0x5000aea5 /* SET_XSAVE */};
  if (below(4)) return known[below(sizeof known / sizeof known[0])];
  /* Anything in KVM's ioctl space, with a random direction and size. */
  return _IOC(below(4), KVMIO, below(256), below(1 << 14));
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
  (void)sig;
  alarms++;
}

/* KVM_MEMORY_ENCRYPT_OP on `vm`: often first made an SEV guest (INIT or INIT2, LAUNCH_START with
 * a random policy), then known command ids (launch, DBG, SEND_*, RECEIVE_*, SNP, 7.2's
 * ENABLE_REQ_CERTS) with random data whose first words are plausible address/length pairs. */
static int sev_fd = -1;
static void sev_round(int vm, unsigned long type) {
  struct kvm_sev_cmd cmd;
  if (below(2)) {
    memset(buf, 0, 64);
    cmd = (struct kvm_sev_cmd){.id = type == 0 ? (uint32_t)below(2) /* INIT, ES_INIT */ : 22 /* INIT2 */,
                               .data = type == 0 ? 0 : (uint64_t)(uintptr_t)buf, .sev_fd = (uint32_t)sev_fd};
    note(ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd), "KVM_SEV_INIT*");
    uint32_t policy = (uint32_t)below(16);
    memset(buf, 0, 64);
    memcpy(buf + 4, &policy, 4); /* struct kvm_sev_launch_start: handle, policy, ... */
    cmd = (struct kvm_sev_cmd){.id = 2 /* LAUNCH_START */, .data = (uint64_t)(uintptr_t)buf, .sev_fd = (uint32_t)sev_fd};
    note(ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd), "KVM_SEV_LAUNCH_START");
  }
  for (int i = 0; i < 30; i++) {
    static const uint32_t ids[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103};
    for (size_t k = 0; k < 256; k++) buf[k] = (uint8_t)next();
    for (int w = 0; w < 6; w += 2) { /* pointer, length pairs into the buffer's own pages */
      uint64_t addr = below(4) ? (uint64_t)(uintptr_t)(buf + 4096 + below(BUF_SIZE - 4096)) : next();
      uint64_t len = below(3) ? below(8192) : next() & 0xffffffff;
      memcpy(buf + w * 8, &addr, 8);
      memcpy(buf + w * 8 + 8, &len, 4);
    }
    cmd = (struct kvm_sev_cmd){.id = below(8) ? ids[below(sizeof ids / sizeof ids[0])] : (uint32_t)next(),
                               .data = below(8) ? (uint64_t)(uintptr_t)buf : random_arg(),
                               .sev_fd = below(8) ? (uint32_t)sev_fd : (uint32_t)next()};
    note(ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd), "KVM_MEMORY_ENCRYPT_OP");
  }
}

/* A VM with a random layout of memslots, a vCPU, random registers, random code; run it. */
static void vm_round(int kvm, int mmap_size) {
  unsigned long type = below(3) == 0 ? below(6) : 0;
  int vm = ioctl(kvm, KVM_CREATE_VM, type);
  note(vm, "KVM_CREATE_VM");
  if (vm < 0) return;
  if (below(2)) sev_round(vm, type);
  uint8_t *mem[4] = {0};
  size_t size[4] = {0};
  for (int s = 0; s < 4; s++) {
    size[s] = (1 + below(16)) * 4096;
    mem[s] = mmap(NULL, size[s], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < size[s]; i += 8) *(uint64_t *)(mem[s] + i) = below(4) ? next() : 0xf4f4f4f4f4f4f4f4ull;
    struct kvm_userspace_memory_region r = {.slot = (uint32_t)(below(8) == 0 ? next() : (uint64_t)s),
                                            .flags = (uint32_t)(below(4) == 0 ? below(8) : 0),
                                            .guest_phys_addr = below(4) == 0 ? next() : below(64) * 4096,
                                            .memory_size = below(8) == 0 ? below(1 << 20) : size[s],
                                            .userspace_addr = below(8) == 0 ? next() : (uint64_t)(uintptr_t)mem[s]};
    note(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION");
  }
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, below(4) == 0 ? next() & 0xffff : 0);
  note(vcpu, "KVM_CREATE_VCPU");
  if (vcpu >= 0) {
    struct kvm_run *run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) == 0) {
      s.cs.base = below(2) ? 0 : below(64) * 4096;
      s.cs.selector = 0;
      if (below(4) == 0) s.cr0 |= below(2) ? 1 : 0x80000001;
      if (below(4) == 0) s.efer = next() & 0xd01;
      if (below(8) == 0) s.cs.l = 1;
      note(ioctl(vcpu, KVM_SET_SREGS, &s), "KVM_SET_SREGS");
    }
    struct kvm_regs r = {.rip = below(64) * 256, .rsp = below(1 << 16), .rflags = 2 | (below(2) << 9)};
    note(ioctl(vcpu, KVM_SET_REGS, &r), "KVM_SET_REGS");
    if (run != MAP_FAILED) {
      for (int i = 0; i < 6; i++) {
        struct itimerval t = {.it_value = {.tv_usec = 2000}};
        setitimer(ITIMER_REAL, &t, NULL);
        long rr = ioctl(vcpu, KVM_RUN, 0);
        struct itimerval off = {0};
        setitimer(ITIMER_REAL, &off, NULL);
        note(rr, "KVM_RUN");
        if (rr == 0 && run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_IN) {
          memset((uint8_t *)run + run->io.data_offset, 0x5a, 4096 - run->io.data_offset % 4096);
        }
        if (rr == 0 && (run->exit_reason == KVM_EXIT_SHUTDOWN || run->exit_reason == KVM_EXIT_FAIL_ENTRY ||
                        run->exit_reason == KVM_EXIT_INTERNAL_ERROR))
          break;
      }
      munmap(run, (size_t)mmap_size);
    }
    /* Random ioctls on the vCPU, then on the VM. */
    for (int i = 0; i < 20; i++) note(ioctl(vcpu, random_request(), random_arg()), "vCPU ioctl");
    close(vcpu);
  }
  for (int i = 0; i < 20; i++) note(ioctl(vm, random_request(), random_arg()), "VM ioctl");
  close(vm);
  for (int s = 0; s < 4; s++) munmap(mem[s], size[s]);
}

int main(int argc, char **argv) {
  rng = argc > 1 ? strtoull(argv[1], NULL, 0) : 0x5eed;
  if (!rng) rng = 1;
  long rounds = argc > 2 ? atol(argv[2]) : 200;
  map_buf();
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm; /* no SA_RESTART: KVM_RUN returns EINTR */
  sigaction(SIGALRM, &sa, NULL);

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  CHECK(kvm >= 0, "open /dev/kvm");
  if (kvm < 0) return 1;
  int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  sev_fd = open("/dev/sev", O_RDWR | O_CLOEXEC); /* -1 without one: the commands then fail as they must */
  static unsigned char had[4096];
  int fds = count_fds_into(had, 4096);
  for (long i = 0; i < rounds; i++) {
    for (int j = 0; j < 20; j++) note(ioctl(kvm, random_request(), random_arg()), "system ioctl");
    /* A VM created by a random system ioctl above is not ours to keep: close what leaked in. */
    vm_round(kvm, mmap_size);
  }
  /* fds any random KVM_CREATE_VM / KVM_CREATE_VCPU above returned were never closed by design:
   * close every fd we did not have, then compare. */
  for (int fd = 3; fd < 4096; fd++)
    if (!had[fd]) close(fd);
  CHECK(calls > 0 && unexpected == 0, "%ld calls, every failure with an errno KVM uses (%ld others)", calls, unexpected);
  /* Random guests may all exit before a 2 ms timer fires (on a fast host KVM they do): a guest
   * that spins (jmp $) makes sure a timer signal ends a KVM_RUN with EINTR. */
  int spin_vm = ioctl(kvm, KVM_CREATE_VM, 0);
  uint8_t *spin_mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  long spin = -1;
  int spin_errno = 0;
  if (spin_vm >= 0 && spin_mem != MAP_FAILED) {
    spin_mem[0] = 0xeb, spin_mem[1] = 0xfe; /* jmp $ */
    struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = 4096,
                                                  .userspace_addr = (uint64_t)(uintptr_t)spin_mem};
    int vcpu = ioctl(spin_vm, KVM_SET_USER_MEMORY_REGION, &region) == 0 ? ioctl(spin_vm, KVM_CREATE_VCPU, 0) : -1;
    struct kvm_sregs s;
    if (vcpu >= 0 && ioctl(vcpu, KVM_GET_SREGS, &s) == 0) {
      s.cs.base = 0;
      s.cs.selector = 0;
      struct kvm_regs r = {.rip = 0, .rflags = 2};
      if (ioctl(vcpu, KVM_SET_SREGS, &s) == 0 && ioctl(vcpu, KVM_SET_REGS, &r) == 0) {
        const sig_atomic_t before = alarms;
        struct itimerval t = {.it_value = {.tv_usec = 2000}}, off = {0};
        setitimer(ITIMER_REAL, &t, NULL);
        spin = ioctl(vcpu, KVM_RUN, 0);
        spin_errno = errno;
        setitimer(ITIMER_REAL, &off, NULL);
        if (alarms == before) spin = 0; /* ended without the signal */
      }
    }
    if (vcpu >= 0) close(vcpu);
  }
  if (spin_vm >= 0) close(spin_vm);
  if (spin_mem != MAP_FAILED) munmap(spin_mem, 4096);
  printf("# timer signals during the random runs: %d\n", (int)alarms);
  CHECK(spin == -1 && spin_errno == EINTR, "a timer signal ends a spinning guest's KVM_RUN with EINTR (%ld, %s)", spin,
        strerror(spin_errno));
  CHECK(count_fds() <= fds, "no fd leaked (%d before, %d after)", fds, count_fds());
  close(kvm);
  if (sev_fd >= 0) close(sev_fd);
  return failures ? 1 : 0;
}
