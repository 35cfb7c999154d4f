#include "ioctl_call.h"

namespace addon {

Napi::Object OutcomeObject(Napi::Env env, const Outcome& o, const Finish& finish) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("errno", Napi::Number::New(env, o.err));
  result.Set("fwError", Napi::Number::New(env, o.fwError));
  if (finish) finish(env, result);
  return result;
}

namespace {

class IoctlWorker : public Napi::AsyncWorker {
 public:
  IoctlWorker(Napi::Env env, Work work, Finish finish, std::shared_ptr<Pins> pins,
              std::function<void()> onSettled)
      : Napi::AsyncWorker(env, "node-sev:ioctl"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        finish_(std::move(finish)),
        pins_(std::move(pins)),
        onSettled_(std::move(onSettled)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { outcome_ = work_(); }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (onSettled_) onSettled_();
    try {
      deferred_.Resolve(OutcomeObject(env, outcome_, finish_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  std::shared_ptr<Pins> pins_;
  std::function<void()> onSettled_;
  Outcome outcome_;
};

}  // namespace

Napi::Value RunIoctl(Napi::Env env, bool async, Work work, Finish finish, std::shared_ptr<Pins> pins,
                     std::function<void()> onSettled) {
  if (!async) {
    Outcome o = work();
    if (onSettled) onSettled();
    return OutcomeObject(env, o, finish);
  }
  auto* worker = new IoctlWorker(env, std::move(work), std::move(finish), std::move(pins),
                                 std::move(onSettled));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK
  return promise;
}

Bytes OptionalBytes(const Napi::Value& v, const char* what) {
  Bytes b;
  if (v.IsUndefined() || v.IsNull()) return b;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Buffer or Uint8Array");
  }
  auto arr = v.As<Napi::Uint8Array>();
  b.data = arr.Data();
  b.length = arr.ByteLength();
  return b;
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].ToBoolean().Value();
}

}  // namespace addon
