#include "host.h"

#include <cpuid.h>
#include <dlfcn.h>

#include <cstdint>

namespace addon {

namespace {

// The emulator (native/emu, preloaded by `sev-emu run`) exports these so that a probe run under
// it sees the emulated platform's CPUID leaf 0x8000001F, as a guest of that platform's host would.
using EmuCpuidFn = int (*)(uint32_t, uint32_t, uint32_t*);
using EmuGenerationFn = const char* (*)();

EmuCpuidFn EmuCpuid() { return reinterpret_cast<EmuCpuidFn>(dlsym(RTLD_DEFAULT, "sevemu_cpuid")); }

// cpuid(leaf, subleaf) → [eax, ebx, ecx, edx]
Napi::Value Cpuid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t leaf = info[0].As<Napi::Number>().Uint32Value();
  uint32_t subleaf = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 0;
  uint32_t r[4] = {0, 0, 0, 0};
  EmuCpuidFn emu = EmuCpuid();
  if (!(emu && emu(leaf, subleaf, r))) {
    uint32_t max = __get_cpuid_max(leaf & 0x80000000u, nullptr);
    if (leaf <= max) __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
  }
  Napi::Array out = Napi::Array::New(env, 4);
  for (uint32_t i = 0; i < 4; i++) out.Set(i, Napi::Number::New(env, r[i]));
  return out;
}

// emulator() → the emulated generation ('milan', ...) when running under sev-emu, else null.
Napi::Value Emulator(const Napi::CallbackInfo& info) {
  auto gen = reinterpret_cast<EmuGenerationFn>(dlsym(RTLD_DEFAULT, "sevemu_generation"));
  if (!gen) return info.Env().Null();
  const char* name = gen();
  return name ? Napi::String::New(info.Env(), name) : info.Env().Null();
}

// kvmBackend() → 'host' | 'soft' when the emulator answered /dev/kvm in this process, else null.
Napi::Value KvmBackend(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<EmuGenerationFn>(dlsym(RTLD_DEFAULT, "sevemu_kvm_backend"));
  const char* name = fn ? fn() : nullptr;
  return name ? Napi::String::New(info.Env(), name) : info.Env().Null();
}

// softkvmUnavailable() → null when the emulator's software KVM can run here, else why not (one
// line, with what to install); null too outside the emulator.
Napi::Value SoftkvmUnavailable(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<EmuGenerationFn>(dlsym(RTLD_DEFAULT, "sevemu_softkvm_unavailable"));
  const char* why = fn ? fn() : nullptr;
  return why ? Napi::String::New(info.Env(), why) : info.Env().Null();
}

}  // namespace

void RegisterHost(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuid", Napi::Function::New(env, Cpuid, "cpuid"));
  exports.Set("emulator", Napi::Function::New(env, Emulator, "emulator"));
  exports.Set("kvmBackend", Napi::Function::New(env, KvmBackend, "kvmBackend"));
  exports.Set("softkvmUnavailable", Napi::Function::New(env, SoftkvmUnavailable, "softkvmUnavailable"));
}

}  // namespace addon
