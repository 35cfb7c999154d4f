// The memory controller's encryption of an SEV guest's private memory: AES-128 with a tweak
// derived from each 16-byte block's address (XEX: T = AES_K2(address), C = AES_K1(P ^ T) ^ T),
// as SEV hardware uses the system physical address. The emulator's stand-in for that address is
// the host virtual address of the byte: unique per page of memory in the process and stable
// when a memslot moves, as a physical address is. No integrity: a changed ciphertext block
// decrypts to garbage, as on SEV and SEV-ES hardware. One key (VEK) per guest, from
// LAUNCH_START; the firmware (LAUNCH_UPDATE_DATA, LAUNCH_SECRET, DBG_*) and the software KVM's
// CPU both apply it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace sevemu {

class MemoryKey {
 public:
  static std::shared_ptr<const MemoryKey> generate();
  ~MemoryKey();

  // `addr` (the tweak of the first block) and `len` are multiples of 16; in and out may alias.
  void encrypt(uint64_t addr, const uint8_t* in, uint8_t* out, size_t len) const;
  void decrypt(uint64_t addr, const uint8_t* in, uint8_t* out, size_t len) const;

 private:
  MemoryKey() = default;
  void crypt(bool enc, uint64_t addr, const uint8_t* in, uint8_t* out, size_t len) const;
  uint8_t data_key_[16], tweak_key_[16];
};

}  // namespace sevemu
