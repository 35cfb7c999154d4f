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

constexpr unsigned long KVMIO_GET_MSRS = _IOWR(0xAE, 0x88, kvm_msrs_header);
constexpr unsigned long KVMIO_SET_MSRS = _IOW(0xAE, 0x89, kvm_msrs_header);
constexpr unsigned long KVMIO_GET_SUPPORTED_CPUID = _IOWR(0xAE, 0x05, kvm_cpuid2_header);
constexpr unsigned long KVMIO_SET_CPUID2 = _IOW(0xAE, 0x90, kvm_cpuid2_header);

static_assert(sizeof(kvm_msrs_header) == 8 && sizeof(kvm_cpuid2_header) == 8, "flex headers");
static_assert(KVMIO_GET_MSRS == 0xc008ae88UL, "KVM_GET_MSRS");
static_assert(KVMIO_SET_MSRS == 0x4008ae89UL, "KVM_SET_MSRS");
static_assert(KVMIO_GET_SUPPORTED_CPUID == 0xc008ae05UL, "KVM_GET_SUPPORTED_CPUID");
static_assert(KVMIO_SET_CPUID2 == 0x4008ae90UL, "KVM_SET_CPUID2");

}  // namespace uapi
