// The SEV certificate format (SEV API spec, appendix "Certificates"), 2084 bytes:
//   0x000 u32 version (1)        0x004 u8 api_major, 0x005 u8 api_minor, 0x006 reserved
//   0x008 u32 pubkey_usage       0x00C u32 pubkey_algo
//   0x010 pubkey (1028): u32 curve (2 = P-384), qx[72] LE, qy[72] LE, zero padding
//   0x414 sig1: u32 usage, u32 algo, 512-byte signature
//   0x61C sig2: same layout
// The signed region is bytes [0, 0x414). ECDSA signatures are r[72] LE then s[72] LE; RSA
// signatures are stored byte-reversed (little-endian). Checked against real CEK/PEK/OCA/PDH
// certificates from Naples and Rome: every ECDSA signature there is algo 2 (ECDSA_SHA256)
// over SHA-256, the CEK's ASK signature is RSA-PSS (Naples: SHA-256/salt 32, algo 1;
// Rome: SHA-384/salt 48, algo 0x101), the PEK carries OCA in sig1 and CEK in sig2.
#pragma once

#include "common.h"
#include "crypto.h"

namespace sevemu::cert {

constexpr size_t kSize = 2084;
constexpr size_t kSignedLen = 0x414;
constexpr size_t kPubkeyOff = 0x10;
constexpr size_t kSigOff[2] = {0x414, 0x61C};
constexpr size_t kSigLen = 512;
constexpr size_t kCoordLen = 72;  // field width of one coordinate or r/s in the format
constexpr uint32_t kCurveP384 = 2;

enum Usage : uint32_t {
  kUsageArk = 0x0,
  kUsageAsk = 0x13,
  kUsageOca = 0x1001,
  kUsagePek = 0x1002,
  kUsagePdh = 0x1003,
  kUsageCek = 0x1004,
  kUsageNone = 0x1000,
};

enum Algo : uint32_t {
  kAlgoNone = 0x0,
  kAlgoRsaSha256 = 0x1,
  kAlgoEcdsaSha256 = 0x2,
  kAlgoEcdhSha256 = 0x3,
  kAlgoRsaSha384 = 0x101,
  kAlgoEcdsaSha384 = 0x102,
  kAlgoEcdhSha384 = 0x103,
};

// A certificate for `key`'s public point with both signature slots empty (usage "none").
Bytes make_unsigned(uint8_t api_major, uint8_t api_minor, uint32_t usage, uint32_t algo,
                    EVP_PKEY* key);

// Fills signature slot `slot` (0 or 1) with an ECDSA-SHA256 signature by `signer`.
void sign_ecdsa(Bytes& cert, int slot, uint32_t signer_usage, EVP_PKEY* signer);
// Fills a slot with an RSA-PSS signature (algo RSA_SHA256 or RSA_SHA384).
void sign_rsa_pss(Bytes& cert, int slot, uint32_t signer_usage, uint32_t algo, EVP_PKEY* signer);
void clear_slot(Bytes& cert, int slot);

uint32_t version(const uint8_t* c);
uint32_t usage(const uint8_t* c);
uint32_t algo(const uint8_t* c);
uint32_t slot_usage(const uint8_t* c, int slot);
uint32_t slot_algo(const uint8_t* c, int slot);

// The certificate's P-384 public key; null if the curve id or point is invalid.
crypto::Pkey public_key(const uint8_t* c);
// Compares curve id and coordinates (the 1028-byte key field).
bool same_public_key(const uint8_t* a, const uint8_t* b);
// Verifies an ECDSA slot (algo ECDSA_SHA256 or ECDSA_SHA384) with `signer`.
bool verify_ecdsa_slot(const uint8_t* c, int slot, EVP_PKEY* signer);

}  // namespace sevemu::cert
