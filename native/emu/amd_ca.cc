#include "amd_ca.h"

namespace sevemu::amd_ca {

Bytes make(const uint8_t key_id[16], const uint8_t certifying_id[16], uint32_t usage,
           EVP_PKEY* subject, EVP_PKEY* signer, const EVP_MD* md) {
  Bytes n, e;
  crypto::rsa_public_ne(subject, n, e);
  size_t width = n.size();  // modulus bytes; the exponent field has the same width
  Bytes c(0x40 + 3 * width, 0);
  put_le32(&c[0x00], 1);
  memcpy(&c[0x04], key_id, 16);
  memcpy(&c[0x14], certifying_id, 16);
  put_le32(&c[0x24], usage);
  put_le32(&c[0x38], uint32_t(width * 8));
  put_le32(&c[0x3C], uint32_t(width * 8));
  Bytes el = crypto::be_to_le(e, width), nl = crypto::be_to_le(n, width);
  std::copy(el.begin(), el.end(), c.begin() + 0x40);
  std::copy(nl.begin(), nl.end(), c.begin() + 0x40 + width);
  size_t signed_len = 0x40 + 2 * width;
  Bytes sig = crypto::rsa_pss_sign(signer, md, c.data(), signed_len);
  for (size_t i = 0; i < sig.size() && i < width; i++) c[signed_len + i] = sig[sig.size() - 1 - i];
  return c;
}

crypto::Pkey public_key(const Bytes& c) {
  if (c.size() < 0x40) return nullptr;
  size_t es = get_le32(&c[0x38]) / 8, ms = get_le32(&c[0x3C]) / 8;
  if (!es || !ms || es > 512 || ms > 512 || c.size() < 0x40 + es + 2 * ms) return nullptr;
  return crypto::rsa_public_from_ne(crypto::le_to_be(&c[0x40 + es], ms),
                                    crypto::le_to_be(&c[0x40], es));
}

}  // namespace sevemu::amd_ca
