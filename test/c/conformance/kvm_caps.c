/* What KVM says an SEV host and its VM types can do: VM types, capabilities per VM type
 * (protected state has no read-only memory and no sync regs), read-only memslots, the CPUID KVM
 * offers, and the host facts user space reads (kvm_amd parameters, /proc/cpuinfo). Expects a
 * Milan-or-later emulated host on which SNP is off. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conformance.h"
#include "new_uapi.h"

static int kvm_fd = -1;

static int create_vm(unsigned long type) { return ioctl(kvm_fd, KVM_CREATE_VM, type); }

static void check_vm_types(void) {
  int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
  int want = 1 << KVM_X86_DEFAULT_VM | 1 << KVM_X86_SEV_VM | 1 << KVM_X86_SEV_ES_VM;
  EXPECT("kvm-caps.vm-types", "sev_set_cpu_caps / kvm_vm_ioctl_check_extension",
         types >= 0 && (types & want) == want && !(types & (1 << KVM_X86_SNP_VM)),
         "KVM_CAP_VM_TYPES = 0x%x (want DEFAULT, SEV and SEV_ES, no SNP while SNP is off)", types);
  EXPECT_ERRNO("kvm-caps.create-vm.snp-unsupported", "kvm_arch_init_vm (kvm_is_vm_type_supported)",
               create_vm(KVM_X86_SNP_VM), EINVAL, "KVM_CREATE_VM(KVM_X86_SNP_VM)");
  EXPECT_ERRNO("kvm-caps.create-vm.unknown-type", "kvm_arch_init_vm (kvm_is_vm_type_supported)", create_vm(0x55),
               EINVAL, "KVM_CREATE_VM(0x55)");
}

/* Read-only memory and kvm_run sync regs exist for a VM only without protected state: an
 * SEV-ES VM (type KVM_X86_SEV_ES_VM) has it, a plain SEV or default VM does not. */
static void check_caps_per_vm_type(void) {
  static const struct {
    unsigned long type;
    const char* name;
    int protected_state;
  } vms[] = {{KVM_X86_DEFAULT_VM, "default", 0}, {KVM_X86_SEV_VM, "SEV", 0}, {KVM_X86_SEV_ES_VM, "SEV-ES", 1}};
  void* mem = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (size_t i = 0; i < sizeof vms / sizeof vms[0]; i++) {
    int vm = create_vm(vms[i].type);
    if (vm < 0) {
      EXPECT("kvm-caps.create-vm", "kvm_dev_ioctl_create_vm", 0, "KVM_CREATE_VM(%s): %s", vms[i].name, strerror(errno));
      continue;
    }
    int ro = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM);
    EXPECT(vms[i].protected_state ? "kvm-caps.es-vm.readonly-mem" : "kvm-caps.readonly-mem",
           "kvm_vm_ioctl_check_extension (kvm_arch_has_readonly_mem)", ro == !vms[i].protected_state,
           "%s VM: KVM_CAP_READONLY_MEM = %d", vms[i].name, ro);
    if (vms[i].protected_state) {
      int sync = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);
      EXPECT("kvm-caps.es-vm.sync-regs", "kvm_vm_ioctl_check_extension (kvm_sync_valid_fields)", sync == 0,
             "%s VM: KVM_CAP_SYNC_REGS = %d", vms[i].name, sync);
    }
    struct kvm_userspace_memory_region slot = {
        .slot = 0, .flags = KVM_MEM_READONLY, .guest_phys_addr = 0xf0000, .memory_size = 0x10000,
        .userspace_addr = (uintptr_t)mem};
    int r = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot);
    int e = errno;
    if (vms[i].protected_state) {
      EXPECT("kvm-caps.es-vm.readonly-slot", "check_memory_region_flags", r == -1 && e == EINVAL,
             "%s VM: a KVM_MEM_READONLY slot -> %d %s (want EINVAL)", vms[i].name, r, r ? strerror(e) : "");
      slot.flags = 0;
      r = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot);
      EXPECT("kvm-caps.es-vm.writable-slot", "kvm_set_memory_region", r == 0, "%s VM: the same slot writable -> %d %s",
             vms[i].name, r, r ? strerror(errno) : "");
    } else {
      EXPECT("kvm-caps.readonly-slot", "check_memory_region_flags", r == 0, "%s VM: a KVM_MEM_READONLY slot -> %d %s",
             vms[i].name, r, r ? strerror(e) : "");
    }
    close(vm);
  }
  munmap(mem, 0x10000);
}

