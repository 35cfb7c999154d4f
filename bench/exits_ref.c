/*
 * exits_ref: the reference for the guest-exit benchmark. A real-mode guest loops on
 * `out 0x10, al; jmp` and every KVM_RUN returns with KVM_EXIT_IO; this client does nothing else
 * but call KVM_RUN, as a VMM's vCPU loop does at its fastest. Prints exits per second.
 *
 *   cc -O2 -o exits_ref bench/exits_ref.c && ./exits_ref [EXITS]
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) return perror("/dev/kvm"), 1;
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  uint8_t *mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  static const uint8_t code[] = {0xe6, 0x10, 0xeb, 0xfc}; /* l: out 0x10, al; jmp l */
  memcpy(mem + 0x1000, code, sizeof code);
  struct kvm_userspace_memory_region r = {.slot = 0, .memory_size = 0x10000, .userspace_addr = (uintptr_t)mem};
  if (vm < 0 || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) return perror("VM"), 1;
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  struct kvm_sregs s;
  ioctl(vcpu, KVM_GET_SREGS, &s);
  s.cs.base = 0;
  s.cs.selector = 0;
  ioctl(vcpu, KVM_SET_SREGS, &s);
  struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
  ioctl(vcpu, KVM_SET_REGS, &regs);
  for (int i = 0; i < 1000; i++) ioctl(vcpu, KVM_RUN, 0);
  double t = now();
  for (long i = 0; i < n; i++) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO) return fprintf(stderr, "unexpected exit\n"), 1;
  }
  t = now() - t;
  printf("%.0f\n", n / t);
  return 0;
}
