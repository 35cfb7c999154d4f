// Thin RAII helpers over OpenSSL 3 EVP for what the firmware model needs: P-384 keys,
// ECDSA with raw (r, s), RSA-PSS, PEM, random bytes. Errors throw CryptoError.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "common.h"

namespace sevemu::crypto {

struct CryptoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Throws CryptoError("what: <OpenSSL's first queued error>") and clears OpenSSL's error queue.
[[noreturn]] void fail(const std::string& what);

Bytes random_bytes(size_t n);

Pkey generate_p384();
Pkey generate_rsa(unsigned bits);

std::string private_pem(EVP_PKEY* key);   // PKCS#8 PEM
Pkey private_from_pem(const std::string& pem);

// P-384 public point as big-endian 48-byte coordinates.
void ec_public_xy(EVP_PKEY* key, Bytes& x_be, Bytes& y_be);
// Builds a P-384 public key from big-endian coordinates; null if not a valid curve point.
Pkey ec_public_from_xy(const Bytes& x_be, const Bytes& y_be);

// A P-384 key pair from a private scalar (big-endian, 1 <= d < n); throws when out of range.
Pkey p384_from_private(const Bytes& d_be);
// The P-384 group order n, big-endian (48 bytes).
Bytes p384_order();

// HMAC over `data` with `md`.
Bytes hmac(const EVP_MD* md, const Bytes& key, const uint8_t* data, size_t len);

// ECDSA over `data` with the given digest; r and s as big-endian 48-byte values.
void ecdsa_sign(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len, Bytes& r_be,
                Bytes& s_be);
bool ecdsa_verify(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len,
                  const Bytes& r_be, const Bytes& s_be);

// RSA modulus and exponent, big-endian.
void rsa_public_ne(EVP_PKEY* key, Bytes& n_be, Bytes& e_be);
Pkey rsa_public_from_ne(const Bytes& n_be, const Bytes& e_be);
// RSASSA-PSS with MGF1(md) and salt length = digest length (what AMD's certificates use).
Bytes rsa_pss_sign(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len);
bool rsa_pss_verify(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len,
                    const Bytes& sig_be);

// Big-endian <-> little-endian of a fixed width (zero-padded on the high side).
Bytes be_to_le(const Bytes& be, size_t width);
Bytes le_to_be(const uint8_t* le, size_t width);

}  // namespace sevemu::crypto
