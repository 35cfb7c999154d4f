// Kvm: the /dev/kvm fd and its system ioctls.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "ioctl_call.h"
#include "kvm_classes.h"

namespace addon {
namespace kvm {

Napi::Function Kvm::Define(Napi::Env env, Classes* classes) {
  return DefineClass(env, "Kvm",
                     {
                         InstanceMethod<&Kvm::GetApiVersion>("apiVersion", napi_default, classes),
                         InstanceMethod<&Kvm::CheckExtension>("checkExtension", napi_default, classes),
                         InstanceMethod<&Kvm::GetVcpuMmapSize>("vcpuMmapSize", napi_default, classes),
                         InstanceMethod<&Kvm::GetSupportedCpuid>("supportedCpuid", napi_default, classes),
                         InstanceMethod<&Kvm::CreateVm>("createVm", napi_default, classes),
                         InstanceMethod<&Kvm::Close>("close", napi_default, classes),
                         InstanceAccessor<&Kvm::GetFd>("fd", napi_default, classes),
                         InstanceAccessor<&Kvm::GetClosed>("closed", napi_default, classes),
                     },
                     classes);
}

// new Kvm(path): open(path, O_RDWR | O_CLOEXEC). Throws an Error carrying `errno` on failure.
Kvm::Kvm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Kvm>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "Kvm(path): path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(env, "open " + path, errno);
  fd_ = std::make_shared<FdHandle>(fd);
  info.This().As<Napi::Object>().TypeTag(&kKvmTag);
}

// A system ioctl with an integer argument, issued inline: {errno, value}.
static Napi::Object IntIoctl(Napi::Env env, const SharedFd& fd, unsigned long req, unsigned long arg) {
  Outcome o;
  int r = -1;
  if (!fd) {
    o.err = EBADF;
  } else {
    r = ::ioctl(fd->fd(), req, arg);
    if (r < 0) o.err = errno;
  }
  Napi::Object out = OutcomeObject(env, o, nullptr);
  out.Set("value", Napi::Number::New(env, r < 0 ? 0 : r));
  return out;
}

// KVM_GET_API_VERSION → {value}: always 12 on every kernel KVM userspace can use.
Napi::Value Kvm::GetApiVersion(const Napi::CallbackInfo& info) {
  return IntIoctl(info.Env(), fd_, KVM_GET_API_VERSION, 0);
}

// KVM_CHECK_EXTENSION(cap) → {value}: 0 = unsupported, else a capability-specific value
// (for KVM_CAP_VM_TYPES a bitmask of supported VM types; 0 on kernels that predate it).
Napi::Value Kvm::CheckExtension(const Napi::CallbackInfo& info) {
  return IntIoctl(info.Env(), fd_, KVM_CHECK_EXTENSION, U32Arg(info[0], "checkExtension cap"));
}

// KVM_GET_VCPU_MMAP_SIZE → {value}: bytes to mmap from a vCPU fd (kvm_run + PIO data page, ...).
Napi::Value Kvm::GetVcpuMmapSize(const Napi::CallbackInfo& info) {
  return IntIoctl(info.Env(), fd_, KVM_GET_VCPU_MMAP_SIZE, 0);
}

// KVM_GET_SUPPORTED_CPUID → {entries: [{function, index, flags, eax, ebx, ecx, edx}]}: the CPUID
// leaves KVM can expose to a guest (E2BIG is retried with a larger table).
Napi::Value Kvm::GetSupportedCpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Outcome o;
  std::vector<uint8_t> storage;
  uint32_t nent = 0;
  if (!fd_) o.err = EBADF;
  for (uint32_t n = 64; fd_ && n <= 4096; n *= 2) {
    storage.assign(sizeof(Cpuid2Header) + n * sizeof(kvm_cpuid_entry2), 0);
    reinterpret_cast<Cpuid2Header*>(storage.data())->nent = n;
    o.err = ::ioctl(fd_->fd(), KVMIO_GET_SUPPORTED_CPUID, storage.data()) < 0 ? errno : 0;
    if (o.err != E2BIG) break;
  }
  if (!o.err) nent = reinterpret_cast<Cpuid2Header*>(storage.data())->nent;
  return OutcomeObject(env, o, [&](Napi::Env env, Napi::Object& out) {
    Napi::Array entries = Napi::Array::New(env);
    for (uint32_t i = 0; i < nent; i++) {
      kvm_cpuid_entry2 e;
      std::memcpy(&e, storage.data() + sizeof(Cpuid2Header) + i * sizeof e, sizeof e);
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("function", e.function);
      entry.Set("index", e.index);
      entry.Set("flags", e.flags);
      entry.Set("eax", e.eax);
      entry.Set("ebx", e.ebx);
      entry.Set("ecx", e.ecx);
      entry.Set("edx", e.edx);
      entries.Set(i, entry);
    }
    out.Set("entries", entries);
  });
}

// KVM_CREATE_VM(type) → {vm}: a new VM of `type` (0 = default; KVM_X86_SEV_VM etc. on kernels
// with KVM_CAP_VM_TYPES). The Vm learns the vCPU mmap size here, once.
Napi::Value Kvm::CreateVm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t type = U32Arg(info[0], "createVm type");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  int mmapSize = ::ioctl(fd_->fd(), KVM_GET_VCPU_MMAP_SIZE, 0);
  Outcome o;
  if (mmapSize < 0) {
    o.err = errno;
    return OutcomeObject(env, o, nullptr);
  }
  int vmfd = ::ioctl(fd_->fd(), KVM_CREATE_VM, static_cast<unsigned long>(type));
  if (vmfd < 0) {
    o.err = errno;
    return OutcomeObject(env, o, nullptr);
  }
  ::fcntl(vmfd, F_SETFD, FD_CLOEXEC);  // KVM's anon-inode fds already are; be explicit
  Vm::Init init{std::make_shared<FdHandle>(vmfd), static_cast<size_t>(mmapSize)};
  Napi::Object vm = ClassesOf(info)->vm.New({Napi::External<Vm::Init>::New(env, &init)});
  Napi::Object out = OutcomeObject(env, o, nullptr);
  out.Set("vm", vm);
  return out;
}

// close(): idempotent; the fd closes now (no call on /dev/kvm runs on a worker thread).
Napi::Value Kvm::Close(const Napi::CallbackInfo& info) {
  fd_.reset();
  return info.Env().Undefined();
}

Napi::Value Kvm::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_ ? fd_->fd() : -1);
}
Napi::Value Kvm::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !fd_); }

}  // namespace kvm
}  // namespace addon
