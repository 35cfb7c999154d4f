/* KVM capability, memory-slot and vCPU-state checks for SEV VM types. */
#include "conformance.h"

void kvm_caps_checks(void) {}
