#include "signals.h"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>

#include "vcpu.h"

namespace sevemu::softkvm {
namespace {

thread_local SoftVcpu* t_running = nullptr;

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);

SigactionFn real_sigaction() {
  static SigactionFn fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
  return fn;
}

// The program's handler per signal, read by the wrapper (a signal may arrive at any time).
struct UserHandler {
  std::atomic<void*> fn{nullptr};
  std::atomic<bool> siginfo{false};
};
UserHandler g_user[NSIG];

void wrapper(int sig, siginfo_t* info, void* uctx) {
  if (SoftVcpu* v = t_running) v->kick();
  UserHandler& h = g_user[sig];
  void* fn = h.fn.load(std::memory_order_acquire);
  if (!fn) return;
  if (h.siginfo.load(std::memory_order_relaxed))
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(fn)(sig, info, uctx);
  else
    reinterpret_cast<void (*)(int)>(fn)(sig);
}

bool wraps(const struct sigaction* act) {
  if (act->sa_flags & SA_RESETHAND) return false;  // the kernel would reset the wrapper, not ours
  if (act->sa_flags & SA_SIGINFO) return act->sa_sigaction != nullptr;
  return act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
}

}  // namespace

SignalScope::SignalScope(SoftVcpu* vcpu, const sigset_t* mask) : prev_(t_running) {
  t_running = vcpu;
  if (mask) masked_ = pthread_sigmask(SIG_SETMASK, mask, &old_) == 0;
}

SignalScope::~SignalScope() {
  if (masked_) pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  t_running = prev_;
}

int wrapped_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  SigactionFn real = real_sigaction();
  if (!real) return errno = ENOSYS, -1;
  if (sig <= 0 || sig >= NSIG) return real(sig, act, old);
  struct sigaction prev;
  const bool was_wrapped = g_user[sig].fn.load() != nullptr;
  int r;
  if (act && wraps(act)) {
    struct sigaction mine = *act;
    mine.sa_flags |= SA_SIGINFO;
    mine.sa_sigaction = wrapper;
    // Publish the program's handler before the wrapper can see the signal.
    void* prev_fn = g_user[sig].fn.load();
    bool prev_si = g_user[sig].siginfo.load();
    g_user[sig].siginfo.store(act->sa_flags & SA_SIGINFO);
    g_user[sig].fn.store(act->sa_flags & SA_SIGINFO ? reinterpret_cast<void*>(act->sa_sigaction)
                                                    : reinterpret_cast<void*>(act->sa_handler));
    r = real(sig, &mine, &prev);
    if (r != 0) {
      g_user[sig].fn.store(prev_fn);
      g_user[sig].siginfo.store(prev_si);
      return r;
    }
    if (old && was_wrapped) {
      prev.sa_flags = prev_si ? prev.sa_flags : (prev.sa_flags & ~SA_SIGINFO);
      if (prev_si) prev.sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(prev_fn);
      else prev.sa_handler = reinterpret_cast<void (*)(int)>(prev_fn);
    }
  } else {
    void* prev_fn = g_user[sig].fn.load();
    bool prev_si = g_user[sig].siginfo.load();
    r = real(sig, act, &prev);
    if (r != 0) return r;
    if (act) g_user[sig].fn.store(nullptr);
    if (old && was_wrapped && prev.sa_sigaction == wrapper) {
      prev.sa_flags = prev_si ? prev.sa_flags : (prev.sa_flags & ~SA_SIGINFO);
      if (prev_si) prev.sa_sigaction = reinterpret_cast<void (*)(int, siginfo_t*, void*)>(prev_fn);
      else prev.sa_handler = reinterpret_cast<void (*)(int)>(prev_fn);
    }
  }
  if (old) *old = prev;
  return 0;
}

}  // namespace sevemu::softkvm
