// The guest-launch cryptography of the SEV firmware (SEV API spec 55766, "Key Derivation
// Function", LAUNCH_START "session", LAUNCH_MEASURE, LAUNCH_SECRET). The guest owner's side
// of exactly these formulas is lib/owner (kdf.ts, session.ts, measurement.ts, secret.ts).
#pragma once

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>

#include "common.h"
#include "crypto.h"

namespace sevemu::launch {

constexpr size_t kSessionLen = 128;   // nonce(16) wrap_tk(32) wrap_iv(16) wrap_mac(32) policy_mac(32)
constexpr size_t kSecretHdrLen = 52;  // flags(4) iv(16) mac(32)

struct TransportKeys {
  uint8_t tek[16];
  uint8_t tik[16];
};

// HMAC-SHA256 over the concatenation of `n` parts.
struct Part {
  const void* p;
  size_t n;
};
void hmac_sha256(const uint8_t* key, size_t key_len, const Part* parts, size_t n, uint8_t out[32]);

// NIST SP 800-108 counter-mode KDF with HMAC-SHA256: block i = HMAC(key, u32le(i) ‖ label ‖
// 0x00 ‖ context ‖ u32le(L bits)), i = 1.., truncated to `out_len`.
void kdf(const uint8_t* key, size_t key_len, const char* label, const uint8_t* ctx,
         size_t ctx_len, uint8_t* out, size_t out_len);

// AES-128-CTR (encryption and decryption are the same). Throws crypto::CryptoError.
void aes128_ctr(const uint8_t key[16], const uint8_t iv[16], const uint8_t* in, size_t len,
                uint8_t* out);

// Constant-time comparison.
bool equal(const uint8_t* a, const uint8_t* b, size_t n);

enum class UnwrapResult { kOk, kBadCert, kBadMac };

// Z = ECDH(PDH private, GODH public from `godh_cert`) as a big-endian x coordinate;
// then master / KEK / KIK per the spec, checks wrap_mac, unwraps TEK ‖ TIK, checks
// policy_mac = HMAC(TIK, u32le(policy)).
UnwrapResult unwrap_session(EVP_PKEY* pdh, const uint8_t* godh_cert, size_t godh_len,
                            const uint8_t session[kSessionLen], uint32_t policy,
                            TransportKeys& keys);

// MEASURE = HMAC(TIK, 0x04 ‖ api_major ‖ api_minor ‖ build ‖ u32le(policy) ‖ digest ‖ mnonce).
void measurement(const uint8_t tik[16], uint8_t api_major, uint8_t api_minor, uint8_t build,
                 uint32_t policy, const uint8_t digest[32], const uint8_t mnonce[16],
                 uint8_t out[32]);

// LAUNCH_SECRET packet MAC: HMAC(TIK, 0x01 ‖ flags ‖ iv ‖ u32le(guest_len) ‖
// u32le(trans_len) ‖ ciphertext ‖ measure).
void secret_mac(const uint8_t tik[16], uint32_t flags, const uint8_t iv[16], uint32_t guest_len,
                const uint8_t* trans, uint32_t trans_len, const uint8_t measure[32],
                uint8_t out[32]);

// A streaming SHA-256 (the launch digest GCTX.LD), EVP fast path. Copyable (EVP_MD_CTX_copy).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* p, size_t n);
  // The digest so far, without ending the stream.
  void peek(uint8_t out[32]) const;

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace sevemu::launch
