// Which KVM answers /dev/kvm under the emulator (sev-emu run --kvm, SEV_EMU_KVM):
//   host  the real /dev/kvm, with the SEV parts emulated (kvm_system.cc);
//   soft  the software KVM on Unicorn (softkvm/): guests run, with encrypted memory, anywhere;
//   auto  (default) host when the real /dev/kvm opens, else soft.
#pragma once

namespace sevemu {

// open("/dev/kvm") under the emulator: the fd, or -1 with errno set.
int open_kvm(const char* path, int flags, unsigned mode);
// Whether /dev/kvm opens the software KVM in this process (--kvm soft, or auto without a usable
// host KVM): only it creates SNP VMs.
bool soft_kvm_answers();
// access("/dev/kvm"): sets *result as access(2) would.
void access_kvm(const char* path, int mode, int* result);

}  // namespace sevemu

extern "C" {
// The backend that answered /dev/kvm in this process ("host" or "soft"), or null before the
// first open.
__attribute__((visibility("default"))) const char* sevemu_kvm_backend(void);
// Null when the software KVM can run here, else why not and what to install (one line).
__attribute__((visibility("default"))) const char* sevemu_softkvm_unavailable(void);
}
