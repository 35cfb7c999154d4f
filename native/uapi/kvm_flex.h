// KVM ioctls whose argument struct ends in a flexible array member. The 6.1 UAPI headers spell
// those arrays with __DECLARE_FLEX_ARRAY, which in C++ adds an empty struct and grows the header
// struct (kvm_msrs: 16 bytes instead of 8), so the _IOC size encoded in the header's ioctl numbers
// is wrong when compiled as C++ and the kernel rejects them. These are the C values, for the fixed
// part of each struct; the entries follow it at offset 8.
#pragma once

#include <cstdint>
#include <sys/ioctl.h>

namespace uapi {

struct kvm_msrs_header {
  uint32_t nmsrs;
  uint32_t pad;
};
struct kvm_cpuid2_header {
  uint32_t nent;
  uint32_t padding;
};

struct kvm_msr_list_header {
  uint32_t nmsrs;
};
struct kvm_signal_mask_header {
  uint32_t len;
};

constexpr unsigned long KVMIO_GET_MSRS = _IOWR(0xAE, 0x88, kvm_msrs_header);
constexpr unsigned long KVMIO_SET_MSRS = _IOW(0xAE, 0x89, kvm_msrs_header);
constexpr unsigned long KVMIO_GET_SUPPORTED_CPUID = _IOWR(0xAE, 0x05, kvm_cpuid2_header);
constexpr unsigned long KVMIO_SET_CPUID2 = _IOW(0xAE, 0x90, kvm_cpuid2_header);
constexpr unsigned long KVMIO_GET_CPUID2 = _IOWR(0xAE, 0x91, kvm_cpuid2_header);
constexpr unsigned long KVMIO_GET_EMULATED_CPUID = _IOWR(0xAE, 0x09, kvm_cpuid2_header);
constexpr unsigned long KVMIO_GET_MSR_INDEX_LIST = _IOWR(0xAE, 0x02, kvm_msr_list_header);
constexpr unsigned long KVMIO_GET_MSR_FEATURE_INDEX_LIST = _IOWR(0xAE, 0x0a, kvm_msr_list_header);
constexpr unsigned long KVMIO_SET_SIGNAL_MASK = _IOW(0xAE, 0x8b, kvm_signal_mask_header);
// struct kvm_xsave is 4096 bytes of region plus a flexible tail (KVM_GET_XSAVE2 sizes it).
constexpr unsigned long KVMIO_GET_XSAVE = _IOC(_IOC_READ, 0xAE, 0xa4, 4096);
constexpr unsigned long KVMIO_SET_XSAVE = _IOC(_IOC_WRITE, 0xAE, 0xa5, 4096);
constexpr unsigned long KVMIO_GET_XSAVE2 = _IOC(_IOC_READ, 0xAE, 0xcf, 4096);

static_assert(sizeof(kvm_msrs_header) == 8 && sizeof(kvm_cpuid2_header) == 8, "flex headers");
static_assert(KVMIO_GET_MSRS == 0xc008ae88UL, "KVM_GET_MSRS");
static_assert(KVMIO_SET_MSRS == 0x4008ae89UL, "KVM_SET_MSRS");
static_assert(KVMIO_GET_SUPPORTED_CPUID == 0xc008ae05UL, "KVM_GET_SUPPORTED_CPUID");
static_assert(KVMIO_SET_CPUID2 == 0x4008ae90UL, "KVM_SET_CPUID2");
static_assert(KVMIO_GET_CPUID2 == 0xc008ae91UL, "KVM_GET_CPUID2");
static_assert(KVMIO_GET_EMULATED_CPUID == 0xc008ae09UL, "KVM_GET_EMULATED_CPUID");
static_assert(KVMIO_GET_MSR_INDEX_LIST == 0xc004ae02UL, "KVM_GET_MSR_INDEX_LIST");
static_assert(KVMIO_GET_MSR_FEATURE_INDEX_LIST == 0xc004ae0aUL, "KVM_GET_MSR_FEATURE_INDEX_LIST");
static_assert(KVMIO_SET_SIGNAL_MASK == 0x4004ae8bUL, "KVM_SET_SIGNAL_MASK");
static_assert(KVMIO_GET_XSAVE == 0x9000aea4UL, "KVM_GET_XSAVE");
static_assert(KVMIO_SET_XSAVE == 0x5000aea5UL, "KVM_SET_XSAVE");
static_assert(KVMIO_GET_XSAVE2 == 0x9000aecfUL, "KVM_GET_XSAVE2");

}  // namespace uapi
