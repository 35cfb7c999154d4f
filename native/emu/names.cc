#include "names.h"

#include "uapi/psp_sev.h"

namespace sevemu {
namespace {

const char* const kCommands[] = {
    "FACTORY_RESET", "PLATFORM_STATUS", "PEK_GEN",  "PEK_CSR",
    "PDH_GEN",       "PDH_CERT_EXPORT", "PEK_CERT_IMPORT", "GET_ID",
    "GET_ID2",       "SNP_PLATFORM_STATUS", "SNP_COMMIT", "SNP_SET_CONFIG",
    "SNP_VLEK_LOAD",
};
static_assert(sizeof kCommands / sizeof kCommands[0] == uapi::SEV_MAX, "command names");

struct StatusName {
  int value;
  const char* name;
};
#define S(x) {uapi::SEV_RET_##x, #x}
const StatusName kStatuses[] = {
    S(SUCCESS), S(INVALID_PLATFORM_STATE), S(INVALID_GUEST_STATE), S(INVALID_CONFIG),
    S(INVALID_LEN), S(ALREADY_OWNED), S(INVALID_CERTIFICATE), S(POLICY_FAILURE), S(INACTIVE),
    S(INVALID_ADDRESS), S(BAD_SIGNATURE), S(BAD_MEASUREMENT), S(ASID_OWNED), S(INVALID_ASID),
    S(WBINVD_REQUIRED), S(DFFLUSH_REQUIRED), S(INVALID_GUEST), S(INVALID_COMMAND), S(ACTIVE),
    S(HWSEV_RET_PLATFORM), S(HWSEV_RET_UNSAFE), S(UNSUPPORTED), S(INVALID_PARAM),
    S(RESOURCE_LIMIT), S(SECURE_DATA_INVALID), S(INVALID_PAGE_SIZE), S(INVALID_PAGE_STATE),
    S(INVALID_MDATA_ENTRY), S(INVALID_PAGE_OWNER), S(AEAD_OFLOW), S(EXIT_RING_BUFFER),
    S(RMP_INIT_REQUIRED), S(BAD_SVN), S(BAD_VERSION), S(SHUTDOWN_REQUIRED), S(UPDATE_FAILED),
    S(RESTORE_REQUIRED), S(RMP_INITIALIZATION_FAILED), S(INVALID_KEY),
};
#undef S

}  // namespace

const char* command_name(uint32_t cmd) {
  return cmd < uapi::SEV_MAX ? kCommands[cmd] : nullptr;
}

bool command_from_name(const std::string& name, uint32_t& cmd) {
  for (uint32_t i = 0; i < uapi::SEV_MAX; i++)
    if (name == kCommands[i]) {
      cmd = i;
      return true;
    }
  return false;
}

const char* status_name(int status) {
  for (const auto& s : kStatuses)
    if (s.value == status) return s.name;
  return nullptr;
}

bool status_from_name(const std::string& name, int& status) {
  for (const auto& s : kStatuses)
    if (name == s.name) {
      status = s.value;
      return true;
    }
  return false;
}

}  // namespace sevemu
