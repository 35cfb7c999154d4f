/* KVM's private-memory primitives (virt/kvm/kvm_main.c, virt/kvm/guest_memfd.c,
 * arch/x86/kvm/x86.c, arch/x86/kvm/mmu/mmu.c of Linux 7.2): the capabilities per VM type,
 * KVM_CREATE_GUEST_MEMFD and its fd, KVM_SET_USER_MEMORY_REGION2 with a guest_memfd,
 * KVM_SET_MEMORY_ATTRIBUTES, and KVM_EXIT_MEMORY_FAULT on a software-protected VM
 * (KVM_X86_SW_PROTECTED_VM, offered with CONFIG_KVM_SW_PROTECTED_VM). */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conformance.h"
#include "new_uapi.h"

#define PAGE 4096

static int kvm_fd = -1;
static int sw_offered;

static int create_vm(unsigned long type) { return ioctl(kvm_fd, KVM_CREATE_VM, type); }

static int gmem_create(int vm, uint64_t size, uint64_t flags) {
  struct kvm_create_guest_memfd g = {.size = size, .flags = flags};
  return ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);
}

static int region2(int vm, uint32_t slot, uint32_t flags, uint64_t gpa, uint64_t size, void* mem, int gmem,
                   uint64_t offset) {
  struct kvm_userspace_memory_region2 r = {.slot = slot, .flags = flags, .guest_phys_addr = gpa,
                                           .memory_size = size, .userspace_addr = (uintptr_t)mem,
                                           .guest_memfd_offset = offset, .guest_memfd = (uint32_t)gmem};
  return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

static int set_attrs(int vm, uint64_t address, uint64_t size, uint64_t attributes, uint64_t flags) {
  struct kvm_memory_attributes a = {.address = address, .size = size, .attributes = attributes, .flags = flags};
  return ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
}

static void* anon(size_t size) {
  return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void check_caps(void) {
  int m2 = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2);
  int gm = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
  int at = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
  int fl = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
  int mf = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_FAULT_INFO);
  EXPECT("kvm-mem.caps.system", "kvm_vm_ioctl_check_extension_generic (kvm NULL)",
         m2 == 1 && gm == 1 && at == (int)KVM_MEMORY_ATTRIBUTE_PRIVATE &&
             fl == (int)(GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED) && mf == 1,
         "/dev/kvm: USER_MEMORY2 %d, GUEST_MEMFD %d, MEMORY_ATTRIBUTES 0x%x, GUEST_MEMFD_FLAGS 0x%x, "
         "MEMORY_FAULT_INFO %d", m2, gm, at, fl, mf);
  int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
  sw_offered = types > 0 && (types & (1 << KVM_X86_SW_PROTECTED_VM));
  int vm = create_vm(KVM_X86_SW_PROTECTED_VM);
  EXPECT("kvm-mem.vm-types.sw-protected", "kvm_arch_hardware_setup, kvm_arch_init_vm",
         sw_offered ? vm >= 0 : (vm < 0 && errno == EINVAL),
         "KVM_CAP_VM_TYPES 0x%x %s SW_PROTECTED; KVM_CREATE_VM(1) -> %d", types, sw_offered ? "has" : "lacks", vm);
  if (vm >= 0) close(vm);

  static const struct {
    unsigned long type;
    const char* name;
    int attrs, flags;
  } vms[] = {
      {KVM_X86_DEFAULT_VM, "default", 0, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED},
      {KVM_X86_SW_PROTECTED_VM, "SW_PROTECTED", KVM_MEMORY_ATTRIBUTE_PRIVATE, GUEST_MEMFD_FLAG_MMAP},
      {KVM_X86_SEV_VM, "SEV", 0, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED},
  };
  int ok = 1;
  char detail[512] = "";
  for (size_t i = 0; i < sizeof vms / sizeof vms[0]; i++) {
    if (vms[i].type == KVM_X86_SW_PROTECTED_VM && !sw_offered) continue;
    int v = create_vm(vms[i].type);
    if (v < 0) {
      ok = 0;
      continue;
    }
    int a = ioctl(v, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
    int f = ioctl(v, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS);
    int g = ioctl(v, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
    ok &= a == vms[i].attrs && f == vms[i].flags && g == 1;
    size_t n = strlen(detail);
    snprintf(detail + n, sizeof detail - n, "%s: attrs 0x%x flags 0x%x gmem %d; ", vms[i].name, a, f, g);
    close(v);
  }
  EXPECT("kvm-mem.caps.per-vm-type", "kvm_supported_mem_attributes, kvm_gmem_get_supported_flags", ok, "%s", detail);
}

static void check_guest_memfd(int vm) {
  int fd = gmem_create(vm, 0x10000, 0);
  struct stat st;
  int sr = fd >= 0 ? fstat(fd, &st) : -1;
  int fdflags = fd >= 0 ? fcntl(fd, F_GETFD) : -1;
  EXPECT("kvm-mem.gmem.create", "__kvm_gmem_create",
         fd >= 0 && sr == 0 && S_ISREG(st.st_mode) && st.st_size == 0x10000 && fdflags == 0,
         "fd %d, regular %d, size 0x%llx, FD_CLOEXEC %d (want a 64 KiB regular file, not close-on-exec)", fd,
         sr == 0 && S_ISREG(st.st_mode), sr == 0 ? (unsigned long long)st.st_size : 0ULL, fdflags);
  EXPECT_ERRNO("kvm-mem.gmem.ioctl", "kvm_gmem_fops (no unlocked_ioctl)", ioctl(fd, KVM_CHECK_EXTENSION, 0), ENOTTY,
               "an ioctl on the guest_memfd");

  int r1 = gmem_create(vm, 0, 0), e1 = errno;
  int r2 = gmem_create(vm, 0x1001, 0), e2 = errno;
  int r3 = gmem_create(vm, 1ULL << 63, 0), e3 = errno;
  EXPECT("kvm-mem.gmem.bad-size", "kvm_gmem_create", r1 == -1 && e1 == EINVAL && r2 == -1 && e2 == EINVAL &&
         r3 == -1 && e3 == EINVAL, "size 0 -> %d %s, 0x1001 -> %d %s, 1<<63 -> %d %s (want EINVAL)", r1,
         strerror(e1), r2, strerror(e2), r3, strerror(e3));
  int f1 = gmem_create(vm, 0x1000, 1ULL << 2), fe1 = errno;
  int f2 = gmem_create(vm, 0x1000, GUEST_MEMFD_FLAG_INIT_SHARED), fe2 = errno;
  int f3 = gmem_create(vm, 0x1000, GUEST_MEMFD_FLAG_MMAP);
  int dvm = create_vm(KVM_X86_DEFAULT_VM);
  int f4 = gmem_create(dvm, 0x1000, GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED);
  EXPECT("kvm-mem.gmem.flags", "kvm_gmem_create (kvm_gmem_get_supported_flags)",
         f1 == -1 && fe1 == EINVAL && f2 == -1 && fe2 == EINVAL && f3 >= 0 && f4 >= 0,
         "unknown flag -> %d %s; INIT_SHARED on SW_PROTECTED -> %d %s; MMAP -> %d; MMAP|INIT_SHARED on a default VM "
         "-> %d", f1, strerror(fe1), f2, strerror(fe2), f3, f4);
  if (f3 >= 0) close(f3);
  if (f4 >= 0) close(f4);
  if (dvm >= 0) close(dvm);
  void* ro = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_ERRNO("kvm-mem.gmem.efault", "kvm_vm_ioctl (copy_from_user)", ioctl(vm, KVM_CREATE_GUEST_MEMFD, ro), EFAULT,
               "KVM_CREATE_GUEST_MEMFD from unreadable memory");
  munmap(ro, PAGE);

  int a1 = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 0x2000);
  int b1 = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0x800, 0x1000), be1 = errno;
  int b2 = fallocate(fd, 0, 0, 0x1000), be2 = errno;
  int b3 = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0xf000, 0x2000), be3 = errno;
  int a2 = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 0x10000);
  EXPECT("kvm-mem.gmem.fallocate", "kvm_gmem_fallocate",
         a1 == 0 && a2 == 0 && b1 == -1 && be1 == EINVAL && b2 == -1 && be2 == EOPNOTSUPP && b3 == -1 && be3 == EINVAL,
         "punch 0+0x2000 -> %d; unaligned punch -> %d %s; mode 0 -> %d %s; allocate past the size -> %d %s; "
         "allocate all -> %d", a1, b1, strerror(be1), b2, strerror(be2), b3, strerror(be3), a2);
  close(fd);
}

