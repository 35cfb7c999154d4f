// Signals and KVM_RUN. The kernel's KVM_RUN returns EINTR when a signal the program handles
// arrives while the vCPU runs (that is how VMMs kick vCPUs), and runs with the signal mask
// KVM_SET_SIGNAL_MASK gave. A software vCPU runs in the caller's thread, so the emulator wraps
// every handler the program installs (sigaction/signal are interposed): the wrapper stops the
// vCPU running on the interrupted thread, then calls the program's handler.
#pragma once

#include <signal.h>

namespace sevemu::softkvm {

class SoftVcpu;

// For the duration of a KVM_RUN: marks `vcpu` as running on this thread and applies `mask`
// (when not null) as the thread's signal mask.
class SignalScope {
 public:
  SignalScope(SoftVcpu* vcpu, const sigset_t* mask);
  ~SignalScope();

 private:
  SoftVcpu* prev_;
  sigset_t old_;
  bool masked_ = false;
};

// The interposed sigaction: installs the wrapper in place of a handler, and reports the
// program's own handler back. Same contract as sigaction(2).
int wrapped_sigaction(int sig, const struct sigaction* act, struct sigaction* old);

}  // namespace sevemu::softkvm
