#include "unicorn_api.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace sevemu::softkvm {
namespace {

constexpr unsigned kMinMajor = 2, kMinMinor = 1;
const char kInstallHint[] = "install Unicorn >= 2.1 (Debian: libunicorn2t64; `sudo scripts/install-unicorn.sh` does it)";

std::once_flag g_once;
UnicornApi g_api;
const UnicornApi* g_loaded = nullptr;
std::string g_reason;

template <typename Fn>
bool resolve(void* lib, const char* name, Fn& out) {
  out = reinterpret_cast<Fn>(dlsym(lib, name));
  return out != nullptr;
}

void load() {
  // RTLD_LOCAL: Unicorn's many symbols stay out of the host program's namespace.
  // SEV_EMU_UNICORN names another build (a path to its libunicorn.so.2).
  const char* name = getenv("SEV_EMU_UNICORN");
  if (!name || !*name) name = "libunicorn.so.2";
  // DEEPBIND: Unicorn is QEMU inside, and its unprefixed symbols (cpu_reset, ...) must resolve
  // to its own, not to those of the process it is loaded into — which may be QEMU itself.
  // AddressSanitizer refuses DEEPBIND (its interceptors would be bypassed): the sanitizer build
  // (npm run test:sanitize) opens Unicorn without it, which is safe wherever the host program is
  // not QEMU — the sanitizer run does not load the emulator into QEMU.
#if defined(__SANITIZE_ADDRESS__)
  void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
#else
  void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
  if (!lib) {
    g_reason = std::string("the software KVM needs libunicorn.so.2, which cannot be loaded (") + dlerror() +
               "): " + kInstallHint;
    return;
  }
  UnicornApi& a = g_api;
  bool ok = resolve(lib, "uc_version", a.version) && resolve(lib, "uc_open", a.open) &&
            resolve(lib, "uc_close", a.close) && resolve(lib, "uc_strerror", a.strerror) &&
            resolve(lib, "uc_mem_map_ptr", a.mem_map_ptr) && resolve(lib, "uc_mmio_map", a.mmio_map) && resolve(lib, "uc_mem_unmap", a.mem_unmap) &&
            resolve(lib, "uc_mem_read", a.mem_read) && resolve(lib, "uc_mem_write", a.mem_write) &&
            resolve(lib, "uc_reg_read", a.reg_read) && resolve(lib, "uc_reg_write", a.reg_write) &&
            resolve(lib, "uc_hook_add", a.hook_add) && resolve(lib, "uc_hook_del", a.hook_del) &&
            resolve(lib, "uc_emu_start", a.emu_start) && resolve(lib, "uc_emu_stop", a.emu_stop) &&
            resolve(lib, "uc_ctl", a.ctl) && resolve(lib, "uc_context_alloc", a.context_alloc) &&
            resolve(lib, "uc_context_save", a.context_save) &&
            resolve(lib, "uc_context_restore", a.context_restore) &&
            resolve(lib, "uc_context_size", a.context_size) && resolve(lib, "uc_context_free", a.context_free);
  if (!ok) {
    g_reason = std::string("libunicorn.so.2 lacks ") + dlerror() + ": " + kInstallHint;
    return;
  }
  unsigned major = 0, minor = 0;
  a.version(&major, &minor);
  if (major < kMinMajor || (major == kMinMajor && minor < kMinMinor)) {
    char buf[64];
    snprintf(buf, sizeof buf, "%u.%u", major, minor);
    // 2.0 ignores guest page tables and cannot enter long mode from 16-bit code (DESIGN.md).
    g_reason = std::string("the software KVM needs Unicorn >= 2.1, this is ") + buf + ": " + kInstallHint;
    return;
  }
  g_loaded = &g_api;
}

}  // namespace

const UnicornApi* unicorn() {
  std::call_once(g_once, load);
  return g_loaded;
}

const char* unicorn_unavailable_reason() {
  unicorn();
  return g_reason.c_str();
}

}  // namespace sevemu::softkvm
