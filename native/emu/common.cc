#include "common.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace sevemu {

void log_line(const char* fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "sev-emu: ");
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  size_t len = std::min(sizeof buf - 2, size_t(n + m));
  buf[len++] = '\n';
  ssize_t w = write(2, buf, len);  // stderr is never our device fd
  (void)w;
}

bool trace_enabled() {
  static const bool on = [] {
    const char* v = getenv("SEV_EMU_TRACE");
    return v && *v && strcmp(v, "0") != 0;
  }();
  return on;
}

namespace {
struct ErrnoName {
  int value;
  const char* name;
};
#define E(x) {x, #x}
const ErrnoName kErrnos[] = {
    E(EPERM),  E(ENOENT), E(EINTR),  E(EIO),    E(ENXIO),     E(E2BIG),    E(EBADF),
    E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY),     E(EEXIST),   E(ENODEV),
    E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY), E(ENOSPC),    E(ENOSYS),   E(EOPNOTSUPP),
    E(ETIMEDOUT), E(ERANGE), E(ENOTSUP), {524, "ENOTSUPP"},  // kernel-internal, seen by userspace
};
#undef E
}  // namespace

std::string errno_name(int err) {
  for (const auto& e : kErrnos)
    if (e.value == err) return e.name;
  return std::to_string(err);
}

int errno_from_name(const std::string& name) {
  for (const auto& e : kErrnos)
    if (name == e.name) return e.value;
  return 0;
}

}  // namespace sevemu
