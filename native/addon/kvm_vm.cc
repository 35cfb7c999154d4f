// Vm: one KVM VM fd. Generic VM ioctls (memslots, vCPU creation) and the SEV ones
// (KVM_MEMORY_ENCRYPT_OP sub-commands, KVM_MEMORY_ENCRYPT_{REG,UNREG}_REGION).
//
// Every KVM_MEMORY_ENCRYPT_OP method takes `sevFd` first: the number of an open /dev/sev fd, which
// the kernel uses to check the caller may drive the firmware (it is passed as kvm_sev_cmd.sev_fd).
// Every method reports {errno, fwError, ...}: fwError is kvm_sev_cmd.error, the firmware status
// the kernel copied back (0 when the firmware was not reached).
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "ioctl_call.h"
#include "kvm_classes.h"
#include "uapi/kvm_memory.h"
#include "uapi/kvm_sev.h"

namespace addon {
namespace kvm {

// One KVM_MEMORY_ENCRYPT_OP in preparation: the sub-command, the struct the kernel reads and
// writes (owned here so it outlives a worker thread), the guest mappings and JS buffers it points
// into (kept alive until the job ends), and how to report its outputs.
struct Vm::SevOp {
  uint32_t id = 0;
  int sevFd = -1;
  std::shared_ptr<void> data;  // nullptr → kvm_sev_cmd.data = 0
  std::vector<SharedMapping> keep;
  std::shared_ptr<Pins> pins = std::make_shared<Pins>();
  Finish finish;
};

template <typename T>
static std::shared_ptr<T> NewStruct() {
  return std::make_shared<T>();  // value-initialised: all fields zero, including padding members
}

static uint64_t Addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

Napi::Function Vm::Define(Napi::Env env, Classes* classes) {
  return DefineClass(
      env, "Vm",
      {
          InstanceMethod<&Vm::CheckExtension>("checkExtension", napi_default, classes),
          InstanceMethod<&Vm::EnableCap>("enableCap", napi_default, classes),
          InstanceMethod<&Vm::SetUserMemoryRegion>("setUserMemoryRegion", napi_default, classes),
          InstanceMethod<&Vm::SetUserMemoryRegion2>("setUserMemoryRegion2", napi_default, classes),
          InstanceMethod<&Vm::SetMemoryAttributes>("setMemoryAttributes", napi_default, classes),
          InstanceMethod<&Vm::CreateGuestMemfd>("createGuestMemfd", napi_default, classes),
          InstanceMethod<&Vm::SetTssAddr>("setTssAddr", napi_default, classes),
          InstanceMethod<&Vm::SetIdentityMapAddr>("setIdentityMapAddr", napi_default, classes),
          InstanceMethod<&Vm::CreateVcpu>("createVcpu", napi_default, classes),
          InstanceMethod<&Vm::RegisterEncRegion>("registerEncRegion", napi_default, classes),
          InstanceMethod<&Vm::UnregisterEncRegion>("unregisterEncRegion", napi_default, classes),
          InstanceMethod<&Vm::SevInit>("sevInit", napi_default, classes),
          InstanceMethod<&Vm::SevEsInit>("sevEsInit", napi_default, classes),
          InstanceMethod<&Vm::SevInit2>("sevInit2", napi_default, classes),
          InstanceMethod<&Vm::LaunchStart>("launchStart", napi_default, classes),
          InstanceMethod<&Vm::LaunchUpdateData>("launchUpdateData", napi_default, classes),
          InstanceMethod<&Vm::LaunchUpdateDataBatch>("launchUpdateDataBatch", napi_default, classes),
          InstanceMethod<&Vm::LaunchUpdateVmsa>("launchUpdateVmsa", napi_default, classes),
          InstanceMethod<&Vm::LaunchMeasure>("launchMeasure", napi_default, classes),
          InstanceMethod<&Vm::LaunchSecret>("launchSecret", napi_default, classes),
          InstanceMethod<&Vm::LaunchFinish>("launchFinish", napi_default, classes),
          InstanceMethod<&Vm::GuestStatus>("guestStatus", napi_default, classes),
          InstanceMethod<&Vm::DbgDecrypt>("dbgDecrypt", napi_default, classes),
          InstanceMethod<&Vm::DbgEncrypt>("dbgEncrypt", napi_default, classes),
          InstanceMethod<&Vm::GetAttestationReport>("getAttestationReport", napi_default, classes),
          InstanceMethod<&Vm::SnpLaunchStart>("snpLaunchStart", napi_default, classes),
          InstanceMethod<&Vm::SnpLaunchUpdate>("snpLaunchUpdate", napi_default, classes),
          InstanceMethod<&Vm::SnpLaunchFinish>("snpLaunchFinish", napi_default, classes),
          InstanceMethod<&Vm::SnpEnableReqCerts>("snpEnableReqCerts", napi_default, classes),
          InstanceMethod<&Vm::Close>("close", napi_default, classes),
          InstanceAccessor<&Vm::GetFd>("fd", napi_default, classes),
          InstanceAccessor<&Vm::GetClosed>("closed", napi_default, classes),
          InstanceAccessor<&Vm::GetMappedSlots>("mappedSlots", napi_default, classes),
      },
      classes);
}

// Only Kvm#createVm constructs a Vm (JS cannot make the External it passes).
Vm::Vm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Vm>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Vm objects are created by Kvm#createVm()");
  }
  Init* init = info[0].As<Napi::External<Init>>().Data();
  fd_ = init->fd;
  vcpuMmapSize_ = init->vcpuMmapSize;
  memory_ = std::make_shared<VmMemory>();
  info.This().As<Napi::Object>().TypeTag(&kVmTag);
}

