#include "memory_crypt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "crypto.h"

namespace sevemu {
namespace {

constexpr size_t kChunk = 4096;  // blocks are processed a page at a time

// One AES-128-ECB pass over whole blocks (no padding). Contexts are per thread and reused.
void ecb(bool enc, const uint8_t key[16], const uint8_t* in, uint8_t* out, size_t len) {
  thread_local EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0;
  if (!ctx || !EVP_CipherInit_ex(ctx, EVP_aes_128_ecb(), nullptr, key, nullptr, enc ? 1 : 0) ||
      !EVP_CIPHER_CTX_set_padding(ctx, 0) || !EVP_CipherUpdate(ctx, out, &n, in, int(len)) ||
      size_t(n) != len)
    throw crypto::CryptoError("AES-ECB failed");
}

}  // namespace

std::shared_ptr<const MemoryKey> MemoryKey::generate() {
  std::shared_ptr<MemoryKey> k(new MemoryKey);
  Bytes r = crypto::random_bytes(32);
  memcpy(k->data_key_, r.data(), 16);
  memcpy(k->tweak_key_, r.data() + 16, 16);
  OPENSSL_cleanse(r.data(), r.size());
  return k;
}

MemoryKey::~MemoryKey() {
  OPENSSL_cleanse(data_key_, sizeof data_key_);
  OPENSSL_cleanse(tweak_key_, sizeof tweak_key_);
}

void MemoryKey::encrypt(uint64_t addr, const uint8_t* in, uint8_t* out, size_t len) const {
  crypt(true, addr, in, out, len);
}

void MemoryKey::decrypt(uint64_t addr, const uint8_t* in, uint8_t* out, size_t len) const {
  crypt(false, addr, in, out, len);
}

void MemoryKey::crypt(bool enc, uint64_t addr, const uint8_t* in, uint8_t* out, size_t len) const {
  if ((addr | len) % 16) throw std::invalid_argument("memory encryption needs 16-byte blocks");
  alignas(16) uint8_t tweak[kChunk], buf[kChunk];
  for (size_t off = 0; off < len; off += kChunk) {
    size_t n = std::min(kChunk, len - off);
    memset(tweak, 0, n);
    for (size_t b = 0; b < n; b += 16) {
      uint64_t a = addr + off + b;
      memcpy(tweak + b, &a, 8);  // the block's address, little-endian, zero-extended
    }
    ecb(true, tweak_key_, tweak, tweak, n);
    for (size_t i = 0; i < n; i++) buf[i] = in[off + i] ^ tweak[i];
    ecb(enc, data_key_, buf, buf, n);
    for (size_t i = 0; i < n; i++) out[off + i] = buf[i] ^ tweak[i];
  }
  OPENSSL_cleanse(buf, sizeof buf);
}

}  // namespace sevemu
