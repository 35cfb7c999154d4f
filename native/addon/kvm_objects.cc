// KVM fd objects (Kvm, Vm, Vcpu, GuestMemory, GuestMemfd): registration and the leak counters.
#include "kvm_objects.h"

#include "kvm_classes.h"

namespace addon {

// kvmStats() → {mappings, mappedBytes, fds}: live GuestMemory mappings and KVM fds owned by the
// addon (for leak tests; the kernel's view is /proc/self/fd and /proc/self/maps).
static Napi::Value KvmStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto& s = kvm::GlobalStats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("mappings", Napi::Number::New(env, static_cast<double>(s.mappings.load())));
  o.Set("mappedBytes", Napi::Number::New(env, static_cast<double>(s.mappedBytes.load())));
  o.Set("fds", Napi::Number::New(env, static_cast<double>(s.fds.load())));
  return o;
}

void RegisterKvm(Napi::Env env, Napi::Object exports) {
  // One registry per environment (main thread, each worker_thread), freed with it.
  auto* classes = new kvm::Classes();
  env.AddCleanupHook([classes]() { delete classes; });
  Napi::Function vm = kvm::Vm::Define(env, classes);
  Napi::Function vcpu = kvm::Vcpu::Define(env, classes);
  classes->vm = Napi::Persistent(vm);
  classes->vcpu = Napi::Persistent(vcpu);
  Napi::Function gmem = kvm::GuestMemfd::Define(env, classes);
  classes->guestMemfd = Napi::Persistent(gmem);
  exports.Set("GuestMemfd", gmem);
  exports.Set("Kvm", kvm::Kvm::Define(env, classes));
  exports.Set("Vm", vm);
  exports.Set("Vcpu", vcpu);
  exports.Set("GuestMemory", kvm::GuestMemory::Define(env, classes));
  exports.Set("kvmStats", Napi::Function::New(env, KvmStats, "kvmStats"));
}

}  // namespace addon