static void check_region2(int vm) {
  void* mem = anon(0x20000);
  int gmem = gmem_create(vm, 0x20000, 0);
  struct kvm_userspace_memory_region v1 = {.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .guest_phys_addr = 0,
                                           .memory_size = 0x10000, .userspace_addr = (uintptr_t)mem};
  EXPECT_ERRNO("kvm-mem.region2.v1-flag", "kvm_vm_ioctl (KVM_SET_USER_MEMORY_REGION_V1_FLAGS)",
               ioctl(vm, KVM_SET_USER_MEMORY_REGION, &v1), EINVAL, "KVM_SET_USER_MEMORY_REGION with KVM_MEM_GUEST_MEMFD");
  int ro = region2(vm, 0, KVM_MEM_GUEST_MEMFD | KVM_MEM_READONLY, 0, 0x10000, mem, gmem, 0), re = errno;
  int ld = region2(vm, 0, KVM_MEM_GUEST_MEMFD | KVM_MEM_LOG_DIRTY_PAGES, 0, 0x10000, mem, gmem, 0), le = errno;
  EXPECT("kvm-mem.region2.flags", "check_memory_region_flags", ro == -1 && re == EINVAL && ld == -1 && le == EINVAL,
         "GUEST_MEMFD|READONLY -> %d %s, GUEST_MEMFD|LOG_DIRTY_PAGES -> %d %s (want EINVAL)", ro, strerror(re), ld,
         strerror(le));
  int o1 = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, gmem, 0x800), oe1 = errno;
  int o2 = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, gmem, 0x18000), oe2 = errno;
  int o3 = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, gmem, ~0ULL << 12), oe3 = errno;
  EXPECT("kvm-mem.region2.offset", "kvm_set_memory_region, kvm_gmem_bind",
         o1 == -1 && oe1 == EINVAL && o2 == -1 && oe2 == EINVAL && o3 == -1 && oe3 == EINVAL,
         "offset 0x800 -> %d %s, past the end -> %d %s, wrapping -> %d %s (want EINVAL)", o1, strerror(oe1), o2,
         strerror(oe2), o3, strerror(oe3));
  const int unused = 1000; /* no open file has this number */
  int other_vm = create_vm(KVM_X86_SW_PROTECTED_VM);
  int other_gmem = gmem_create(other_vm, 0x10000, 0);
  int b1 = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, unused, 0), be1 = errno;
  int b2 = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, kvm_fd, 0), be2 = errno;
  int b3 = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, other_gmem, 0), be3 = errno;
  EXPECT("kvm-mem.region2.bad-fd", "kvm_gmem_bind", b1 == -1 && be1 == EBADF && b2 == -1 && be2 == EINVAL &&
         b3 == -1 && be3 == EINVAL, "closed fd -> %d %s; /dev/kvm -> %d %s; another VM's guest_memfd -> %d %s", b1,
         strerror(be1), b2, strerror(be2), b3, strerror(be3));
  close(other_gmem);
  close(other_vm);
  int ok = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, gmem, 0);
  int again = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, gmem, 0), ae = errno;
  int plain = region2(vm, 0, 0, 0, 0x10000, mem, -1, 0), pe = errno;
  EXPECT("kvm-mem.region2.bind", "kvm_set_memory_region", ok == 0 && again == -1 && ae == EINVAL && plain == -1 &&
         pe == EINVAL, "bind -> %d; the same again (private memslots are immutable) -> %d %s; dropping the flag -> "
         "%d %s", ok, again, strerror(ae), plain, strerror(pe));
  int ov = region2(vm, 1, KVM_MEM_GUEST_MEMFD, 0x100000, 0x10000, (char*)mem + 0x10000, gmem, 0x8000), ove = errno;
  int next = region2(vm, 1, KVM_MEM_GUEST_MEMFD, 0x100000, 0x10000, (char*)mem + 0x10000, gmem, 0x10000);
  EXPECT("kvm-mem.region2.binding-overlap", "kvm_gmem_bind", ov == -1 && ove == EEXIST && next == 0,
         "a second slot on bound guest_memfd pages -> %d %s; on the free half -> %d", ov, strerror(ove), next);
  int del = region2(vm, 0, 0, 0, 0, mem, -1, 0);
  int rebind = region2(vm, 2, KVM_MEM_GUEST_MEMFD, 0x200000, 0x10000, mem, gmem, 0);
  EXPECT("kvm-mem.region2.delete-unbinds", "kvm_gmem_unbind", del == 0 && rebind == 0,
         "deleting the slot -> %d; its guest_memfd range bound again -> %d", del, rebind);
  int as1 = region2(vm, 1u << 16, 0, 0x400000, 0x10000, mem, -1, 0), ase = errno;
  int dvm = create_vm(KVM_X86_DEFAULT_VM);
  int das1 = region2(dvm, 1u << 16, 0, 0x400000, 0x10000, mem, -1, 0);
  EXPECT("kvm-mem.region2.address-spaces", "kvm_set_memory_region (kvm_arch_nr_memslot_as_ids)",
         as1 == -1 && ase == EINVAL && das1 == 0, "address space 1 on SW_PROTECTED -> %d %s; on a default VM -> %d",
         as1, strerror(ase), das1);
  close(dvm);
  void* bad = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_ERRNO("kvm-mem.region2.efault", "kvm_vm_ioctl (copy_from_user)", ioctl(vm, KVM_SET_USER_MEMORY_REGION2, bad),
               EFAULT, "KVM_SET_USER_MEMORY_REGION2 from unreadable memory");
  munmap(bad, PAGE);
  close(gmem);
}

