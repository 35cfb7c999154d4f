#include "host_facts.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unistd.h>

#include "common.h"
#include "cpu_model.h"
#include "firmware.h"
#include "generation.h"
#include "kvm_emu.h"

namespace sevemu {
namespace {

// The emulated machine: the state directory's config once it exists (a machine does not
// change), else the one a new state directory would get from the environment.
const PlatformConfig& emulated_machine() {
  static PlatformConfig config;
  static bool known = false;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (known) return config;
  try {
    NvSession nv;
    if (nv.provisioned()) {
      config = nv.config();
      known = true;
    }
  } catch (const std::exception&) {
  }
  if (!known) {
    config = config_from_env();
    known = true;
  }
  return config;
}

const Generation* emulated_generation() { return emulated_machine().gen; }

}  // namespace

const char* kvm_param_contents(const char* path) {
  static const char kDir[] = "/sys/module/kvm_amd/parameters/";
  if (strncmp(path, kDir, sizeof kDir - 1) != 0) return nullptr;
  const char* name = path + sizeof kDir - 1;
  bool on;
  if (strcmp(name, "sev") == 0)
    on = true;
  else if (strcmp(name, "sev_es") == 0)
    on = emulated_generation()->es;
  else if (strcmp(name, "sev_snp") == 0)
    on = kvm_sev_facts().snp;  // sev_snp_supported

  else
    return nullptr;
  return on ? "Y\n" : "N\n";
}

bool host_snp_enabled() { return emulated_machine().host_snp; }

const char* cpuinfo_contents(const char* path) {
  if (strcmp(path, "/proc/cpuinfo") != 0) return nullptr;
  static const std::string text = [] {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return cpuinfo_text(*emulated_generation(), emulated_machine().host_snp, n > 0 ? unsigned(n) : 1);
  }();
  return text.c_str();
}

}  // namespace sevemu

extern "C" int sevemu_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
  // Beyond the highest leaf cpu_model_cpuid says false and leaves zeros: AMD's answer too.
  sevemu::cpu_model_cpuid(*sevemu::emulated_generation(), leaf, subleaf, out);
  return 1;
}

extern "C" const char* sevemu_generation(void) { return sevemu::emulated_generation()->name; }
