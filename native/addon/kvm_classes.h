// The KVM fd objects, one class per kernel object (like rust-vmm kvm-ioctls):
//   Kvm         /dev/kvm (system ioctls)          created by `new Kvm(path)`
//   Vm          a VM fd (KVM_CREATE_VM)           created by Kvm#createVm
//   Vcpu        a vCPU fd + its mmap'd kvm_run    created by Vm#createVcpu
//   GuestMemory an anonymous mapping for guest RAM created by `new GuestMemory(size, ...)`
//   GuestMemfd  a guest_memfd fd (private memory)  created by Vm#createGuestMemfd
// Methods that issue an ioctl return {errno, fwError, ...outputs} (never throw for kernel
// failures); the last argument `async` runs the ioctl on a libuv worker thread and returns a
// Promise of the same object. Wrong argument types throw TypeError / RangeError.
#pragma once

#include <napi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>
#include <mutex>
#include <pthread.h>

#include "kvm_common.h"

namespace addon {
namespace kvm {

// ---------------------------------------------------------------------------------------------
class GuestMemory : public Napi::ObjectWrap<GuestMemory> {
 public:
  static Napi::Function Define(Napi::Env env, Classes* classes);
  explicit GuestMemory(const Napi::CallbackInfo& info);
  ~GuestMemory() override;
  const SharedMapping& mapping() const { return mapping_; }