static void check_attributes(int vm) {
  int dvm = create_vm(KVM_X86_DEFAULT_VM);
  int d1 = set_attrs(dvm, 0, PAGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0), de1 = errno;
  int d2 = set_attrs(dvm, 0, PAGE, 0, 0);
  EXPECT("kvm-mem.attrs.default-vm", "kvm_vm_ioctl_set_mem_attributes (kvm_supported_mem_attributes)",
         d1 == -1 && de1 == EINVAL && d2 == 0, "PRIVATE on a default VM -> %d %s; no attributes -> %d", d1,
         strerror(de1), d2);
  close(dvm);
  int f = set_attrs(vm, 0, PAGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 1), fe = errno;
  int u = set_attrs(vm, 0, PAGE, 1, 0), ue = errno;
  EXPECT("kvm-mem.attrs.flags", "kvm_vm_ioctl_set_mem_attributes", f == -1 && fe == EINVAL && u == -1 && ue == EINVAL,
         "flags 1 -> %d %s; attribute bit 0 -> %d %s (want EINVAL)", f, strerror(fe), u, strerror(ue));
  int z = set_attrs(vm, 0, 0, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0), ze = errno;
  int w = set_attrs(vm, ~0ULL << 12, 0x2000, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0), we = errno;
  int ua = set_attrs(vm, 0x800, PAGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0), uae = errno;
  int us = set_attrs(vm, 0, 0x1800, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0), use = errno;
  EXPECT("kvm-mem.attrs.range", "kvm_vm_ioctl_set_mem_attributes",
         z == -1 && ze == EINVAL && w == -1 && we == EINVAL && ua == -1 && uae == EINVAL && us == -1 && use == EINVAL,
         "size 0 -> %d %s; wrapping -> %d %s; unaligned address -> %d %s; unaligned size -> %d %s", z, strerror(ze),
         w, strerror(we), ua, strerror(uae), us, strerror(use));
  int p1 = set_attrs(vm, 0x40000000, 0x10000, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0);
  int p2 = set_attrs(vm, 0x40000000, 0x10000, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0);
  int p3 = set_attrs(vm, 0x40004000, 0x1000, 0, 0);
  EXPECT("kvm-mem.attrs.set", "kvm_vm_set_mem_attributes",
         p1 == 0 && p2 == 0 && p3 == 0, "PRIVATE where no memslot is -> %d; again -> %d; one page shared -> %d", p1,
         p2, p3);
  void* bad = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_ERRNO("kvm-mem.attrs.efault", "kvm_vm_ioctl (copy_from_user)", ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, bad),
               EFAULT, "KVM_SET_MEMORY_ATTRIBUTES from unreadable memory");
  munmap(bad, PAGE);
}

