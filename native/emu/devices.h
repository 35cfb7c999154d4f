// Which paths the emulator answers, and what an open of them returns. Kept apart from
// the interposition code so new device kinds (e.g. /dev/kvm's SEV parts) slot in here.
#pragma once

#include <cstddef>

namespace sevemu {

// If `path` is an emulated path, performs the open and returns true, with *result the new
// fd or -1 (errno set). Returns false for every other path.
bool open_emulated(const char* path, int flags, int* result);

// access()/faccessat() for emulated paths: returns true and sets *result when handled.
bool access_emulated(const char* path, int mode, int* result);

// A memfd holding `len` bytes of `data`, positioned at 0: how an emulated read-only file (sysfs,
// configfs attributes) is opened. Opening it for writing is EACCES. Returns the fd or -1.
int open_contents(const void* data, size_t len, int flags);

// The emulated /dev/sev path (SEV_EMU_DEVICE, default /dev/sev).
const char* sev_device_path();

}  // namespace sevemu
