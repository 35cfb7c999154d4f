#include "sev_cert.h"

#include <openssl/evp.h>

namespace sevemu::cert {

Bytes make_unsigned(uint8_t api_major, uint8_t api_minor, uint32_t use, uint32_t alg,
                    EVP_PKEY* key) {
  Bytes c(kSize, 0);
  put_le32(&c[0], 1);
  c[4] = api_major;
  c[5] = api_minor;
  put_le32(&c[8], use);
  put_le32(&c[12], alg);
  Bytes x, y;
  crypto::ec_public_xy(key, x, y);
  put_le32(&c[kPubkeyOff], kCurveP384);
  Bytes xl = crypto::be_to_le(x, kCoordLen), yl = crypto::be_to_le(y, kCoordLen);
  std::copy(xl.begin(), xl.end(), c.begin() + kPubkeyOff + 4);
  std::copy(yl.begin(), yl.end(), c.begin() + kPubkeyOff + 4 + kCoordLen);
  clear_slot(c, 0);
  clear_slot(c, 1);
  return c;
}

void clear_slot(Bytes& c, int slot) {
  size_t o = kSigOff[slot];
  std::fill(c.begin() + o, c.begin() + o + 8 + kSigLen, 0);
  put_le32(&c[o], kUsageNone);
  put_le32(&c[o + 4], kAlgoNone);
}

void sign_ecdsa(Bytes& c, int slot, uint32_t signer_usage, EVP_PKEY* signer) {
  clear_slot(c, slot);
  Bytes r, s;
  crypto::ecdsa_sign(signer, EVP_sha256(), c.data(), kSignedLen, r, s);
  size_t o = kSigOff[slot];
  put_le32(&c[o], signer_usage);
  put_le32(&c[o + 4], kAlgoEcdsaSha256);
  Bytes rl = crypto::be_to_le(r, kCoordLen), sl = crypto::be_to_le(s, kCoordLen);
  std::copy(rl.begin(), rl.end(), c.begin() + o + 8);
  std::copy(sl.begin(), sl.end(), c.begin() + o + 8 + kCoordLen);
}

void sign_rsa_pss(Bytes& c, int slot, uint32_t signer_usage, uint32_t alg, EVP_PKEY* signer) {
  clear_slot(c, slot);
  const EVP_MD* md = alg == kAlgoRsaSha384 ? EVP_sha384() : EVP_sha256();
  Bytes sig = crypto::rsa_pss_sign(signer, md, c.data(), kSignedLen);
  size_t o = kSigOff[slot];
  put_le32(&c[o], signer_usage);
  put_le32(&c[o + 4], alg);
  for (size_t i = 0; i < sig.size() && i < kSigLen; i++) c[o + 8 + i] = sig[sig.size() - 1 - i];
}

uint32_t version(const uint8_t* c) { return get_le32(c); }
uint32_t usage(const uint8_t* c) { return get_le32(c + 8); }
uint32_t algo(const uint8_t* c) { return get_le32(c + 12); }
uint32_t slot_usage(const uint8_t* c, int slot) { return get_le32(c + kSigOff[slot]); }
uint32_t slot_algo(const uint8_t* c, int slot) { return get_le32(c + kSigOff[slot] + 4); }

crypto::Pkey public_key(const uint8_t* c) {
  const uint8_t* k = c + kPubkeyOff;
  if (get_le32(k) != kCurveP384) return nullptr;
  // P-384 coordinates use 48 of the 72 bytes; anything above must be zero.
  for (size_t i = 48; i < kCoordLen; i++)
    if (k[4 + i] || k[4 + kCoordLen + i]) return nullptr;
  Bytes x = crypto::le_to_be(k + 4, 48), y = crypto::le_to_be(k + 4 + kCoordLen, 48);
  return crypto::ec_public_from_xy(x, y);
}

bool same_public_key(const uint8_t* a, const uint8_t* b) {
  return memcmp(a + kPubkeyOff, b + kPubkeyOff, 4 + 2 * kCoordLen) == 0;
}

bool verify_ecdsa_slot(const uint8_t* c, int slot, EVP_PKEY* signer) {
  uint32_t alg = slot_algo(c, slot);
  const EVP_MD* md;
  if (alg == kAlgoEcdsaSha256)
    md = EVP_sha256();
  else if (alg == kAlgoEcdsaSha384)
    md = EVP_sha384();
  else
    return false;
  const uint8_t* s = c + kSigOff[slot] + 8;
  for (size_t i = 48; i < kCoordLen; i++)
    if (s[i] || s[kCoordLen + i]) return false;
  Bytes r = crypto::le_to_be(s, 48), sv = crypto::le_to_be(s + kCoordLen, 48);
  return crypto::ecdsa_verify(signer, md, c, kSignedLen, r, sv);
}

}  // namespace sevemu::cert
