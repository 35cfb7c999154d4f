// Names of SEV_ISSUE_CMD commands and firmware status codes, as used by traces and by
// SEV_EMU_FAULT rules (and as the TypeScript layer names them).
#pragma once

#include <cstdint>
#include <string>

namespace sevemu {

// "PEK_GEN" for uapi::SEV_PEK_GEN, etc.; null for numbers without a name.
const char* command_name(uint32_t cmd);
// Inverse of command_name; returns false when unknown.
bool command_from_name(const std::string& name, uint32_t& cmd);

// "INVALID_PLATFORM_STATE" for 0x01, etc.; null when unknown.
const char* status_name(int status);
bool status_from_name(const std::string& name, int& status);

}  // namespace sevemu
