/* KVM_MEMORY_ENCRYPT_OP checks (arch/x86/kvm/svm/sev.c). */
#include "conformance.h"

void kvm_sev_checks(void) {}
