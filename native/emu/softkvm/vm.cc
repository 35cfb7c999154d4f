// /dev/kvm, VM fds and vCPU fds of the software KVM (guest_memfd fds: guest_memfd.cc) (virt/kvm/kvm_main.c, arch/x86/kvm/x86.c).
#include "vm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "common.h"
#include "cpu_model.h"
#include "guest_memfd.h"
#include "generation.h"
#include "host_facts.h"
#include "kvm_emu.h"
#include "kvm_vm.h"
#include "real_libc.h"
#include "uapi/kvm_flex.h"
#include "uapi/kvm_memory.h"
#include "uapi/kvm_sev.h"
#include "user_mem.h"
#include "vcpu.h"

namespace sevemu::softkvm {

namespace {

constexpr long kApiVersion = 12;
constexpr unsigned kMaxVcpus = 1024, kMaxVcpuIds = 4096;  // KVM_MAX_VCPUS, KVM_MAX_VCPU_IDS
constexpr unsigned kUserMemSlots = 32764;
constexpr unsigned kMaxCpuidEntries = 256;
constexpr uint64_t kExitHypercallValid = 1ull << 12;  // KVM_EXIT_HYPERCALL_VALID_MASK: KVM_HC_MAP_GPA_RANGE
constexpr long kVcpuMmapSize = 3 * 4096;  // kvm_run, PIO data page, coalesced MMIO ring

// MSRs KVM_GET_MSR_INDEX_LIST reports: those the vCPU saves and restores.
const uint32_t kMsrIndexList[] = {
    0x10,       0x1b,       0x174,      0x175,      0x176,      0x1a0,      0x1d9,      0x277,
    0x2ff,      0xc0000080, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000100, 0xc0000101,
    0xc0000102, 0xc0000103, 0xc0010015, 0xc0010114, 0xc0010117,
};

// A memfd for an emulated kernel object's fd: its own inode, so the fd table can tell it apart.
int object_fd(const char* name, int flags) {
  int fd = memfd_create(name, (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
  return fd < 0 ? -errno : fd;
}

const Generation& generation() {
  const Generation* g = find_generation(sevemu_generation());
  return g ? *g : default_generation();
}

// KVM_GET_SUPPORTED_CPUID: the emulated EPYC's leaves, with feature bits limited to what the
// CPU emulator executes (Unicorn's own EPYC model after its TCG filter), the hypervisor bit, no
// nested SVM, and leaf 0x8000001F as KVM reports it.
std::vector<kvm_cpuid_entry2> supported_cpuid() {
  static std::once_flag once;
  static std::vector<kvm_cpuid_entry2> table;
  std::call_once(once, [] {
    uint32_t tcg[5][4] = {};  // leaves 1, 7.0, 0xd.1, 0x80000001, 0x80000007
    const UnicornApi* uc = unicorn();
    uc_engine* e = nullptr;
    if (uc && uc->open(UC_ARCH_X86, UC_MODE_64, &e) == UC_ERR_OK) {
      uc->ctl(e, UC_CTL_WRITE(UC_CTL_CPU_MODEL, 1), int(UC_CPU_X86_EPYC_ROME));
      static uint8_t page[4096] __attribute__((aligned(4096)));
      const uint8_t code[] = {0x0f, 0xa2, 0xf4};  // cpuid; hlt
      memcpy(page, code, sizeof code);
      uc->mem_map_ptr(e, 0, sizeof page, UC_PROT_ALL, page);
      const uint32_t leaves[5][2] = {{1, 0}, {7, 0}, {0xd, 1}, {0x80000001, 0}, {0x80000007, 0}};
      for (int i = 0; i < 5; i++) {
        uint64_t a = leaves[i][0], c = leaves[i][1], b = 0, d = 0;
        uc->reg_write(e, UC_X86_REG_RAX, &a);
        uc->reg_write(e, UC_X86_REG_RCX, &c);
        uc->emu_start(e, 0, 3, 0, 0);
        uc->reg_read(e, UC_X86_REG_RAX, &a);
        uc->reg_read(e, UC_X86_REG_RBX, &b);
        uc->reg_read(e, UC_X86_REG_RCX, &c);
        uc->reg_read(e, UC_X86_REG_RDX, &d);
        tcg[i][0] = uint32_t(a);
        tcg[i][1] = uint32_t(b);
        tcg[i][2] = uint32_t(c);
        tcg[i][3] = uint32_t(d);
      }
      uc->close(e);
    }
    for (const CpuidLeaf& l : cpuid_leaves(generation())) {
      kvm_cpuid_entry2 k{};
      k.function = l.function;
      k.index = l.index;
      k.flags = l.flags;
      k.eax = l.eax;
      k.ebx = l.ebx;
      k.ecx = l.ecx;
      k.edx = l.edx;
      switch (l.function) {
        case 1:
          k.ecx &= tcg[0][2];
          k.edx &= tcg[0][3];
          k.ecx |= 1u << 31;  // running under a hypervisor
          k.ebx &= 0x00ffffff;  // APIC ID: set per vCPU by the VMM
          break;
        case 7:
          if (l.index == 0) {
            k.ebx &= tcg[1][1];
            k.ecx &= tcg[1][2];
            k.edx &= tcg[1][3];
          } else {
            k.eax = k.ebx = k.ecx = k.edx = 0;
          }
          break;
        case 0xd:
          // x87 and SSE state only: this CPU has no AVX or later state.
          if (l.index == 0) {
            k.eax = 3;
            k.edx = 0;
            k.ebx = k.ecx = 576;
          } else if (l.index == 1) {
            k.eax &= tcg[2][0];
            k.ebx = k.ecx = k.edx = 0;
          } else {
            continue;
          }
          break;
        case 0x80000001:
          k.ecx &= tcg[3][2] & ~(1u << 2);  // no SVM for the guest (nested virtualization)
          k.edx &= tcg[3][3];
          break;
        case 0x8000000a:
          continue;  // SVM features: none
        case 0x8000001f: {
          // kvm_set_cpu_caps + sev_set_cpu_caps: SME, SEV, SEV-ES where KVM offers it,
          // SME_COHERENT; no SNP (this KVM cannot create SNP VMs). Only the C-bit position
          // stays in EBX (no VMPLs, the reduced MAXPHYADDR is in 0x80000008).
          const KvmSevFacts& f = kvm_sev_facts();
          k.eax &= (1u << 0) | (f.sev ? 1u << 1 : 0) | (f.es ? 1u << 3 : 0) | (1u << 10);
          k.ebx &= 0x3f;
          k.ecx = k.edx = 0;
          break;
        }
      }
      table.push_back(k);
    }
  });
  return table;
}

// KVM_GET_SUPPORTED_CPUID-style output of `entries` to a user struct kvm_cpuid2.
long copy_cpuid_out(unsigned long arg, const std::vector<kvm_cpuid_entry2>& entries) {
  uapi::kvm_cpuid2_header hdr{};
  if (copy_from_user(&hdr, arg, sizeof hdr)) return -EFAULT;
  if (hdr.nent < 1) return -E2BIG;
  if (hdr.nent > kMaxCpuidEntries) hdr.nent = kMaxCpuidEntries;
  if (hdr.nent < entries.size()) return -E2BIG;
  hdr.nent = uint32_t(entries.size());
  if (copy_to_user(arg + sizeof hdr, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2))) return -EFAULT;
  return copy_to_user(arg, &hdr, sizeof hdr) ? -EFAULT : 0;
}

long copy_msr_list(unsigned long arg, const uint32_t* list, uint32_t n) {
  uapi::kvm_msr_list_header hdr{};
  if (copy_from_user(&hdr, arg, sizeof hdr)) return -EFAULT;
  const uint32_t room = hdr.nmsrs;
  hdr.nmsrs = n;
  if (copy_to_user(arg, &hdr, sizeof hdr)) return -EFAULT;
  if (room < n) return -E2BIG;
  return copy_to_user(arg + sizeof hdr, list, n * sizeof(uint32_t)) ? -EFAULT : 0;
}

// KVM_CHECK_EXTENSION: what this machine implements. `vm` null for /dev/kvm.
long check_extension(unsigned long cap, const SoftVm* vm) {
  const KvmSevFacts& f = kvm_sev_facts();
  switch (cap) {
    case KVM_CAP_HLT: case KVM_CAP_USER_MEMORY: case KVM_CAP_SET_TSS_ADDR: case KVM_CAP_EXT_CPUID:
    case KVM_CAP_MP_STATE: case KVM_CAP_SYNC_MMU: case KVM_CAP_DESTROY_MEMORY_REGION_WORKS:
    case KVM_CAP_JOIN_MEMORY_REGIONS_WORKS: case KVM_CAP_SET_IDENTITY_MAP_ADDR: case KVM_CAP_DEBUGREGS:
    case KVM_CAP_XSAVE: case KVM_CAP_XCRS: case KVM_CAP_IMMEDIATE_EXIT:
      return 1;
    case KVM_CAP_NR_VCPUS: {
      long n = sysconf(_SC_NPROCESSORS_ONLN);
      return n > 0 && n < long(kMaxVcpus) ? n : kMaxVcpus;
    }
    case KVM_CAP_MAX_VCPUS: return kMaxVcpus;
    case KVM_CAP_MAX_VCPU_ID: return kMaxVcpuIds;
    case KVM_CAP_NR_MEMSLOTS: return kUserMemSlots;
    // Routing tables exist (KVM_MAX_IRQ_ROUTES); with no in-kernel irqchip they are refused, as
    // the kernel refuses them before KVM_CREATE_IRQCHIP.
    case KVM_CAP_IRQ_ROUTING: return 4096;
    case KVM_CAP_MCE: return 32;  // KVM_MAX_MCE_BANKS
    case KVM_CAP_READONLY_MEM: return vm && vm->sev->has_protected_state() ? 0 : 1;
    // Private memory (kvm_main.c, x86.c with CONFIG_KVM_GUEST_MEMFD, which x86-64 selects, and
    // CONFIG_KVM_SW_PROTECTED_VM): guest_memfd and KVM_SET_USER_MEMORY_REGION2 on every VM; the
    // PRIVATE attribute on /dev/kvm and on VMs with private memory (kvm_supported_mem_attributes);
    // guest_memfd flags per VM (kvm_gmem_get_supported_flags: INIT_SHARED only without private
    // memory); memory-fault exits carry their gpa, size and flags.
    case uapi::CAP_USER_MEMORY2: case uapi::CAP_GUEST_MEMFD: case uapi::CAP_MEMORY_FAULT_INFO:
      return 1;
    case uapi::CAP_MEMORY_ATTRIBUTES:
      return !vm || vm->has_private_mem() ? long(uapi::MEMORY_ATTRIBUTE_PRIVATE) : 0;
    case uapi::CAP_GUEST_MEMFD_FLAGS:
      return long(uapi::GMEM_FLAG_MMAP) |
             (!vm || !vm->has_private_mem() ? long(uapi::GMEM_FLAG_INIT_SHARED) : 0);
    case uapi::CAP_EXIT_HYPERCALL:
      return long(kExitHypercallValid);
    case uapi::CAP_VM_TYPES: {
      // kvm_caps.supported_vm_types: DEFAULT, SW_PROTECTED (CONFIG_KVM_SW_PROTECTED_VM with the
      // TDP MMU, as on any SVM host), and the SEV types sev_set_cpu_caps adds.
      long mask = 1L << uapi::KVM_X86_DEFAULT_VM | 1L << uapi::KVM_X86_SW_PROTECTED_VM;
      if (f.sev) mask |= 1L << uapi::KVM_X86_SEV_VM;
      if (f.es) mask |= 1L << uapi::KVM_X86_SEV_ES_VM;
      if (f.snp) mask |= 1L << uapi::KVM_X86_SNP_VM;
      return mask;
    }
  }
  return 0;
}

class SoftVcpuFile : public FdObject {
 public:
  SoftVcpuFile(std::shared_ptr<SoftVm> vm, SoftVcpu* vcpu) : vm_(std::move(vm)), vcpu_(vcpu) {}
  const char* kind() const override { return "kvm-vcpu"; }
  long ioctl(int, unsigned long req, unsigned long arg) override { return vcpu_->ioctl(req, arg); }

 private:
  std::shared_ptr<SoftVm> vm_;  // a vCPU fd keeps its VM alive, as in the kernel
  SoftVcpu* vcpu_;
};

class SoftVmFile : public FdObject {
 public:
  explicit SoftVmFile(std::shared_ptr<SoftVm> vm) : vm_(std::move(vm)) {}
  const char* kind() const override { return "kvm-vm"; }
  long ioctl(int, unsigned long req, unsigned long arg) override {
    switch (req) {
      case KVM_CREATE_VCPU:
        return vm_->create_vcpu(arg);
      case KVM_SET_USER_MEMORY_REGION: {
        kvm_userspace_memory_region m;
        if (copy_from_user(&m, arg, sizeof m)) return -EFAULT;
        // KVM_SET_USER_MEMORY_REGION_V1_FLAGS
        if (m.flags & ~uint32_t(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) return -EINVAL;
        return set_region({m.slot, m.flags, m.guest_phys_addr, m.memory_size, m.userspace_addr, 0, 0});
      }
      case uapi::KVMIO_SET_USER_MEMORY_REGION2: {
        uapi::kvm_userspace_memory_region2 m;
        if (copy_from_user(&m, arg, sizeof m)) return -EFAULT;
        return set_region({m.slot, m.flags, m.guest_phys_addr, m.memory_size, m.userspace_addr,
                           m.guest_memfd_offset, m.guest_memfd});
      }
      case uapi::KVMIO_SET_MEMORY_ATTRIBUTES: {
        uapi::kvm_memory_attributes a;
        if (copy_from_user(&a, arg, sizeof a)) return -EFAULT;
        // kvm_vm_ioctl_set_mem_attributes
        const uint64_t supported = vm_->has_private_mem() ? uapi::MEMORY_ATTRIBUTE_PRIVATE : 0;
        if (a.flags || (a.attributes & ~supported)) return -EINVAL;
        if (a.size == 0 || a.address + a.size < a.address) return -EINVAL;
        if (a.address % kPage || a.size % kPage) return -EINVAL;
        return vm_->memory.set_private(a.address / kPage, (a.address + a.size) / kPage,
                                       a.attributes & uapi::MEMORY_ATTRIBUTE_PRIVATE);
      }
      case uapi::KVMIO_CREATE_GUEST_MEMFD:
        return create_guest_memfd(vm_, arg);
      case KVM_SET_TSS_ADDR:
        return 0;  // SVM needs no real-mode TSS
      case KVM_SET_IDENTITY_MAP_ADDR: {
        uint64_t a;
        return copy_from_user(&a, arg, sizeof a) ? -EFAULT : 0;
      }
      case KVM_CHECK_EXTENSION:
        return check_extension(arg, vm_.get());
      case KVM_SET_GSI_ROUTING:
        return -EINVAL;  // kvm_arch_can_set_irq_routing: no irqchip in kernel
      case KVM_ENABLE_CAP: {
        kvm_enable_cap c;
        if (copy_from_user(&c, arg, sizeof c)) return -EFAULT;
        // KVM_CAP_EXIT_HYPERCALL: which hypercalls exit to user space (KVM_HC_MAP_GPA_RANGE only).
        if (c.cap == uapi::CAP_EXIT_HYPERCALL && !c.flags) {
          if (c.args[0] & ~kExitHypercallValid) return -EINVAL;
          vm_->hypercall_exits = c.args[0];
          return 0;
        }
        return -EINVAL;  // no other VM capability can be enabled here
      }
      case uapi::KVMIO_MEMORY_ENCRYPT_OP:
        return sev_mem_enc_ioctl(*vm_->sev, arg);
      case uapi::KVMIO_MEMORY_ENCRYPT_REG_REGION:
        return sev_mem_enc_region(*vm_->sev, true, arg);
      case uapi::KVMIO_MEMORY_ENCRYPT_UNREG_REGION:
        return sev_mem_enc_region(*vm_->sev, false, arg);
    }
    if (trace_enabled()) log_line("software KVM: VM ioctl 0x%lx not implemented: ENOTTY", req);
    return -ENOTTY;  // kvm_arch_vm_ioctl's default
  }

 private:
  // kvm_set_memory_region with this VM's rules; a guest_memfd is looked up in the fd table.
  long set_region(const kvm_userspace_memory_region2_fields& m) {
    // Both outlive the change lock: a concurrent close may leave them the last references.
    std::shared_ptr<GmemFile> file, unbound;
    SoftMemory::RegionRules rules;
    rules.readonly_ok = !vm_->sev->has_protected_state();
    rules.address_spaces = vm_->has_private_mem() ? 1 : 2;
    rules.bind = [&](Memslot& s, uint32_t fd, uint64_t offset) -> long {
      // kvm_gmem_bind: fget → EBADF for no open file; EINVAL for a file that is not guest_memfd.
      if (int(fd) < 0 || real::fcntl(int(fd), F_GETFD, 0) < 0) return -EBADF;
      file = std::dynamic_pointer_cast<GmemFile>(fd_table::lookup(int(fd)));
      if (!file) return -EINVAL;
      return file->bind(vm_.get(), s, offset);
    };
    rules.unbind = [&](Memslot& s) {
      unbound = std::static_pointer_cast<GmemFile>(s.gmem_file.lock());
      if (unbound) unbound->unbind(s);
    };
    return vm_->memory.set_region(m, rules);
  }

  std::shared_ptr<SoftVm> vm_;
};

long create_vm(unsigned long type, int flags) {
  const KvmSevFacts& f = kvm_sev_facts();
  const bool ok = type == uapi::KVM_X86_DEFAULT_VM || type == uapi::KVM_X86_SW_PROTECTED_VM ||
                  (type == uapi::KVM_X86_SEV_VM && f.sev) ||
                  (type == uapi::KVM_X86_SEV_ES_VM && f.es) || (type == uapi::KVM_X86_SNP_VM && f.snp);
  if (!ok) return -EINVAL;  // kvm_is_vm_type_supported
  int fd = object_fd("sevemu-kvm-vm", O_CLOEXEC | flags);
  if (fd < 0) return fd;
  auto vm = std::make_shared<SoftVm>(uint32_t(type));
  vm->sev->gmem = &vm->memory;
  fd_table::insert(fd, std::make_shared<SoftVmFile>(vm));
  if (trace_enabled()) log_line("software KVM: VM type %lu created (fd %d)", type, fd);
  return fd;
}

class SoftKvmFile : public FdObject {
 public:
  const char* kind() const override { return "kvm"; }
  long ioctl(int, unsigned long req, unsigned long arg) override {
    switch (req) {
      case KVM_GET_API_VERSION:
        return arg ? -EINVAL : kApiVersion;
      case KVM_CREATE_VM:
        return create_vm(arg, 0);
      case KVM_CHECK_EXTENSION:
        return check_extension(arg, nullptr);
      case KVM_GET_VCPU_MMAP_SIZE:
        return arg ? -EINVAL : kVcpuMmapSize;
      case uapi::KVMIO_GET_SUPPORTED_CPUID:
        return copy_cpuid_out(arg, supported_cpuid());
      case uapi::KVMIO_GET_EMULATED_CPUID:
        return copy_cpuid_out(arg, {});
      case uapi::KVMIO_GET_MSR_INDEX_LIST:
        return copy_msr_list(arg, kMsrIndexList, sizeof kMsrIndexList / sizeof kMsrIndexList[0]);
      case uapi::KVMIO_GET_MSR_FEATURE_INDEX_LIST:
        return copy_msr_list(arg, nullptr, 0);
      case KVM_X86_GET_MCE_CAP_SUPPORTED:
        return copy_to_user(arg, &kMceCapSupported, sizeof kMceCapSupported) ? -EFAULT : 0;
      case KVM_GET_DEVICE_ATTR:
      case KVM_HAS_DEVICE_ATTR: {
        kvm_device_attr attr;
        if (copy_from_user(&attr, arg, sizeof attr)) return -EFAULT;
        if (attr.group != uapi::KVM_X86_GRP_SEV) return -ENXIO;
        return sev_dev_attr(req, attr.attr, attr.addr, kvm_sev_facts().snp);
      }
    }
    if (trace_enabled()) log_line("software KVM: /dev/kvm ioctl 0x%lx not implemented: EINVAL", req);
    return -EINVAL;  // kvm_arch_dev_ioctl's default
  }
};

}  // namespace

SoftVm::SoftVm(uint32_t t) : type(t), sev(std::make_shared<VmState>(t, true)) {
  uint32_t r[4] = {};
  if (sevemu_cpuid(0x8000001F, 0, r)) c_bit = r[1] & 0x3f;
  if (sevemu_cpuid(0x80000008, 0, r) && (r[0] & 0xff)) maxphyaddr = r[0] & 0xff;
  memory.set_kicker([this] { kick_all(); });
}

bool SoftVm::has_private_mem() const {
  return type == uapi::KVM_X86_SW_PROTECTED_VM || type == uapi::KVM_X86_SNP_VM;
}

SoftVm::~SoftVm() {
  sev->gmem = nullptr;  // the SEV state may outlive this VM's memory
  std::lock_guard<std::mutex> l(vcpus_mu_);
  vcpus_.clear();  // before the memory they map
}

void SoftVm::kick_all() {
  std::lock_guard<std::mutex> l(vcpus_mu_);
  for (auto& v : vcpus_) v->stop_for_memory_change();
}

long SoftVm::create_vcpu(unsigned long id) {
  if (id >= kMaxVcpuIds) return -EINVAL;
  // Under kvm->lock, so KVM_SEV_INIT's "no vCPUs yet" check cannot race with creation.
  std::lock_guard<std::mutex> sev_lock(sev->lock);
  std::lock_guard<std::mutex> l(vcpus_mu_);
  if (vcpus_.size() >= kMaxVcpus) return -EINVAL;
  for (const auto& v : vcpus_)
    if (v->id() == id) return -EEXIST;
  auto state = std::make_shared<VcpuState>();
  auto vcpu = std::make_unique<SoftVcpu>(this, uint32_t(id), state);
  std::string why;
  if (!vcpu->init(&why)) {
    log_line("software KVM: cannot create vCPU %lu: %s", id, why.c_str());
    return -ENOMEM;
  }
  SoftVcpu* raw = vcpu.get();
  state->kernel_ioctl = [raw](unsigned long req, void* a) { return raw->kernel_ioctl(req, a); };
  int fd = real::fcntl(raw->run_fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sev->vcpus.push_back(state);
  vcpus_.push_back(std::move(vcpu));
  fd_table::insert(fd, std::make_shared<SoftVcpuFile>(shared_from_this(), raw));
  return fd;
}

const char* soft_kvm_unavailable() {
  static std::once_flag once;
  static std::string reason;
  std::call_once(once, [] {
    std::string why;
    if (!cpu_layout(&why)) reason = why;
  });
  return reason.empty() ? nullptr : reason.c_str();
}

int open_soft_kvm(int flags) {
  if (const char* why = soft_kvm_unavailable()) {
    static std::once_flag logged;
    std::call_once(logged, [why] { log_line("%s", why); });
    errno = ENOENT;
    return -1;
  }
  int fd = object_fd("sevemu-kvm", flags);
  if (fd < 0) {
    errno = -fd;
    return -1;
  }
  fd_table::insert(fd, std::make_shared<SoftKvmFile>());
  return fd;
}

}  // namespace sevemu::softkvm
