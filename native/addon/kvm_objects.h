// KVM fd objects (Kvm, Vm, Vcpu, GuestMemory): one class per KVM fd kind.
#pragma once
#include <napi.h>

namespace addon {
void RegisterKvm(Napi::Env env, Napi::Object exports);
}
