// Fault injection, configured by the environment variable SEV_EMU_FAULT:
//
//   SEV_EMU_FAULT = RULE[,RULE...]
//   RULE          = COMMAND@N=RESULT
//   COMMAND       = FACTORY_RESET | PLATFORM_STATUS | PEK_GEN | PEK_CSR | PDH_GEN |
//                   PDH_CERT_EXPORT | PEK_CERT_IMPORT | GET_ID | GET_ID2 |
//                   SNP_PLATFORM_STATUS | SNP_COMMIT | SNP_SET_CONFIG | SNP_VLEK_LOAD
//                 | a KVM_SEV_* sub-command without the prefix: INIT | ES_INIT | INIT2 |
//                   LAUNCH_START | LAUNCH_UPDATE_DATA | LAUNCH_UPDATE_VMSA | LAUNCH_MEASURE |
//                   LAUNCH_SECRET | LAUNCH_FINISH | GUEST_STATUS | DBG_DECRYPT | DBG_ENCRYPT |
//                   GET_ATTESTATION_REPORT | SEND_* | RECEIVE_*
//   N             = 1, 2, ... (the Nth SEV_ISSUE_CMD / KVM_MEMORY_ENCRYPT_OP of that command
//                   in this process, counting every call, failed ones included) | * (every call)
//   RESULT        = a firmware status name as psp-sev.h spells it without SEV_RET_
//                   (INVALID_PLATFORM_STATE, INVALID_LEN, ... ; see names.cc) or a number (0x1)
//                 | errno:NAME (errno:ENOMEM, errno:EBUSY, ...)
//
// A firmware status makes that command's firmware call fail: the ioctl returns -1/EIO with
// `error` = the status and the platform state unchanged. The kernel's own checks (EPERM on
// a read-only fd, EFAULT, ...) still come first, exactly as with a real firmware error.
// An errno makes the kernel handler fail with that errno before the firmware is called:
// `error` is left as the caller passed it, as the kernel leaves it on such paths.
// For KVM_SEV_* the fault hits the ioctl's first firmware command (after the kernel's
// argument checks and pinning); INIT / ES_INIT / INIT2 reach the firmware only when the
// platform needs its INIT.
// Example: SEV_EMU_FAULT='PEK_GEN@2=INVALID_PLATFORM_STATE,PDH_CERT_EXPORT@*=errno:ENOMEM'
// A malformed rule is reported once on stderr and ignored.
#include "fault.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "common.h"
#include "kvm_emu.h"
#include "names.h"
#include "uapi/kvm_sev.h"
#include "uapi/psp_sev.h"

namespace sevemu {
namespace {

struct Rule {
  bool kvm;  // cmd is a KVM_SEV_* id, not an SEV_ISSUE_CMD one
  uint32_t cmd;
  uint64_t nth;  // 0 = every call
  Fault fault;
};

std::vector<Rule>* g_rules;
std::atomic<uint64_t> g_calls[uapi::SEV_MAX];
constexpr uint32_t kKvmCommands = uapi::KVM_SEV_INIT2 + 1;
std::atomic<uint64_t> g_kvm_calls[kKvmCommands];

bool parse_rule(const std::string& text, Rule& r) {
  auto at = text.find('@'), eq = text.find('=');
  if (at == std::string::npos || eq == std::string::npos || eq < at) return false;
  std::string name = text.substr(0, at);
  r.kvm = !command_from_name(name, r.cmd);
  if (r.kvm && !kvm_sev_command_from_name(name.c_str(), r.cmd)) return false;
  std::string n = text.substr(at + 1, eq - at - 1), res = text.substr(eq + 1);
  if (n == "*") {
    r.nth = 0;
  } else {
    char* end = nullptr;
    r.nth = strtoull(n.c_str(), &end, 10);
    if (n.empty() || *end || r.nth == 0) return false;
  }
  if (res.rfind("errno:", 0) == 0) {
    r.fault.err = errno_from_name(res.substr(6));
    return r.fault.err != 0;
  }
  // NO_FW_CALL (-1) and SUCCESS are not firmware failures, so they cannot be injected.
  if (status_from_name(res, r.fault.status)) return r.fault.status > 0;
  char* end = nullptr;
  long v = strtol(res.c_str(), &end, 0);
  if (res.empty() || *end || v <= 0 || v > 0xffff) return false;
  r.fault.status = int(v);
  return true;
}

void load_rules() {
  g_rules = new std::vector<Rule>;
  const char* env = getenv("SEV_EMU_FAULT");
  if (!env || !*env) return;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    Rule r{};
    if (parse_rule(item, r)) {
      g_rules->push_back(r);
      continue;
    }
    // A fault that cannot be injected must not let the run pass as if it had been.
    log_line("SEV_EMU_FAULT: malformed rule '%s' (want COMMAND@N=STATUS or COMMAND@N=errno:NAME, "
             "N a number or *, STATUS a failure: not SUCCESS or NO_FW_CALL); stopping",
             item.c_str());
    _exit(2);
  }
}

std::once_flag g_rules_loaded;

// At load time, so a malformed rule stops the program before it does anything.
__attribute__((constructor)) void check_rules_at_start() { std::call_once(g_rules_loaded, load_rules); }

}  // namespace

Fault fault_for_call(uint32_t cmd) {
  std::call_once(g_rules_loaded, load_rules);
  if (cmd >= uapi::SEV_MAX) return {};
  uint64_t n = g_calls[cmd].fetch_add(1) + 1;
  for (const Rule& r : *g_rules)
    if (!r.kvm && r.cmd == cmd && (r.nth == 0 || r.nth == n)) return r.fault;
  return {};
}

Fault kvm_fault_for_call(uint32_t id) {
  std::call_once(g_rules_loaded, load_rules);
  if (id >= kKvmCommands) return {};
  uint64_t n = g_kvm_calls[id].fetch_add(1) + 1;
  for (const Rule& r : *g_rules)
    if (r.kvm && r.cmd == id && (r.nth == 0 || r.nth == n)) return r.fault;
  return {};
}

}  // namespace sevemu
