#include "kvm_objects.h"

namespace addon {

void RegisterKvm(Napi::Env env, Napi::Object exports) {}

}  // namespace addon
