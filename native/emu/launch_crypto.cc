#include "launch_crypto.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/core_names.h>

#include <cstring>

#include "sev_cert.h"

namespace sevemu::launch {

void hmac_sha256(const uint8_t* key, size_t key_len, const Part* parts, size_t n,
                 uint8_t out[32]) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = mac ? EVP_MAC_CTX_new(mac) : nullptr;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SHA256"), 0),
                         OSSL_PARAM_construct_end()};
  bool ok = ctx && EVP_MAC_init(ctx, key, key_len, params) == 1;
  for (size_t i = 0; ok && i < n; i++)
    ok = EVP_MAC_update(ctx, static_cast<const uint8_t*>(parts[i].p), parts[i].n) == 1;
  size_t len = 0;
  ok = ok && EVP_MAC_final(ctx, out, &len, 32) == 1 && len == 32;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  if (!ok) {
    ERR_clear_error();
    throw crypto::CryptoError("HMAC-SHA256");
  }
}

void kdf(const uint8_t* key, size_t key_len, const char* label, const uint8_t* ctx,
         size_t ctx_len, uint8_t* out, size_t out_len) {
  uint8_t bits[4], zero = 0;
  put_le32(bits, uint32_t(out_len * 8));
  for (uint32_t i = 1, done = 0; done < out_len; i++) {
    uint8_t counter[4], block[32];
    put_le32(counter, i);
    Part parts[] = {{counter, 4}, {label, strlen(label)}, {&zero, 1}, {ctx, ctx_len}, {bits, 4}};
    hmac_sha256(key, key_len, parts, 5, block);
    size_t n = std::min<size_t>(32, out_len - done);
    memcpy(out + done, block, n);
    done += uint32_t(n);
  }
}

void aes128_ctr(const uint8_t key[16], const uint8_t iv[16], const uint8_t* in, size_t len,
                uint8_t* out) {
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n1 = 0, n2 = 0;
  bool ok = c && EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), nullptr, key, iv) == 1 &&
            EVP_EncryptUpdate(c, out, &n1, in, int(len)) == 1 &&
            EVP_EncryptFinal_ex(c, out + n1, &n2) == 1;
  EVP_CIPHER_CTX_free(c);
  if (!ok) {
    ERR_clear_error();
    throw crypto::CryptoError("AES-128-CTR");
  }
}

bool equal(const uint8_t* a, const uint8_t* b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

namespace {

// Z: the shared x coordinate, big-endian, as EVP_PKEY_derive returns it.
bool ecdh(EVP_PKEY* priv, EVP_PKEY* peer, uint8_t z[48]) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(priv, nullptr);
  size_t len = 48;
  bool ok = ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
            EVP_PKEY_derive(ctx, z, &len) == 1 && len == 48;
  EVP_PKEY_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

}  // namespace

UnwrapResult unwrap_session(EVP_PKEY* pdh, const uint8_t* godh_cert, size_t godh_len,
                            const uint8_t session[kSessionLen], uint32_t policy,
                            TransportKeys& keys) {
  if (godh_len < cert::kSize || cert::version(godh_cert) != 1) return UnwrapResult::kBadCert;
  crypto::Pkey godh = cert::public_key(godh_cert);
  uint8_t z[48];
  if (!godh || !ecdh(pdh, godh.get(), z)) return UnwrapResult::kBadCert;

  const uint8_t* nonce = session;
  const uint8_t* wrap_tk = session + 16;
  const uint8_t* wrap_iv = session + 48;
  const uint8_t* wrap_mac = session + 64;
  const uint8_t* policy_mac = session + 96;
  uint8_t master[16], kek[16], kik[16], mac[32], tk[32];
  kdf(z, sizeof z, "sev-master-secret", nonce, 16, master, 16);
  kdf(master, 16, "sev-kek", nullptr, 0, kek, 16);
  kdf(master, 16, "sev-kik", nullptr, 0, kik, 16);
  OPENSSL_cleanse(z, sizeof z);
  Part p1[] = {{wrap_tk, 32}};
  hmac_sha256(kik, 16, p1, 1, mac);
  if (!equal(mac, wrap_mac, 32)) return UnwrapResult::kBadMac;
  aes128_ctr(kek, wrap_iv, wrap_tk, 32, tk);
  memcpy(keys.tek, tk, 16);
  memcpy(keys.tik, tk + 16, 16);
  OPENSSL_cleanse(tk, sizeof tk);
  uint8_t pol[4];
  put_le32(pol, policy);
  Part p2[] = {{pol, 4}};
  hmac_sha256(keys.tik, 16, p2, 1, mac);
  if (!equal(mac, policy_mac, 32)) return UnwrapResult::kBadMac;
  return UnwrapResult::kOk;
}

void measurement(const uint8_t tik[16], uint8_t api_major, uint8_t api_minor, uint8_t build,
                 uint32_t policy, const uint8_t digest[32], const uint8_t mnonce[16],
                 uint8_t out[32]) {
  uint8_t head[4] = {0x04, api_major, api_minor, build}, pol[4];
  put_le32(pol, policy);
  Part parts[] = {{head, 4}, {pol, 4}, {digest, 32}, {mnonce, 16}};
  hmac_sha256(tik, 16, parts, 4, out);
}

void secret_mac(const uint8_t tik[16], uint32_t flags, const uint8_t iv[16], uint32_t guest_len,
                const uint8_t* trans, uint32_t trans_len, const uint8_t measure[32],
                uint8_t out[32]) {
  uint8_t one = 0x01, f[4], gl[4], tl[4];
  put_le32(f, flags);
  put_le32(gl, guest_len);
  put_le32(tl, trans_len);
  Part parts[] = {{&one, 1}, {f, 4}, {iv, 16}, {gl, 4}, {tl, 4}, {trans, trans_len}, {measure, 32}};
  hmac_sha256(tik, 16, parts, 7, out);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
    throw crypto::CryptoError("SHA-256 init");
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* p, size_t n) {
  if (n && EVP_DigestUpdate(ctx_, p, n) != 1) throw crypto::CryptoError("SHA-256 update");
}

void Sha256::peek(uint8_t out[32]) const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  unsigned len = 0;
  bool ok = copy && EVP_MD_CTX_copy_ex(copy, ctx_) == 1 &&
            EVP_DigestFinal_ex(copy, out, &len) == 1 && len == 32;
  EVP_MD_CTX_free(copy);
  if (!ok) throw crypto::CryptoError("SHA-256 final");
}

}  // namespace sevemu::launch
