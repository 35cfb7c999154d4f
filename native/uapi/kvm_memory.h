// KVM's private-memory ABI (Linux 7.2 include/uapi/linux/kvm.h): guest_memfd, memslots that
// point into one (KVM_SET_USER_MEMORY_REGION2) and per-page memory attributes. SNP guests keep
// their private memory there. Names that <linux/kvm.h> defines as macros are spelled with a
// KVMIO_ (ioctls), CAP_ (capabilities) or no KVM_ prefix, as in kvm_sev.h, so the two never collide.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/ioctl.h>

namespace uapi {

constexpr uint32_t CAP_USER_MEMORY2 = 231;        // KVM_SET_USER_MEMORY_REGION2
constexpr uint32_t CAP_MEMORY_FAULT_INFO = 232;  // KVM_EXIT_MEMORY_FAULT carries gpa/size/flags
constexpr uint32_t CAP_MEMORY_ATTRIBUTES = 233;  // KVM_SET_MEMORY_ATTRIBUTES; answers the supported mask
constexpr uint32_t CAP_GUEST_MEMFD = 234;        // KVM_CREATE_GUEST_MEMFD
constexpr uint32_t CAP_GUEST_MEMFD_FLAGS = 244;  // the kvm_create_guest_memfd.flags this VM accepts

// kvm_create_guest_memfd.flags (7.2's GUEST_MEMFD_FLAG_*, macros there, hence GMEM_FLAG_ here): the fd can be mmap'd (MAP_SHARED); its pages start shared,
// so the user mapping can fault them in (only for VMs without private memory attributes).
constexpr uint64_t GMEM_FLAG_MMAP = 1ull << 0;
constexpr uint64_t GMEM_FLAG_INIT_SHARED = 1ull << 1;

// kvm_userspace_memory_region(2).flags: the slot's private pages live in `guest_memfd`.
constexpr uint32_t MEM_GUEST_MEMFD = 1u << 2;

struct kvm_userspace_memory_region2 {
  uint32_t slot;
  uint32_t flags;
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t guest_memfd_offset;
  uint32_t guest_memfd;
  uint32_t pad1;
  uint64_t pad2[14];
};

// kvm_memory_attributes.attributes: the range is private (backed by guest_memfd).
constexpr uint64_t MEMORY_ATTRIBUTE_PRIVATE = 1ULL << 3;

struct kvm_memory_attributes {
  uint64_t address;
  uint64_t size;
  uint64_t attributes;
  uint64_t flags;
};

struct kvm_create_guest_memfd {
  uint64_t size;
  uint64_t flags;
  uint64_t reserved[6];
};

constexpr unsigned long KVMIO_SET_USER_MEMORY_REGION2 = _IOW(0xAE, 0x49, kvm_userspace_memory_region2);
constexpr unsigned long KVMIO_SET_MEMORY_ATTRIBUTES = _IOW(0xAE, 0xd2, kvm_memory_attributes);
constexpr unsigned long KVMIO_CREATE_GUEST_MEMFD = _IOWR(0xAE, 0xd4, kvm_create_guest_memfd);

static_assert(sizeof(kvm_userspace_memory_region2) == 160, "kvm_userspace_memory_region2");
static_assert(offsetof(kvm_userspace_memory_region2, userspace_addr) == 24, "region2.userspace_addr");
static_assert(offsetof(kvm_userspace_memory_region2, guest_memfd_offset) == 32, "region2.guest_memfd_offset");
static_assert(offsetof(kvm_userspace_memory_region2, guest_memfd) == 40, "region2.guest_memfd");
static_assert(offsetof(kvm_userspace_memory_region2, pad2) == 48, "region2.pad2");
static_assert(sizeof(kvm_memory_attributes) == 32, "kvm_memory_attributes");
static_assert(offsetof(kvm_memory_attributes, attributes) == 16, "memory_attributes.attributes");
static_assert(offsetof(kvm_memory_attributes, flags) == 24, "memory_attributes.flags");
static_assert(sizeof(kvm_create_guest_memfd) == 64, "kvm_create_guest_memfd");
static_assert(offsetof(kvm_create_guest_memfd, flags) == 8, "create_guest_memfd.flags");
static_assert(offsetof(kvm_create_guest_memfd, reserved) == 16, "create_guest_memfd.reserved");
// The kernel's _IOW/_IOWR values: direction << 30 | size << 16 | 'KVMIO' << 8 | nr.
static_assert(KVMIO_SET_USER_MEMORY_REGION2 == 0x40a0ae49UL, "KVM_SET_USER_MEMORY_REGION2");
static_assert(KVMIO_SET_MEMORY_ATTRIBUTES == 0x4020aed2UL, "KVM_SET_MEMORY_ATTRIBUTES");
static_assert(KVMIO_CREATE_GUEST_MEMFD == 0xc040aed4UL, "KVM_CREATE_GUEST_MEMFD");

}  // namespace uapi
