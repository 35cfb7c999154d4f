#include "kvm_common.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "ioctl_call.h"

namespace addon {
namespace kvm {

Stats& GlobalStats() {
  static Stats stats;
  return stats;
}

FdHandle::FdHandle(int fd) : fd_(fd) { GlobalStats().fds++; }

FdHandle::~FdHandle() {
  if (fd_ >= 0) ::close(fd_);
  GlobalStats().fds--;
}

Mapping::Mapping(uint8_t* base, size_t size) : base_(base), size_(size) {
  GlobalStats().mappings++;
  GlobalStats().mappedBytes += static_cast<int64_t>(size);
}

Mapping::~Mapping() {
  ::munmap(base_, size_);
  GlobalStats().mappings--;
  GlobalStats().mappedBytes -= static_cast<int64_t>(size_);
}

// Random 128-bit tags: a wrapped object of one class can never be unwrapped as another.
const napi_type_tag kGuestMemoryTag = {0x6e6f64652d736576ULL, 0x47756573744d656dULL};
const napi_type_tag kVmTag = {0x6e6f64652d736576ULL, 0x4b564d566d46640aULL};
const napi_type_tag kVcpuTag = {0x6e6f64652d736576ULL, 0x4b564d5663707546ULL};
const napi_type_tag kKvmTag = {0x6e6f64652d736576ULL, 0x4b564d53797346ULL};
const napi_type_tag kGuestMemfdTag = {0x6e6f64652d736576ULL, 0x474d454d46440aULL};

Classes* ClassesOf(const Napi::CallbackInfo& info) { return static_cast<Classes*>(info.Data()); }

uint64_t U64Arg(const Napi::Value& v, const char* what) {
  Napi::Env env = v.Env();
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, std::string(what) + " must fit in 64 bits unsigned");
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d) {
      throw Napi::RangeError::New(env, std::string(what) + " must be a non-negative safe integer");
    }
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(env, std::string(what) + " must be a number or bigint");
}

uint32_t U32Arg(const Napi::Value& v, const char* what) {
  uint64_t x = U64Arg(v, what);
  if (x > 0xffffffffULL) throw Napi::RangeError::New(v.Env(), std::string(what) + " must fit in 32 bits");
  return static_cast<uint32_t>(x);
}

int FdArg(const Napi::Value& v, const char* what) {
  uint64_t x = U64Arg(v, what);
  if (x > 0x7fffffffULL) throw Napi::RangeError::New(v.Env(), std::string(what) + " is not a file descriptor");
  return static_cast<int>(x);
}

Napi::Error ErrnoError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

Napi::Value ErrnoOutcome(Napi::Env env, bool async, int err) {
  Outcome o;
  o.err = err;
  Napi::Object obj = OutcomeObject(env, o, nullptr);
  if (!async) return obj;
  auto d = Napi::Promise::Deferred::New(env);
  d.Resolve(obj);
  return d.Promise();
}

}  // namespace kvm
}  // namespace addon