// KVM_CHECK_EXTENSION on the VM fd → {value}: what this VM (its type) supports.
Napi::Value Vm::CheckExtension(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t cap = U32Arg(info[0], "checkExtension cap");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  int r = ::ioctl(fd_->fd(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(cap));
  if (r < 0) o.err = errno;
  Napi::Object out = OutcomeObject(env, o, nullptr);
  out.Set("value", Napi::Number::New(env, r < 0 ? 0 : r));
  return out;
}

// enableCap(cap, flags, args: BigInt[4]): KVM_ENABLE_CAP on the VM (e.g. KVM_CAP_EXIT_HYPERCALL).
Napi::Value Vm::EnableCap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  kvm_enable_cap c{};
  c.cap = U32Arg(info[0], "enableCap cap");
  c.flags = U32Arg(info[1], "enableCap flags");
  if (!info[2].IsArray() || info[2].As<Napi::Array>().Length() != 4) throw Napi::TypeError::New(env, "enableCap: args must be 4 integers");
  for (uint32_t i = 0; i < 4; i++) c.args[i] = U64Arg(info[2].As<Napi::Array>().Get(i), "enableCap args");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  if (::ioctl(fd_->fd(), KVM_ENABLE_CAP, &c) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// setUserMemoryRegion(slot, flags, guestPhysAddr, memory | null, memoryOffset, size):
// KVM_SET_USER_MEMORY_REGION. Creates, moves or (size 0, memory null) deletes memslot `slot`,
// backed by [memoryOffset, memoryOffset + size) of a GuestMemory. flags: KVM_MEM_LOG_DIRTY_PAGES,
// KVM_MEM_READONLY. On success the Vm keeps a reference to the mapping for as long as the slot
// exists (and, through VmMemory, as long as any fd of this VM is open).
Napi::Value Vm::SetUserMemoryRegion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t slot = U32Arg(info[0], "slot");
  uint32_t flags = U32Arg(info[1], "flags");
  uint64_t gpa = U64Arg(info[2], "guestPhysAddr");
  SharedMapping mapping;
  bool hasMemory = !info[3].IsNull() && !info[3].IsUndefined();
  if (hasMemory) {
    mapping = MappingArg(info[3], "memory");
    if (!mapping) return ErrnoOutcome(env, false, EBADF);
  }
  uint64_t offset = U64Arg(info[4], "memoryOffset");
  uint64_t size = U64Arg(info[5], "size");
  if (!hasMemory && size != 0) throw Napi::TypeError::New(env, "a memslot of non-zero size needs a GuestMemory");
  if (hasMemory && !mapping->Contains(offset, size)) {
    throw Napi::RangeError::New(env, "setUserMemoryRegion: range is outside the GuestMemory");
  }
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = hasMemory ? Addr(mapping->base() + offset) : 0;
  Outcome o;
  if (::ioctl(fd_->fd(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
    o.err = errno;
  } else if (size == 0) {
    memory_->slots.erase(slot);
    memory_->gmemSlots.erase(slot);
  } else {
    memory_->slots[slot] = mapping;
  }
  return OutcomeObject(env, o, nullptr);
}

// setUserMemoryRegion2(slot, flags, guestPhysAddr, memory | null, memoryOffset, size, guestMemfd |
// null, guestMemfdOffset): KVM_SET_USER_MEMORY_REGION2. As setUserMemoryRegion, plus
// KVM_MEM_GUEST_MEMFD in flags with a GuestMemfd: the slot's private pages are the guest_memfd's
// from guestMemfdOffset (page-aligned, the slot's size must fit in the file; EINVAL otherwise,
// EEXIST when those pages are bound to another slot). A guest_memfd slot cannot be changed, only
// deleted (size 0). The Vm keeps the mapping and the guest_memfd fd while the slot exists.
Napi::Value Vm::SetUserMemoryRegion2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t slot = U32Arg(info[0], "slot");
  uint32_t flags = U32Arg(info[1], "flags");
  uint64_t gpa = U64Arg(info[2], "guestPhysAddr");
  SharedMapping mapping;
  bool hasMemory = !info[3].IsNull() && !info[3].IsUndefined();
  if (hasMemory) {
    mapping = MappingArg(info[3], "memory");
    if (!mapping) return ErrnoOutcome(env, false, EBADF);
  }
  uint64_t offset = U64Arg(info[4], "memoryOffset");
  uint64_t size = U64Arg(info[5], "size");
  SharedFd gmem;
  if (!info[6].IsNull() && !info[6].IsUndefined()) {
    Napi::Object o = info[6].IsObject() ? info[6].As<Napi::Object>() : Napi::Object();
    if (!info[6].IsObject() || !o.CheckTypeTag(&kGuestMemfdTag)) throw Napi::TypeError::New(env, "guestMemfd must be a GuestMemfd");
    gmem = Napi::ObjectWrap<GuestMemfd>::Unwrap(o)->fd();
    if (!gmem) return ErrnoOutcome(env, false, EBADF);
  }
  uint64_t gmemOffset = U64Arg(info[7], "guestMemfdOffset");
  if (!hasMemory && size != 0) throw Napi::TypeError::New(env, "a memslot of non-zero size needs a GuestMemory");
  if (hasMemory && !mapping->Contains(offset, size)) {
    throw Napi::RangeError::New(env, "setUserMemoryRegion2: range is outside the GuestMemory");
  }
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  uapi::kvm_userspace_memory_region2 region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = hasMemory ? Addr(mapping->base() + offset) : 0;
  region.guest_memfd_offset = gmemOffset;
  region.guest_memfd = gmem ? static_cast<uint32_t>(gmem->fd()) : 0;
  Outcome o;
  if (::ioctl(fd_->fd(), uapi::KVMIO_SET_USER_MEMORY_REGION2, &region) < 0) {
    o.err = errno;
  } else if (size == 0) {
    memory_->slots.erase(slot);
    memory_->gmemSlots.erase(slot);
  } else {
    memory_->slots[slot] = mapping;
    if (flags & uapi::MEM_GUEST_MEMFD) memory_->gmemSlots[slot] = gmem;
  }
  return OutcomeObject(env, o, nullptr);
}

// setMemoryAttributes(address, size, attributes, flags): KVM_SET_MEMORY_ATTRIBUTES. Sets the
// attributes of the guest-physical range [address, address + size) — KVM_MEMORY_ATTRIBUTE_PRIVATE
// or none (shared) — whether or not memslots cover it. EINVAL: flags ≠ 0, an attribute the VM does
// not support (KVM_CAP_MEMORY_ATTRIBUTES on the VM: PRIVATE only with private memory), size 0,
// a wrapping range, an unaligned address or size.
Napi::Value Vm::SetMemoryAttributes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uapi::kvm_memory_attributes a{};
  a.address = U64Arg(info[0], "address");
  a.size = U64Arg(info[1], "size");
  a.attributes = U64Arg(info[2], "attributes");
  a.flags = U64Arg(info[3], "flags");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  if (::ioctl(fd_->fd(), uapi::KVMIO_SET_MEMORY_ATTRIBUTES, &a) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// createGuestMemfd(size, flags) → {guestMemfd}: KVM_CREATE_GUEST_MEMFD. A guest_memfd of `size`
// bytes (positive, page-aligned; EINVAL otherwise) for this VM; flags GUEST_MEMFD_FLAG_MMAP and
// GUEST_MEMFD_FLAG_INIT_SHARED as KVM_CAP_GUEST_MEMFD_FLAGS on the VM allows (EINVAL otherwise).
// The fd keeps the VM alive in the kernel; it is closed with the GuestMemfd (see kvm_gmem.cc).
Napi::Value Vm::CreateGuestMemfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uapi::kvm_create_guest_memfd args{};
  args.size = U64Arg(info[0], "guest_memfd size");
  args.flags = U64Arg(info[1], "guest_memfd flags");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  int fd = ::ioctl(fd_->fd(), uapi::KVMIO_CREATE_GUEST_MEMFD, &args);
  if (fd < 0) {
    o.err = errno;
    return OutcomeObject(env, o, nullptr);
  }
  // The kernel's fd is not close-on-exec; the addon's fds are (child processes never hold them).
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  GuestMemfd::Init init{std::make_shared<FdHandle>(fd), args.size, args.flags};
  Napi::Object gmem = ClassesOf(info)->guestMemfd.New({Napi::External<GuestMemfd::Init>::New(env, &init)});
  Napi::Object out = OutcomeObject(env, o, nullptr);
  out.Set("guestMemfd", gmem);
  return out;
}

// KVM_SET_TSS_ADDR(addr): three pages of guest-physical space Intel VMX needs for real mode
// emulation on CPUs without unrestricted guest. Harmless (and unneeded) on AMD.
Napi::Value Vm::SetTssAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t addr = U64Arg(info[0], "tss address");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  if (::ioctl(fd_->fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// KVM_SET_IDENTITY_MAP_ADDR(addr): the page Intel VMX uses for its real-mode identity page table.
Napi::Value Vm::SetIdentityMapAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t addr = U64Arg(info[0], "identity map address");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  if (::ioctl(fd_->fd(), KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// createVcpu(id) → {vcpu}: KVM_CREATE_VCPU, then mmap of the vCPU fd (kvm_run and the PIO page).
Napi::Value Vm::CreateVcpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = U32Arg(info[0], "vcpu id");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  Outcome o;
  int vcpufd = ::ioctl(fd_->fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (vcpufd < 0) {
    o.err = errno;
    return OutcomeObject(env, o, nullptr);
  }
  auto fd = std::make_shared<FdHandle>(vcpufd);
  void* run = ::mmap(nullptr, vcpuMmapSize_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0);
  if (run == MAP_FAILED) {
    o.err = errno;
    return OutcomeObject(env, o, nullptr);  // `fd` closes here
  }
  Vcpu::Init init{std::make_shared<VcpuCore>(fd, run, vcpuMmapSize_), memory_, id};
  Napi::Object vcpu = ClassesOf(info)->vcpu.New({Napi::External<Vcpu::Init>::New(env, &init)});
  Napi::Object out = OutcomeObject(env, o, nullptr);
  out.Set("vcpu", vcpu);
  return out;
}

// registerEncRegion / unregisterEncRegion(memory, offset, size, async):
// KVM_MEMORY_ENCRYPT_REG_REGION pins [offset, offset + size) of the guest memory for the VM's
// lifetime (or until UNREG_REGION), so SEV can keep it encrypted in place; pinning is charged to
// RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK (ENOMEM when over the limit).
Napi::Value Vm::RegisterEncRegion(const Napi::CallbackInfo& info) { return EncRegion(info, true); }
Napi::Value Vm::UnregisterEncRegion(const Napi::CallbackInfo& info) { return EncRegion(info, false); }

Napi::Value Vm::EncRegion(const Napi::CallbackInfo& info, bool reg) {
  Napi::Env env = info.Env();
  SharedMapping mapping = MappingArg(info[0], "memory");
  uint64_t offset = U64Arg(info[1], "offset");
  uint64_t size = U64Arg(info[2], "size");
  bool async = BoolArg(info, 3);
  if (!mapping || !fd_) return ErrnoOutcome(env, async, EBADF);
  if (!mapping->Contains(offset, size)) throw Napi::RangeError::New(env, "encrypted region is outside the GuestMemory");
  SharedFd fd = fd_;
  SharedVmMemory mem = memory_;
  uint64_t addr = Addr(mapping->base() + offset);
  auto ok = std::make_shared<bool>(false);
  Work work = [fd, mapping, addr, size, reg, ok]() {
    uapi::kvm_enc_region r{addr, size};
    Outcome o;
    unsigned long req = reg ? uapi::KVMIO_MEMORY_ENCRYPT_REG_REGION : uapi::KVMIO_MEMORY_ENCRYPT_UNREG_REGION;
    if (::ioctl(fd->fd(), req, &r) < 0) o.err = errno;
    *ok = o.err == 0;
    return o;
  };
  Finish finish = [mem, mapping, addr, size, reg, ok](Napi::Env, Napi::Object&) {
    if (!*ok) return;
    if (reg) {
      mem->encRegions.push_back({mapping, addr, size});
      return;
    }
    for (auto it = mem->encRegions.begin(); it != mem->encRegions.end(); ++it) {
      if (it->addr == addr && it->size == size) {
        mem->encRegions.erase(it);
        break;
      }
    }
  };
  return RunIoctl(env, async, std::move(work), std::move(finish), std::make_shared<Pins>(), nullptr);
}

// ---- KVM_MEMORY_ENCRYPT_OP -------------------------------------------------------------------

Napi::Value Vm::IssueSev(const Napi::CallbackInfo& info, size_t asyncArg, SevOp op) {
  Napi::Env env = info.Env();
  bool async = BoolArg(info, asyncArg);
  if (!fd_) return ErrnoOutcome(env, async, EBADF);
  for (const SharedMapping& m : op.keep) {
    if (!m) return ErrnoOutcome(env, async, EBADF);  // a released GuestMemory
  }
  SharedFd fd = fd_;
  SharedVmMemory mem = memory_;
  uint32_t id = op.id;
  int sevFd = op.sevFd;
  std::shared_ptr<void> data = op.data;
  std::vector<SharedMapping> keep = op.keep;
  Work work = [fd, mem, id, sevFd, data, keep]() {
    uapi::kvm_sev_cmd cmd{};
    cmd.id = id;
    cmd.data = Addr(data.get());
    cmd.sev_fd = static_cast<uint32_t>(sevFd);
    Outcome o;
    if (::ioctl(fd->fd(), uapi::KVMIO_MEMORY_ENCRYPT_OP, &cmd) < 0) o.err = errno;
    o.fwError = cmd.error;
    return o;
  };
  return RunIoctl(env, async, std::move(work), std::move(op.finish), op.pins, nullptr);
}

// sevInit(sevFd, async): KVM_SEV_INIT — make this a (legacy-type) SEV VM: allocate an ASID and
// initialise the platform if needed. No data.
Napi::Value Vm::SevInit(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_INIT;
  op.sevFd = FdArg(info[0], "sevFd");
  return IssueSev(info, 1, std::move(op));
}

// sevEsInit(sevFd, async): KVM_SEV_ES_INIT — as KVM_SEV_INIT, for an SEV-ES VM.
Napi::Value Vm::SevEsInit(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_ES_INIT;
  op.sevFd = FdArg(info[0], "sevFd");
  return IssueSev(info, 1, std::move(op));
}

// sevInit2(sevFd, vmsaFeatures, flags, ghcbVersion, async): KVM_SEV_INIT2 (struct kvm_sev_init)
// for VMs created with type KVM_X86_SEV_VM / KVM_X86_SEV_ES_VM / KVM_X86_SNP_VM.
Napi::Value Vm::SevInit2(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_INIT2;
  op.sevFd = FdArg(info[0], "sevFd");
  auto s = NewStruct<uapi::kvm_sev_init>();
  s->vmsa_features = U64Arg(info[1], "vmsaFeatures");
  s->flags = U32Arg(info[2], "flags");
  uint32_t ghcb = U32Arg(info[3], "ghcbVersion");
  if (ghcb > 0xffff) throw Napi::RangeError::New(info.Env(), "ghcbVersion must fit in 16 bits");
  s->ghcb_version = static_cast<uint16_t>(ghcb);
  op.data = s;
  return IssueSev(info, 4, std::move(op));
}

// launchStart(sevFd, policy, handle, dhCert | null, session | null, async) → {handle, policy}:
// KVM_SEV_LAUNCH_START. handle 0 = new guest context; the firmware returns its handle.
Napi::Value Vm::LaunchStart(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_LAUNCH_START;
  op.sevFd = FdArg(info[0], "sevFd");
  auto s = NewStruct<uapi::kvm_sev_launch_start>();
  s->policy = U32Arg(info[1], "policy");
  s->handle = U32Arg(info[2], "handle");
  Bytes dh = OptionalBytes(info[3], "launchStart dhCert");
  Bytes session = OptionalBytes(info[4], "launchStart session");
  s->dh_uaddr = Addr(dh.data);
  s->dh_len = static_cast<uint32_t>(dh.length);
  s->session_uaddr = Addr(session.data);
  s->session_len = static_cast<uint32_t>(session.length);
  op.pins->Add(info[3]);
  op.pins->Add(info[4]);
  op.data = s;
  op.finish = [s](Napi::Env, Napi::Object& out) {
    out.Set("handle", s->handle);
    out.Set("policy", s->policy);
  };
  return IssueSev(info, 5, std::move(op));
}

// launchUpdateData(sevFd, memory, offset, length, async): KVM_SEV_LAUNCH_UPDATE_DATA on
// [offset, offset + length) of guest memory, in place: the kernel pins those pages, the firmware
// encrypts them with the VM's key and adds them to the launch digest. No copy is made.
Napi::Value Vm::LaunchUpdateData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_LAUNCH_UPDATE_DATA;
  op.sevFd = FdArg(info[0], "sevFd");
  SharedMapping m = MappingArg(info[1], "memory");
  uint64_t offset = U64Arg(info[2], "offset");
  uint32_t length = U32Arg(info[3], "length");
  auto s = NewStruct<uapi::kvm_sev_launch_update_data>();
  if (m) {
    if (!m->Contains(offset, length)) throw Napi::RangeError::New(env, "launchUpdateData: range is outside guest memory");
    s->uaddr = Addr(m->base() + offset);
  }
  s->len = length;
  op.keep.push_back(m);
  op.data = s;
  return IssueSev(info, 4, std::move(op));
}

// launchUpdateDataBatch(sevFd, memory, ranges: Float64Array [offset0, length0, offset1, ...],
// control: Int32Array(2) | null, async) → {completed, cancelled}: KVM_SEV_LAUNCH_UPDATE_DATA for
// each range in order, in one job (one thread-pool round trip for a whole stream). Stops at the
// first failure (its errno/fwError are reported; `completed` ranges succeeded). With `control`,
// the job reads control[0] before each range (non-zero = stop: cancelled) and stores the number
// of completed ranges in control[1] (use a SharedArrayBuffer and Atomics on the JS side).
Napi::Value Vm::LaunchUpdateDataBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sevFd = FdArg(info[0], "sevFd");
  SharedMapping m = MappingArg(info[1], "memory");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw Napi::TypeError::New(env, "launchUpdateDataBatch: ranges must be a Float64Array of offset, length pairs");
  }
  Napi::Float64Array flat = info[2].As<Napi::Float64Array>();
  if (flat.ElementLength() % 2) throw Napi::RangeError::New(env, "launchUpdateDataBatch: ranges must hold pairs");
  int32_t* control = nullptr;
  if (!info[3].IsNull() && !info[3].IsUndefined()) {
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
        info[3].As<Napi::Int32Array>().ElementLength() < 2) {
      throw Napi::TypeError::New(env, "launchUpdateDataBatch: control must be an Int32Array of 2 elements");
    }
    control = info[3].As<Napi::Int32Array>().Data();
  }
  bool async = BoolArg(info, 4);
  if (!m || !fd_) return ErrnoOutcome(env, async, EBADF);
  // Copy and check the ranges now, so the job never reads JS memory that may change under it.
  auto ranges = std::make_shared<std::vector<uapi::kvm_sev_launch_update_data>>();
  ranges->reserve(flat.ElementLength() / 2);
  for (size_t i = 0; i < flat.ElementLength(); i += 2) {
    double off = flat[i], len = flat[i + 1];
    if (!(off >= 0) || !(len >= 0) || std::floor(off) != off || std::floor(len) != len || len > 0xffffffffu ||
        off > 9007199254740991.0 || !m->Contains(static_cast<uint64_t>(off), static_cast<uint64_t>(len))) {
      throw Napi::RangeError::New(env, "launchUpdateDataBatch: range " + std::to_string(i / 2) +
                                           " is not an integral range inside guest memory");
    }
    uapi::kvm_sev_launch_update_data d{};
    d.uaddr = Addr(m->base() + static_cast<uint64_t>(off));
    d.len = static_cast<uint32_t>(len);
    ranges->push_back(d);
  }
  auto pins = std::make_shared<Pins>();
  pins->Add(info[3]);
  SharedFd fd = fd_;
  SharedVmMemory mem = memory_;
  auto completed = std::make_shared<size_t>(0);
  auto cancelled = std::make_shared<bool>(false);
  Work work = [fd, mem, m, sevFd, ranges, control, completed, cancelled]() {
    Outcome o;
    for (auto& d : *ranges) {
      if (control && __atomic_load_n(&control[0], __ATOMIC_ACQUIRE) != 0) {
        *cancelled = true;
        break;
      }
      uapi::kvm_sev_cmd cmd{};
      cmd.id = uapi::KVM_SEV_LAUNCH_UPDATE_DATA;
      cmd.data = Addr(&d);
      cmd.sev_fd = static_cast<uint32_t>(sevFd);
      if (::ioctl(fd->fd(), uapi::KVMIO_MEMORY_ENCRYPT_OP, &cmd) < 0) {
        o.err = errno;
        o.fwError = cmd.error;
        break;
      }
      ++*completed;
      if (control) __atomic_store_n(&control[1], static_cast<int32_t>(*completed), __ATOMIC_RELEASE);
    }
    return o;
  };
  Finish finish = [completed, cancelled](Napi::Env env, Napi::Object& out) {
    out.Set("completed", Napi::Number::New(env, static_cast<double>(*completed)));
    out.Set("cancelled", Napi::Boolean::New(env, *cancelled));
  };
  return RunIoctl(env, async, std::move(work), std::move(finish), pins, nullptr);
}

// launchUpdateVmsa(sevFd, async): KVM_SEV_LAUNCH_UPDATE_VMSA — (SEV-ES) encrypt and measure the
// register state (VMSA) of every vCPU created so far. No data.
Napi::Value Vm::LaunchUpdateVmsa(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_LAUNCH_UPDATE_VMSA;
  op.sevFd = FdArg(info[0], "sevFd");
  return IssueSev(info, 1, std::move(op));
}

// launchMeasure(sevFd, buffer | null, async) → {length}: KVM_SEV_LAUNCH_MEASURE. A null buffer
// asks for the length (EIO + firmware INVALID_LEN + length); else the measurement (digest ‖ mnonce).
Napi::Value Vm::LaunchMeasure(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_LAUNCH_MEASURE;
  op.sevFd = FdArg(info[0], "sevFd");
  Bytes buf = OptionalBytes(info[1], "launchMeasure buffer");
  auto s = NewStruct<uapi::kvm_sev_launch_measure>();
  s->uaddr = Addr(buf.data);
  s->len = static_cast<uint32_t>(buf.length);
  op.pins->Add(info[1]);
  op.data = s;
  op.finish = [s](Napi::Env, Napi::Object& out) { out.Set("length", s->len); };
  return IssueSev(info, 2, std::move(op));
}

// launchSecret(sevFd, header, memory, guestOffset, guestLength, transport, async):
// KVM_SEV_LAUNCH_SECRET — the firmware decrypts `transport` with the TEK (checking `header`'s MAC)
// and writes the plaintext, encrypted with the VM key, at [guestOffset, +guestLength) of guest
// memory (which the kernel requires to lie in one page).
Napi::Value Vm::LaunchSecret(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_LAUNCH_SECRET;
  op.sevFd = FdArg(info[0], "sevFd");
  Bytes hdr = OptionalBytes(info[1], "launchSecret header");
  SharedMapping m = MappingArg(info[2], "memory");
  uint64_t guestOffset = U64Arg(info[3], "guestOffset");
  uint32_t guestLength = U32Arg(info[4], "guestLength");
  Bytes trans = OptionalBytes(info[5], "launchSecret transport");
  auto s = NewStruct<uapi::kvm_sev_launch_secret>();
  s->hdr_uaddr = Addr(hdr.data);
  s->hdr_len = static_cast<uint32_t>(hdr.length);
  if (m) {
    if (!m->Contains(guestOffset, guestLength)) throw Napi::RangeError::New(env, "launchSecret: range is outside guest memory");
    s->guest_uaddr = Addr(m->base() + guestOffset);
  }
  s->guest_len = guestLength;
  s->trans_uaddr = Addr(trans.data);
  s->trans_len = static_cast<uint32_t>(trans.length);
  op.pins->Add(info[1]);
  op.pins->Add(info[5]);
  op.keep.push_back(m);
  op.data = s;
  return IssueSev(info, 6, std::move(op));
}

// launchFinish(sevFd, async): KVM_SEV_LAUNCH_FINISH — the guest becomes runnable. No data.
Napi::Value Vm::LaunchFinish(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_LAUNCH_FINISH;
  op.sevFd = FdArg(info[0], "sevFd");
  return IssueSev(info, 1, std::move(op));
}

// guestStatus(sevFd, async) → {handle, policy, state}: KVM_SEV_GUEST_STATUS.
Napi::Value Vm::GuestStatus(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_GUEST_STATUS;
  op.sevFd = FdArg(info[0], "sevFd");
  auto s = NewStruct<uapi::kvm_sev_guest_status>();
  op.data = s;
  op.finish = [s](Napi::Env, Napi::Object& out) {
    out.Set("handle", s->handle);
    out.Set("policy", s->policy);
    out.Set("state", s->state);
  };
  return IssueSev(info, 1, std::move(op));
}

// dbgDecrypt(sevFd, memory, srcOffset, dst, async): KVM_SEV_DBG_DECRYPT — dst.length bytes of
// guest memory at srcOffset, decrypted (the guest policy must allow debugging).
Napi::Value Vm::DbgDecrypt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_DBG_DECRYPT;
  op.sevFd = FdArg(info[0], "sevFd");
  SharedMapping m = MappingArg(info[1], "memory");
  uint64_t src = U64Arg(info[2], "srcOffset");
  Bytes dst = OptionalBytes(info[3], "dbgDecrypt destination");
  auto s = NewStruct<uapi::kvm_sev_dbg>();
  if (m) {
    if (!m->Contains(src, dst.length)) throw Napi::RangeError::New(env, "dbgDecrypt: range is outside guest memory");
    s->src_uaddr = Addr(m->base() + src);
  }
  s->dst_uaddr = Addr(dst.data);
  s->len = static_cast<uint32_t>(dst.length);
  op.pins->Add(info[3]);
  op.keep.push_back(m);
  op.data = s;
  return IssueSev(info, 4, std::move(op));
}

// dbgEncrypt(sevFd, src, memory, dstOffset, async): KVM_SEV_DBG_ENCRYPT — write src, encrypted
// with the VM key, into guest memory at dstOffset (the guest policy must allow debugging).
Napi::Value Vm::DbgEncrypt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_DBG_ENCRYPT;
  op.sevFd = FdArg(info[0], "sevFd");
  Bytes src = OptionalBytes(info[1], "dbgEncrypt source");
  SharedMapping m = MappingArg(info[2], "memory");
  uint64_t dst = U64Arg(info[3], "dstOffset");
  auto s = NewStruct<uapi::kvm_sev_dbg>();
  s->src_uaddr = Addr(src.data);
  if (m) {
    if (!m->Contains(dst, src.length)) throw Napi::RangeError::New(env, "dbgEncrypt: range is outside guest memory");
    s->dst_uaddr = Addr(m->base() + dst);
  }
  s->len = static_cast<uint32_t>(src.length);
  op.pins->Add(info[1]);
  op.keep.push_back(m);
  op.data = s;
  return IssueSev(info, 4, std::move(op));
}

