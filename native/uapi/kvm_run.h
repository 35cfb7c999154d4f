// The parts of struct kvm_run (Linux 7.2 include/uapi/linux/kvm.h) that older system headers lack
// or that SEV and private memory add: exit reasons, their union members, and the system-event
// type an SEV-ES guest's termination request produces. Names that <linux/kvm.h> defines as
// macros drop their KVM_ prefix here (EXIT_*, SYSTEM_EVENT_*, MEMORY_EXIT_FLAG_*), so that this
// header can be included after it without the preprocessor rewriting them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace uapi {

// kvm_run.exit_reason values added after 6.1 that the project knows (KVM_EXIT_*).
constexpr uint32_t EXIT_MEMORY_FAULT = 39;
constexpr uint32_t EXIT_SNP_REQ_CERTS = 43;

// kvm_run.system_event.type for an SEV-ES/SNP guest's termination request (GHCB MSR protocol or
// the TERM_REQUEST VMGEXIT); ndata = 1 and data[0] = the guest's GHCB MSR value.
constexpr uint32_t SYSTEM_EVENT_SEV_TERM = 6;

// KVM_EXIT_MEMORY_FAULT (with KVM_CAP_MEMORY_FAULT_INFO): KVM could not resolve a guest access,
// e.g. one whose private/shared kind differs from the page's memory attributes; the PRIVATE flag
// is set when the access was private.
constexpr uint64_t MEMORY_EXIT_FLAG_PRIVATE = 1ULL << 3;
struct kvm_memory_fault_exit {  // kvm_run.memory_fault (an anonymous struct in the kernel)
  uint64_t flags;
  uint64_t gpa;
  uint64_t size;
};

// KVM_EXIT_SNP_REQ_CERTS: the guest's extended guest request wants the certificate table; user
// space writes it to `gpa` (npages pages) and sets `ret` before the next KVM_RUN.
struct kvm_exit_snp_req_certs {
  uint64_t gpa;
  uint64_t npages;
  uint64_t ret;
};

// The fixed head of struct kvm_run and the exit union members above, to pin their offsets.
struct kvm_run_exits {
  uint8_t request_interrupt_window;
  uint8_t immediate_exit;
  uint8_t padding1[6];
  uint32_t exit_reason;
  uint8_t ready_for_interrupt_injection;
  uint8_t if_flag;
  uint16_t flags;
  uint64_t cr8;
  uint64_t apic_base;
  union {
    kvm_memory_fault_exit memory_fault;
    kvm_exit_snp_req_certs snp_req_certs;
    char padding[256];  // the kernel fixes the union's size at 256
  };
};

static_assert(sizeof(kvm_memory_fault_exit) == 24, "kvm_run.memory_fault");
static_assert(offsetof(kvm_memory_fault_exit, gpa) == 8 && offsetof(kvm_memory_fault_exit, size) == 16,
              "memory_fault fields");
static_assert(sizeof(kvm_exit_snp_req_certs) == 24, "kvm_exit_snp_req_certs");
static_assert(offsetof(kvm_exit_snp_req_certs, npages) == 8 && offsetof(kvm_exit_snp_req_certs, ret) == 16,
              "snp_req_certs fields");
static_assert(offsetof(kvm_run_exits, exit_reason) == 8, "kvm_run.exit_reason");
static_assert(offsetof(kvm_run_exits, memory_fault) == 32, "kvm_run.memory_fault offset");
static_assert(offsetof(kvm_run_exits, snp_req_certs) == 32, "kvm_run.snp_req_certs offset");
static_assert(sizeof(kvm_run_exits) == 32 + 256, "kvm_run head + exit union");

}  // namespace uapi
