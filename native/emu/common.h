// Small shared helpers for the emulator: byte buffers, little-endian access, logging.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sevemu {

using Bytes = std::vector<uint8_t>;

inline uint32_t get_le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline void put_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = uint8_t(v >> (8 * i));
}

// Writes one line to stderr with the "sev-emu: " prefix (plain write(2), no stdio buffering).
void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// True when SEV_EMU_TRACE=1: each command and its result is logged.
bool trace_enabled();

// Name of an errno value ("EINVAL"), or its number as text.
std::string errno_name(int err);
// Parses "EINVAL" etc.; returns 0 when unknown.
int errno_from_name(const std::string& name);

}  // namespace sevemu