// getAttestationReport(sevFd, mnonce, buffer | null, async) → {length}:
// KVM_SEV_GET_ATTESTATION_REPORT with a 16-byte nonce; a null buffer asks for the length.
Napi::Value Vm::GetAttestationReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_GET_ATTESTATION_REPORT;
  op.sevFd = FdArg(info[0], "sevFd");
  Bytes mnonce = OptionalBytes(info[1], "getAttestationReport mnonce");
  if (mnonce.length != 16) throw Napi::RangeError::New(env, "getAttestationReport: mnonce must be 16 bytes");
  Bytes buf = OptionalBytes(info[2], "getAttestationReport buffer");
  auto s = NewStruct<uapi::kvm_sev_attestation_report>();
  std::memcpy(s->mnonce, mnonce.data, 16);
  s->uaddr = Addr(buf.data);
  s->len = static_cast<uint32_t>(buf.length);
  op.pins->Add(info[2]);
  op.data = s;
  op.finish = [s](Napi::Env, Napi::Object& out) { out.Set("length", s->len); };
  return IssueSev(info, 3, std::move(op));
}

// close(): idempotent. Drops this object's fd and memory references; the fd really closes (and
// the memory is released) once no vCPU of this VM and no in-flight job still uses them.
Napi::Value Vm::Close(const Napi::CallbackInfo& info) {
  fd_.reset();
  memory_.reset();
  return info.Env().Undefined();
}

