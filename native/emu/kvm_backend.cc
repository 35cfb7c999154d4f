#include "kvm_backend.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common.h"
#include "kvm_emu.h"
#include "real_libc.h"
#if SEVEMU_SOFTKVM
#include "softkvm/vm.h"
#endif

namespace sevemu {
namespace {

enum class Mode { kAuto, kHost, kSoft };

Mode configured() {
  const char* env = getenv("SEV_EMU_KVM");
  if (env && strcmp(env, "host") == 0) return Mode::kHost;
  if (env && strcmp(env, "soft") == 0) return Mode::kSoft;
  return Mode::kAuto;
}

std::atomic<const char*> g_backend{nullptr};

void chose(const char* name, const char* why) {
  const char* prev = g_backend.exchange(name);
  if (trace_enabled() && prev != name) log_line("KVM backend: %s (%s)", name, why);
}

int open_soft(int flags) {
#if SEVEMU_SOFTKVM
  int fd = softkvm::open_soft_kvm(flags);
  if (fd >= 0) chose("soft", "the software KVM on Unicorn");
  return fd;
#else
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true)) log_line("%s", sevemu_softkvm_unavailable());
  errno = ENOENT;
  return -1;
#endif
}

}  // namespace

int open_kvm(const char* path, int flags, unsigned mode) {
  switch (configured()) {
    case Mode::kHost: {
      int fd = open_kvm_device(path, flags, mode);
      if (fd >= 0) chose("host", "SEV_EMU_KVM=host");
      return fd;
    }
    case Mode::kSoft:
      return open_soft(flags);
    case Mode::kAuto:
      break;
  }
  int fd = open_kvm_device(path, flags, mode);
  if (fd >= 0) {
    chose("host", "/dev/kvm opened");
    return fd;
  }
  return open_soft(flags);
}

bool soft_kvm_answers() {
  if (sevemu_softkvm_unavailable()) return false;
  switch (configured()) {
    case Mode::kHost: return false;
    case Mode::kSoft: return true;
    case Mode::kAuto: break;
  }
  const char* chosen = g_backend.load();
  if (chosen) return strcmp(chosen, "soft") == 0;
  int fd = real::open("/dev/kvm", O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return true;
  real::close(fd);
  return false;
}

void access_kvm(const char* path, int mode, int* result) {
  if (configured() != Mode::kSoft && real::access(path, mode) == 0) {
    *result = 0;
    return;
  }
  if (configured() == Mode::kHost || sevemu_softkvm_unavailable()) {
    *result = real::access(path, mode);
    return;
  }
  *result = 0;  // crw-rw---- root:kvm, as the real device: root may read and write
  if (mode & X_OK) {
    errno = EACCES;
    *result = -1;
  }
}

}  // namespace sevemu

extern "C" const char* sevemu_kvm_backend(void) { return sevemu::g_backend.load(); }

extern "C" const char* sevemu_softkvm_unavailable(void) {
#if SEVEMU_SOFTKVM
  return sevemu::softkvm::soft_kvm_unavailable();
#else
  return "the software KVM needs Unicorn >= 2.1, and this emulator was built without it: run "
         "`sudo scripts/install-unicorn.sh`, then `npm run build`";
#endif
}
