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
// Every sev_ret_code name of Linux 7.2's psp-sev.h except SEV_RET_MAX (a bound, not a status).
// INVALID_CONFIG comes before its misspelled alias so that 0x03 is printed correctly; both parse.
#define S(x) {uapi::SEV_RET_##x, #x}
const StatusName kStatuses[] = {
    S(NO_FW_CALL), S(SUCCESS), S(INVALID_PLATFORM_STATE), S(INVALID_GUEST_STATE),
    S(INVALID_CONFIG), S(INAVLID_CONFIG), S(INVALID_LEN), S(ALREADY_OWNED),
    S(INVALID_CERTIFICATE), S(POLICY_FAILURE), S(INACTIVE), S(INVALID_ADDRESS), S(BAD_SIGNATURE),
    S(BAD_MEASUREMENT), S(ASID_OWNED), S(INVALID_ASID), S(WBINVD_REQUIRED), S(DFFLUSH_REQUIRED),
    S(INVALID_GUEST), S(INVALID_COMMAND), S(ACTIVE), S(HWSEV_RET_PLATFORM), S(HWSEV_RET_UNSAFE),
    S(UNSUPPORTED), S(INVALID_PARAM), S(RESOURCE_LIMIT), S(SECURE_DATA_INVALID),
    S(INVALID_PAGE_SIZE), S(INVALID_PAGE_STATE), S(INVALID_MDATA_ENTRY), S(INVALID_PAGE_OWNER),
    S(AEAD_OFLOW), S(EXIT_RING_BUFFER), S(RMP_INIT_REQUIRED), S(BAD_SVN), S(BAD_VERSION),
    S(SHUTDOWN_REQUIRED), S(UPDATE_FAILED), S(RESTORE_REQUIRED), S(RMP_INITIALIZATION_FAILED),
    S(INVALID_KEY), S(SHUTDOWN_INCOMPLETE), S(INCORRECT_BUFFER_LENGTH),
    S(EXPAND_BUFFER_LENGTH_REQUEST), S(SPDM_REQUEST), S(SPDM_ERROR),
    S(SEV_STATUS_ERR_IN_DEV_CONN), S(SEV_STATUS_INVALID_DEV_CTX), S(SEV_STATUS_INVALID_TDI_CTX),
    S(SEV_STATUS_INVALID_TDI), S(SEV_STATUS_RECLAIM_REQUIRED), S(IN_USE),
    S(SEV_STATUS_INVALID_DEV_STATE), S(SEV_STATUS_INVALID_TDI_STATE),
    S(SEV_STATUS_DEV_CERT_CHANGED), S(SEV_STATUS_RESYNC_REQ), S(SEV_STATUS_RESPONSE_TOO_LARGE),
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