/* Real mode at 0x1000: mov byte [0x3000], 0x99; mov al, [0x3000]; out 0x10, al; mov byte [0x2000], 0x55;
 * mov ax, 0x1000; mov ds, ax; mov byte [0], 0x77 (gpa 0x10000); hlt */
static const uint8_t code[] = {0xc6, 0x06, 0x00, 0x30, 0x99, 0xa0, 0x00, 0x30, 0xe6, 0x10, 0xc6, 0x06, 0x00,
                               0x20, 0x55, 0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x00, 0x77, 0xf4};

static void check_run(void) {
  int vm = create_vm(KVM_X86_SW_PROTECTED_VM);
  uint8_t* mem = anon(0x10000);
  uint8_t* mem2 = anon(0x10000);
  int gmem = gmem_create(vm, 0x10000, 0);
  memcpy(mem + 0x1000, code, sizeof code);
  int ok = region2(vm, 0, KVM_MEM_GUEST_MEMFD, 0, 0x10000, mem, gmem, 0) == 0 &&
           region2(vm, 1, 0, 0x10000, 0x10000, mem2, -1, 0) == 0 && set_attrs(vm, 0x3000, PAGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0) == 0 &&
           set_attrs(vm, 0x10000, PAGE, KVM_MEMORY_ATTRIBUTE_PRIVATE, 0) == 0;
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  int mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run* run = vcpu >= 0 ? mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0) : MAP_FAILED;
  struct kvm_sregs sregs;
  ok = ok && run != MAP_FAILED && ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0;
  if (!ok) {
    EXPECT("kvm-mem.run.setup", "kvm_vm_ioctl", 0, "setting up a SW_PROTECTED VM: %s", strerror(errno));
    return;
  }
  sregs.cs.base = sregs.ds.base = sregs.es.base = sregs.ss.base = 0;
  sregs.cs.selector = sregs.ds.selector = sregs.es.selector = sregs.ss.selector = 0;
  struct kvm_regs regs = {.rip = 0x1000, .rflags = 2, .rsp = 0x8000};
  ioctl(vcpu, KVM_SET_SREGS, &sregs);
  ioctl(vcpu, KVM_SET_REGS, &regs);

  int r = ioctl(vcpu, KVM_RUN, 0);
  EXPECT("kvm-mem.run.private-write", "kvm_mmu_faultin_pfn_gmem",
         r == 0 && run->exit_reason == KVM_EXIT_IO && *((uint8_t*)run + run->io.data_offset) == 0x99 && mem[0x3000] == 0,
         "the guest wrote 0x99 to a private gfn and read back 0x%x (exit %u); the VMM's mapping of it holds 0x%x",
         *((uint8_t*)run + run->io.data_offset), run->exit_reason, mem[0x3000]);
  r = ioctl(vcpu, KVM_RUN, 0);
  int e = errno;
  struct memory_fault_exit* mf = RUN_MEMORY_FAULT(run);
  EXPECT("kvm-mem.run.memory-fault", "kvm_mmu_faultin_pfn_gmem (kvm_prepare_memory_fault_exit)",
         r == -1 && e == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT && mf->flags == KVM_MEMORY_EXIT_FLAG_PRIVATE &&
             mf->gpa == 0x10000 && mf->size == PAGE && mem[0x2000] == 0x55,
         "a private gfn in a memslot without guest_memfd: KVM_RUN -> %d %s, exit %u, flags 0x%llx gpa 0x%llx size 0x%llx",
         r, r < 0 ? strerror(e) : "", run->exit_reason, (unsigned long long)mf->flags, (unsigned long long)mf->gpa,
         (unsigned long long)mf->size);
  int c = set_attrs(vm, 0x10000, PAGE, 0, 0);
  r = ioctl(vcpu, KVM_RUN, 0);
  EXPECT("kvm-mem.run.convert-resume", "kvm_vm_set_mem_attributes",
         c == 0 && r == 0 && run->exit_reason == KVM_EXIT_HLT && mem2[0] == 0x77,
         "made shared -> %d; KVM_RUN -> %d, exit %u; the write reached the VMM's mapping: 0x%x", c, r, run->exit_reason,
         mem2[0]);

  /* Closing the guest_memfd unbinds it: the private gfn faults again. */
  close(gmem);
  regs.rip = 0x1000;
  ioctl(vcpu, KVM_SET_SREGS, &sregs); /* DS back to 0 */
  ioctl(vcpu, KVM_SET_REGS, &regs);
  r = ioctl(vcpu, KVM_RUN, 0);
  e = errno;
  EXPECT("kvm-mem.run.closed-guest-memfd", "kvm_gmem_release, kvm_gmem_get_pfn",
         r == -1 && e == EFAULT && run->exit_reason == KVM_EXIT_MEMORY_FAULT && mf->gpa == 0x3000 &&
             mf->flags == KVM_MEMORY_EXIT_FLAG_PRIVATE,
         "KVM_RUN -> %d %s, exit %u, gpa 0x%llx flags 0x%llx", r, r < 0 ? strerror(e) : "", run->exit_reason,
         (unsigned long long)mf->gpa, (unsigned long long)mf->flags);
  munmap(run, mmap_size);
  close(vcpu);
  close(vm);
}

void kvm_mem_checks(void) {
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0) {
    EXPECT("kvm-mem.open", "kvm_dev_ioctl", 0, "/dev/kvm: %s", strerror(errno));
    return;
  }
  int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
  if (types < 0 || !(types & (1 << KVM_X86_SW_PROTECTED_VM))) {
    /* A host KVM built without CONFIG_KVM_SW_PROTECTED_VM (distribution kernels): the area is
     * about that VM type, so it does not apply (conformance.test.ts accepts this only on --kvm host). */
    printf("# not applicable on this KVM: KVM_CAP_VM_TYPES 0x%x lacks KVM_X86_SW_PROTECTED_VM\n", types);
    close(kvm_fd);
    return;
  }
  check_caps();
  int vm = create_vm(KVM_X86_SW_PROTECTED_VM);
  check_guest_memfd(vm);
  check_region2(vm);
  close(vm);
  vm = create_vm(KVM_X86_SW_PROTECTED_VM);
  check_attributes(vm);
  close(vm);
  check_run();
  close(kvm_fd);
}