Napi::Value Vm::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_ ? fd_->fd() : -1); }
Napi::Value Vm::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !fd_); }

// mappedSlots: the memslots this Vm holds mappings for (diagnostics and tests).
Napi::Value Vm::GetMappedSlots(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  if (memory_) {
    uint32_t i = 0;
    for (auto& kv : memory_->slots) a.Set(i++, Napi::Number::New(env, kv.first));
  }
  return a;
}


// ---- SEV-SNP launch ----------------------------------------------------------------------------

// snpLaunchStart(sevFd, policy, gosvw: 16 bytes, flags, async): KVM_SEV_SNP_LAUNCH_START — create
// the guest context under `policy` (u64) and bind the VM's ASID to it.
Napi::Value Vm::SnpLaunchStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_SNP_LAUNCH_START;
  op.sevFd = FdArg(info[0], "sevFd");
  auto s = NewStruct<uapi::kvm_sev_snp_launch_start>();
  s->policy = U64Arg(info[1], "policy");
  Bytes gosvw = OptionalBytes(info[2], "snpLaunchStart gosvw");
  if (gosvw.data && gosvw.length != sizeof s->gosvw) throw Napi::RangeError::New(env, "snpLaunchStart: gosvw must be 16 bytes");
  if (gosvw.data) memcpy(s->gosvw, gosvw.data, sizeof s->gosvw);
  s->flags = static_cast<uint16_t>(U32Arg(info[3], "flags"));
  op.data = s;
  return IssueSev(info, 4, std::move(op));
}

