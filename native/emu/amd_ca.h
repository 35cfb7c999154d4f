// AMD's CA certificate format for the ARK and ASK (SEV API spec, "AMD Root Key / AMD SEV
// Key" certificates), little-endian:
//   0x00 u32 version (1)   0x04 key_id[16]   0x14 certifying_id[16]   0x24 u32 key_usage
//   0x28 reserved[16]      0x38 u32 pub_exp_size (bits)   0x3C u32 modulus_size (bits)
//   0x40 pub_exp (pub_exp_size/8 bytes), modulus (modulus_size/8), signature (modulus_size/8)
// The signature is RSASSA-PSS over everything before it, byte-reversed. AMD's own files
// (checked): Naples RSA-2048, SHA-256, salt 32 (832 bytes); Rome..Turin RSA-4096,
// SHA-384, salt 48 (1600 bytes); pub_exp_size equals modulus_size; ARK usage 0 and
// certifying_id = its own key_id; ASK usage 0x13, certifying_id = the ARK's key_id.
#pragma once

#include "common.h"
#include "crypto.h"

namespace sevemu::amd_ca {

constexpr uint32_t kUsageArk = 0x0;
constexpr uint32_t kUsageAsk = 0x13;

// Builds and signs a CA certificate for `subject` (RSA) signed by `signer` with `md`.
Bytes make(const uint8_t key_id[16], const uint8_t certifying_id[16], uint32_t usage,
           EVP_PKEY* subject, EVP_PKEY* signer, const EVP_MD* md);

// Parses the public key of a CA certificate (null when malformed).
crypto::Pkey public_key(const Bytes& ca);

}  // namespace sevemu::amd_ca
