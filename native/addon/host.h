// Host probes used by `sev ok`: CPUID, and whether the SEV firmware emulator is loaded.
#pragma once
#include <napi.h>

namespace addon {
void RegisterHost(Napi::Env env, Napi::Object exports);
}