// snpLaunchUpdate(sevFd, gfnStart, memory | null, offset, length, type, flags, async)
// → {gfnStart, length, offset}: KVM_SEV_SNP_LAUNCH_UPDATE of `length` bytes of private memory from
// gfnStart, of page type `type`, copied from [offset, +length) of `memory` (null for ZERO pages).
// The kernel may stop early with success: the returned fields are what is left to do.
Napi::Value Vm::SnpLaunchUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_SNP_LAUNCH_UPDATE;
  op.sevFd = FdArg(info[0], "sevFd");
  auto s = NewStruct<uapi::kvm_sev_snp_launch_update>();
  s->gfn_start = U64Arg(info[1], "gfnStart");
  SharedMapping m = info[2].IsNull() || info[2].IsUndefined() ? nullptr : MappingArg(info[2], "memory");
  uint64_t offset = U64Arg(info[3], "offset");
  s->len = U64Arg(info[4], "length");
  s->type = static_cast<uint8_t>(U32Arg(info[5], "type"));
  s->flags = static_cast<uint16_t>(U32Arg(info[6], "flags"));
  uint64_t base = 0;
  if (m) {
    if (!m->Contains(offset, s->len)) throw Napi::RangeError::New(env, "snpLaunchUpdate: range is outside guest memory");
    base = Addr(m->base());
    s->uaddr = base + offset;
    op.keep.push_back(m);
  } else if (!info[2].IsNull() && !info[2].IsUndefined()) {
    return ErrnoOutcome(env, BoolArg(info, 7), EBADF);  // a released GuestMemory
  }
  op.data = s;
  op.finish = [s, base](Napi::Env, Napi::Object& out) {
    out.Set("gfnStart", static_cast<double>(s->gfn_start));
    out.Set("length", static_cast<double>(s->len));
    out.Set("offset", static_cast<double>(base ? s->uaddr - base : 0));
  };
  return IssueSev(info, 7, std::move(op));
}

