// Shared plumbing for the addon's fd objects: run one ioctl either inline (the *Sync API) or on a
// libuv worker thread (the Promise API), and hand the outcome back to JS as a plain object.
// The C++ side never throws for kernel failures: it reports {errno, fwError} and the TypeScript
// layer turns that into a typed SevError. It only throws for programming errors (bad arg types).
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

namespace addon {

// What one ioctl left behind: errno (0 on success) and the firmware status word the kernel
// copied back (sev_issue_cmd.error / kvm_sev_cmd.error), when there is one.
struct Outcome {
  int err = 0;
  uint32_t fwError = 0;
};

// The work half runs off the JS thread and must not touch napi values; the finish half runs on
// the JS thread and turns the captured output into a JS object (errno/fwError are added).
using Work = std::function<Outcome()>;
using Finish = std::function<void(Napi::Env, Napi::Object&)>;

// Keeps JS buffers alive (and unmoved by GC) while a worker thread writes into them.
class Pins {
 public:
  void Add(const Napi::Value& v) {
    if (!v.IsUndefined() && !v.IsNull()) refs_.push_back(Napi::Persistent(v));
  }

 private:
  std::vector<Napi::Reference<Napi::Value>> refs_;
};

Napi::Object OutcomeObject(Napi::Env env, const Outcome& o, const Finish& finish);

// Runs `work` now (sync) or on the thread pool (async: returns a Promise that resolves with the
// outcome object). `onSettled` runs on the JS thread after the work, in both modes (used to let a
// closed fd be released once no call is using it).
Napi::Value RunIoctl(Napi::Env env, bool async, Work work, Finish finish, std::shared_ptr<Pins> pins,
                     std::function<void()> onSettled);

// Argument helpers: a Buffer/Uint8Array or null/undefined, as (pointer, length).
struct Bytes {
  uint8_t* data = nullptr;
  size_t length = 0;
};
Bytes OptionalBytes(const Napi::Value& v, const char* what);
bool BoolArg(const Napi::CallbackInfo& info, size_t i);

}  // namespace addon
