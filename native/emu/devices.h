// Which paths the emulator answers, and what an open of them returns. Kept apart from
// the interposition code so new device kinds (e.g. /dev/kvm's SEV parts) slot in here.
#pragma once

namespace sevemu {

// If `path` is an emulated path, performs the open and returns true, with *result the new
// fd or -1 (errno set). Returns false for every other path.
bool open_emulated(const char* path, int flags, int* result);

// access()/faccessat() for emulated paths: returns true and sets *result when handled.
bool access_emulated(const char* path, int mode, int* result);

// The emulated /dev/sev path (SEV_EMU_DEVICE, default /dev/sev).
const char* sev_device_path();

}  // namespace sevemu
