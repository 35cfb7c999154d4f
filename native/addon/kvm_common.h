// Shared pieces of the KVM objects: refcounted owners for fds and memory mappings, the class
// registry (constructors, type tags) and argument helpers.
//
// Lifetime model. Every kernel resource lives in a small C++ object held by std::shared_ptr:
//   - FdHandle closes its fd when the last reference goes;
//   - Mapping munmaps guest memory when the last reference goes.
// The JS-visible objects hold one reference each; an async call captures its own references in
// the worker's closure, so close() from JS only drops the object's reference and the fd / mapping
// really goes away when the last in-flight call ends. Nothing here depends on GC order.
#pragma once

#include <napi.h>

#include "uapi/kvm_flex.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/ioctl.h>

namespace addon {
namespace kvm {

// kvm_cpuid2's fixed part and the C ioctl numbers (the C++ ones from 6.1 headers are wrong).
using Cpuid2Header = uapi::kvm_cpuid2_header;
using uapi::KVMIO_GET_SUPPORTED_CPUID;
using uapi::KVMIO_SET_CPUID2;

// Counters for leak tests (exported as kvmStats()).
struct Stats {
  std::atomic<int64_t> mappings{0};
  std::atomic<int64_t> mappedBytes{0};
  std::atomic<int64_t> fds{0};
};
Stats& GlobalStats();

// An owned fd: closed when the last shared_ptr is dropped.
class FdHandle {
 public:
  explicit FdHandle(int fd);
  ~FdHandle();
  FdHandle(const FdHandle&) = delete;
  FdHandle& operator=(const FdHandle&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};
using SharedFd = std::shared_ptr<FdHandle>;

// One anonymous guest-memory mapping: munmap'ed when the last shared_ptr is dropped (by the
// GuestMemory object, its ArrayBuffer's finalizer, a Vm memory slot, an encrypted region, or a
// worker-thread job).
class Mapping {
 public:
  Mapping(uint8_t* base, size_t size);
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  // True when [offset, offset + length) lies inside the mapping (no overflow).
  bool Contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

 private:
  uint8_t* base_;
  size_t size_;
};
using SharedMapping = std::shared_ptr<Mapping>;

// Constructors and type tags of the KVM classes, shared by their methods through the `data`
// pointer DefineClass hands to every method (one instance per addon environment).
struct Classes {
  Napi::FunctionReference vm;
  Napi::FunctionReference vcpu;
  Napi::FunctionReference guestMemfd;
};
Classes* ClassesOf(const Napi::CallbackInfo& info);

extern const napi_type_tag kGuestMemoryTag;
extern const napi_type_tag kVmTag;
extern const napi_type_tag kVcpuTag;
extern const napi_type_tag kKvmTag;
extern const napi_type_tag kGuestMemfdTag;

// The mapping behind a GuestMemory argument. Throws TypeError when `v` is not a GuestMemory;
// returns nullptr when it has been released (the caller reports EBADF).
SharedMapping MappingArg(const Napi::Value& v, const char* what);

// Integer arguments: a non-negative safe-integer Number or a BigInt. Throw TypeError/RangeError.
uint64_t U64Arg(const Napi::Value& v, const char* what);
uint32_t U32Arg(const Napi::Value& v, const char* what);
int FdArg(const Napi::Value& v, const char* what);

// An Error with `errno` set, for constructors that fail in the kernel (open/mmap).
Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err);

// A resolved outcome (errno only), sync or as a resolved Promise: for calls on closed objects.
Napi::Value ErrnoOutcome(Napi::Env env, bool async, int err);

}  // namespace kvm
}  // namespace addon