/* KVM_GET_SUPPORTED_CPUID's 0x8000001F (__do_cpuid_func): no SNP while KVM cannot run SNP
 * guests; EBX keeps only the C-bit position (no VMPLs, no physical-address reduction). */
static void check_supported_cpuid(void) {
  struct {
    struct kvm_cpuid2 h;
    struct kvm_cpuid_entry2 e[256];
  } c;
  memset(&c, 0, sizeof c);
  c.h.nent = 256;
  int r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &c);
  const struct kvm_cpuid_entry2* leaf = NULL;
  for (uint32_t i = 0; r == 0 && i < c.h.nent; i++)
    if (c.e[i].function == 0x8000001f) leaf = &c.e[i];
  EXPECT("kvm-caps.supported-cpuid.8000001f", "__do_cpuid_func (0x8000001F)",
         r == 0 && (!leaf || (!(leaf->eax & (1u << 4)) && (leaf->ebx & ~0x3fu) == 0 && leaf->ecx == 0 && leaf->edx == 0)),
         "KVM_GET_SUPPORTED_CPUID -> %d; 0x8000001F %s EAX=0x%x EBX=0x%x ECX=0x%x EDX=0x%x (want no SNP bit, EBX only the C-bit)",
         r, leaf ? "present" : "absent", leaf ? leaf->eax : 0, leaf ? leaf->ebx : 0, leaf ? leaf->ecx : 0,
         leaf ? leaf->edx : 0);
}

static int read_text(const char* path, char* buf, size_t size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  size_t n = 0;
  ssize_t r;
  while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0) n += (size_t)r;
  buf[n] = 0;
  close(fd);
  return (int)n;
}

static int has_flag(const char* flags_line, const char* flag) {
  size_t len = strlen(flag);
  for (const char* p = flags_line; (p = strstr(p, flag)); p += len)
    if (p[-1] == ' ' && (p[len] == ' ' || p[len] == '\n' || p[len] == 0)) return 1;
  return 0;
}

static void check_host_facts(void) {
  char sev[8] = "", es[8] = "", snp[8] = "";
  read_text("/sys/module/kvm_amd/parameters/sev", sev, sizeof sev);
  read_text("/sys/module/kvm_amd/parameters/sev_es", es, sizeof es);
  read_text("/sys/module/kvm_amd/parameters/sev_snp", snp, sizeof snp);
  EXPECT("kvm-caps.kvm-amd-params", "sev_hardware_setup (sev_enabled, sev_es_enabled, sev_snp_enabled)",
         sev[0] == 'Y' && es[0] == 'Y' && snp[0] == 'N', "kvm_amd sev=%c sev_es=%c sev_snp=%c (want Y Y N)",
         sev[0] ? sev[0] : '?', es[0] ? es[0] : '?', snp[0] ? snp[0] : '?');
  static char cpuinfo[1 << 16];
  read_text("/proc/cpuinfo", cpuinfo, sizeof cpuinfo);
  const char* flags = strstr(cpuinfo, "\nflags");
  EXPECT("kvm-caps.cpuinfo-flags", "early_detect_mem_encrypt / bsp_determine_snp",
         flags && has_flag(flags, "sev") && has_flag(flags, "sev_es") && !has_flag(flags, "sev_snp"),
         "/proc/cpuinfo flags: sev %d, sev_es %d, sev_snp %d (want 1 1 0: the host did not enable SNP)",
         flags && has_flag(flags, "sev"), flags && has_flag(flags, "sev_es"), flags && has_flag(flags, "sev_snp"));
}

void kvm_caps_checks(void) {
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  EXPECT("kvm-caps.open", "kvm_dev_ioctl", kvm_fd >= 0, "/dev/kvm opens: %s", kvm_fd >= 0 ? "yes" : strerror(errno));
  if (kvm_fd < 0) return;
  check_vm_types();
  check_caps_per_vm_type();
  check_supported_cpuid();
  check_host_facts();
  close(kvm_fd);
}
