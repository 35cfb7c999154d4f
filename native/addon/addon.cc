// Module entry: registers one class per kernel fd kind plus a few host probes.
#include <napi.h>

#include "host.h"
#include "kvm_objects.h"
#include "sev_device.h"
#include "sev_guest_device.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  addon::SevDevice::Register(env, exports);
  addon::SevGuestDevice::Register(env, exports);
  addon::RegisterKvm(env, exports);
  addon::RegisterHost(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sev_addon, Init)