 private:
  Napi::Value GetBuffer(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetAddress(const Napi::CallbackInfo& info);
  Napi::Value GetReleased(const Napi::CallbackInfo& info);
  Napi::Value ReadFile(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);

  SharedMapping mapping_;  // null once released
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  size_t size_ = 0;
  uint64_t address_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The memory a VM's kernel object may touch: its memslots and its registered encrypted regions.
// Shared by the Vm, its Vcpus and their in-flight jobs, so no mapping the kernel was given can be
// unmapped while any fd of that VM is open.
struct EncRegion {
  SharedMapping mapping;
  uint64_t addr;
  uint64_t size;
};
struct VmMemory {
  std::map<uint32_t, SharedMapping> slots;
  // The guest_memfd behind each KVM_MEM_GUEST_MEMFD slot: the fd stays open while the slot
  // exists, so closing or collecting the GuestMemfd object cannot unbind a slot's private memory.
  std::map<uint32_t, SharedFd> gmemSlots;
  std::vector<EncRegion> encRegions;
};
using SharedVmMemory = std::shared_ptr<VmMemory>;

// A vCPU fd and its kvm_run mapping (unmapped, then closed, when the last reference goes), and
// which thread is inside KVM_RUN, so kick() can interrupt it.
struct VcpuCore {
  VcpuCore(SharedFd fd, void* run, size_t size) : fd(std::move(fd)), run(run), size(size) {}
  ~VcpuCore();
  int Run();   // KVM_RUN on the calling thread (interruptible by Kick); returns errno or 0
  void Kick();  // make the run in progress, or else the next one, return EINTR
  SharedFd fd;
  void* run;
  size_t size;
  std::mutex mutex;  // guards runner / running
  pthread_t runner{};
  bool running = false;
};

// ---------------------------------------------------------------------------------------------
// A guest_memfd (KVM_CREATE_GUEST_MEMFD): the fd of a VM's private memory. The kernel gives it no
// read/write/ioctl; fallocate punches holes (and allocates) in it.
class GuestMemfd : public Napi::ObjectWrap<GuestMemfd> {
 public:
  static Napi::Function Define(Napi::Env env, Classes* classes);
  explicit GuestMemfd(const Napi::CallbackInfo& info);
  struct Init {  // what Vm#createGuestMemfd hands to the constructor
    SharedFd fd;
    uint64_t size;
    uint64_t flags;
  };
  const SharedFd& fd() const { return fd_; }

 private:
  Napi::Value Fallocate(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetSize(const Napi::CallbackInfo& info);
  Napi::Value GetFlags(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);

  SharedFd fd_;  // null once closed
  uint64_t size_ = 0, flags_ = 0;
};

// ---------------------------------------------------------------------------------------------
class Kvm : public Napi::ObjectWrap<Kvm> {
 public:
  static Napi::Function Define(Napi::Env env, Classes* classes);
  explicit Kvm(const Napi::CallbackInfo& info);

 private:
  Napi::Value GetApiVersion(const Napi::CallbackInfo& info);
  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value GetVcpuMmapSize(const Napi::CallbackInfo& info);
  Napi::Value GetSupportedCpuid(const Napi::CallbackInfo& info);
  Napi::Value CreateVm(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);

  SharedFd fd_;
};

// ---------------------------------------------------------------------------------------------
class Vm : public Napi::ObjectWrap<Vm> {
 public:
  static Napi::Function Define(Napi::Env env, Classes* classes);
  explicit Vm(const Napi::CallbackInfo& info);

  struct Init {  // what Kvm#createVm hands to the constructor (through a Napi::External)
    SharedFd fd;
    size_t vcpuMmapSize;
  };

 private:
  struct SevOp;

  Napi::Value CheckExtension(const Napi::CallbackInfo& info);
  Napi::Value EnableCap(const Napi::CallbackInfo& info);
  Napi::Value SetUserMemoryRegion(const Napi::CallbackInfo& info);
  Napi::Value SetUserMemoryRegion2(const Napi::CallbackInfo& info);
  Napi::Value SetMemoryAttributes(const Napi::CallbackInfo& info);
  Napi::Value CreateGuestMemfd(const Napi::CallbackInfo& info);
  Napi::Value SetTssAddr(const Napi::CallbackInfo& info);
  Napi::Value SetIdentityMapAddr(const Napi::CallbackInfo& info);
  Napi::Value CreateVcpu(const Napi::CallbackInfo& info);
  Napi::Value RegisterEncRegion(const Napi::CallbackInfo& info);
  Napi::Value UnregisterEncRegion(const Napi::CallbackInfo& info);
  Napi::Value EncRegion(const Napi::CallbackInfo& info, bool reg);

  Napi::Value SevInit(const Napi::CallbackInfo& info);
  Napi::Value SevEsInit(const Napi::CallbackInfo& info);
  Napi::Value SevInit2(const Napi::CallbackInfo& info);
  Napi::Value LaunchStart(const Napi::CallbackInfo& info);
  Napi::Value LaunchUpdateData(const Napi::CallbackInfo& info);
  Napi::Value LaunchUpdateDataBatch(const Napi::CallbackInfo& info);
  Napi::Value LaunchUpdateVmsa(const Napi::CallbackInfo& info);
  Napi::Value LaunchMeasure(const Napi::CallbackInfo& info);
  Napi::Value LaunchSecret(const Napi::CallbackInfo& info);
  Napi::Value LaunchFinish(const Napi::CallbackInfo& info);
  Napi::Value GuestStatus(const Napi::CallbackInfo& info);
  Napi::Value DbgDecrypt(const Napi::CallbackInfo& info);
  Napi::Value DbgEncrypt(const Napi::CallbackInfo& info);
  Napi::Value GetAttestationReport(const Napi::CallbackInfo& info);
  Napi::Value SnpLaunchStart(const Napi::CallbackInfo& info);
  Napi::Value SnpLaunchUpdate(const Napi::CallbackInfo& info);
  Napi::Value SnpLaunchFinish(const Napi::CallbackInfo& info);
  Napi::Value SnpEnableReqCerts(const Napi::CallbackInfo& info);

  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value GetMappedSlots(const Napi::CallbackInfo& info);

  Napi::Value IssueSev(const Napi::CallbackInfo& info, size_t asyncArg, SevOp op);

  SharedFd fd_;  // null once closed
  SharedVmMemory memory_;
  size_t vcpuMmapSize_ = 0;
};

// ---------------------------------------------------------------------------------------------
class Vcpu : public Napi::ObjectWrap<Vcpu> {
 public:
  static Napi::Function Define(Napi::Env env, Classes* classes);
  explicit Vcpu(const Napi::CallbackInfo& info);

  struct Init {  // what Vm#createVcpu hands to the constructor
    std::shared_ptr<VcpuCore> core;
    SharedVmMemory vmMemory;
    uint32_t id;
  };

 private:
  Napi::Value GetRegs(const Napi::CallbackInfo& info);
  Napi::Value SetRegs(const Napi::CallbackInfo& info);
  Napi::Value GetSregs(const Napi::CallbackInfo& info);
  Napi::Value SetSregs(const Napi::CallbackInfo& info);
  Napi::Value GetFpu(const Napi::CallbackInfo& info);
  Napi::Value SetFpu(const Napi::CallbackInfo& info);
  Napi::Value SetCpuid2(const Napi::CallbackInfo& info);
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value SetIoData(const Napi::CallbackInfo& info);
  Napi::Value SetMmioData(const Napi::CallbackInfo& info);
  Napi::Value SetHypercallResult(const Napi::CallbackInfo& info);
  Napi::Value SetSnpReqCertsResult(const Napi::CallbackInfo& info);
  Napi::Value Kick(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetId(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value GetRunning(const Napi::CallbackInfo& info);

  std::shared_ptr<VcpuCore> core_;  // null once closed
  SharedVmMemory vmMemory_;
  uint32_t id_ = 0;
  bool running_ = false;
};

}  // namespace kvm
}  // namespace addon