// snpLaunchFinish(sevFd, idBlock | null, idAuth | null, authKeyEn, vcekDisabled, hostData: 32
// bytes | null, flags, async): KVM_SEV_SNP_LAUNCH_FINISH — measure every vCPU's VMSA, then finish
// the launch (with an ID block when one is given).
Napi::Value Vm::SnpLaunchFinish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SevOp op;
  op.id = uapi::KVM_SEV_SNP_LAUNCH_FINISH;
  op.sevFd = FdArg(info[0], "sevFd");
  auto s = NewStruct<uapi::kvm_sev_snp_launch_finish>();
  Bytes idBlock = OptionalBytes(info[1], "snpLaunchFinish idBlock");
  Bytes idAuth = OptionalBytes(info[2], "snpLaunchFinish idAuth");
  if (idBlock.data) {
    if (idBlock.length != uapi::KVM_SEV_SNP_ID_BLOCK_SIZE || !idAuth.data || idAuth.length != uapi::KVM_SEV_SNP_ID_AUTH_SIZE)
      throw Napi::RangeError::New(env, "snpLaunchFinish: an ID block is 96 bytes and needs a 4096-byte ID auth");
    s->id_block_en = 1;
    s->id_block_uaddr = Addr(idBlock.data);
    s->id_auth_uaddr = Addr(idAuth.data);
    op.pins->Add(info[1]);
    op.pins->Add(info[2]);
  }
  s->auth_key_en = BoolArg(info, 3) ? 1 : 0;
  s->vcek_disabled = BoolArg(info, 4) ? 1 : 0;
  Bytes hostData = OptionalBytes(info[5], "snpLaunchFinish hostData");
  if (hostData.data && hostData.length != sizeof s->host_data) throw Napi::RangeError::New(env, "snpLaunchFinish: hostData must be 32 bytes");
  if (hostData.data) memcpy(s->host_data, hostData.data, sizeof s->host_data);
  s->flags = static_cast<uint16_t>(U32Arg(info[6], "flags"));
  op.data = s;
  return IssueSev(info, 7, std::move(op));
}

// snpEnableReqCerts(sevFd, async): KVM_SEV_SNP_ENABLE_REQ_CERTS (7.2) — before any vCPU exists:
// the guest's certificate requests exit to user space (KVM_EXIT_SNP_REQ_CERTS).
Napi::Value Vm::SnpEnableReqCerts(const Napi::CallbackInfo& info) {
  SevOp op;
  op.id = uapi::KVM_SEV_SNP_ENABLE_REQ_CERTS;
  op.sevFd = FdArg(info[0], "sevFd");
  return IssueSev(info, 1, std::move(op));
}

}  // namespace kvm
}  // namespace addon
