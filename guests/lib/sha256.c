/*
 * SHA-256 (FIPS 180-4 section 6.2), HMAC-SHA256 (RFC 2104) and HKDF-SHA256 (RFC 5869).
 */
#include "crypto.h"

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64
 * primes. */
static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

/* One block of the hash computation (FIPS 180-4 6.2.2, steps 1 to 4). */
static void compress(uint32_t state[8], const uint8_t block[64]) {
  uint32_t w[64]; /* the message schedule */
  for (int t = 0; t < 16; t++) {
    const uint8_t *p = &block[4 * t];
    w[t] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  }
  for (int t = 16; t < 64; t++) {
    uint32_t sigma0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    uint32_t sigma1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = sigma1 + w[t - 7] + sigma0 + w[t - 16];
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int t = 0; t < 64; t++) {
    uint32_t big_sigma1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t choose = (e & f) ^ (~e & g);
    uint32_t t1 = h + big_sigma1 + choose + round_constants[t] + w[t];
    uint32_t big_sigma0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = big_sigma0 + majority;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
  secure_wipe(w, sizeof w);
}

void sha256_init(sha256_ctx *ctx) {
  /* FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the square roots of the
   * first 8 primes. */
  static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  for (int i = 0; i < 8; i++) ctx->state[i] = initial[i];
  ctx->total_len = 0;
  ctx->block_used = 0;
}

void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t len) {
  ctx->total_len += len;
  /* Top up a partly filled block first. */
  if (ctx->block_used > 0) {
    size_t n = 64 - ctx->block_used;
    if (n > len) n = len;
    memcpy(ctx->block + ctx->block_used, data, n);
    ctx->block_used += n;
    data += n;
    len -= n;
    if (ctx->block_used < 64) return;
    compress(ctx->state, ctx->block);
    ctx->block_used = 0;
  }
  /* Whole blocks straight from the input, without copying. */
  for (; len >= 64; data += 64, len -= 64) compress(ctx->state, data);
  memcpy(ctx->block, data, len);
  ctx->block_used = len;
}

void sha256_final(sha256_ctx *ctx, uint8_t out[32]) {
  /* Padding (FIPS 180-4 5.1.1): a 1 bit, zeros up to 56 mod 64 bytes, the length in bits as a
   * 64-bit big-endian number. */
  uint64_t bit_len = ctx->total_len * 8;
  size_t used = ctx->block_used;
  ctx->block[used++] = 0x80;
  if (used > 56) {
    memset(ctx->block + used, 0, 64 - used);
    compress(ctx->state, ctx->block);
    used = 0;
  }
  memset(ctx->block + used, 0, 56 - used);
  for (int i = 0; i < 8; i++) ctx->block[56 + i] = (uint8_t)(bit_len >> (56 - 8 * i));
  compress(ctx->state, ctx->block);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(ctx->state[i] >> 24);
    out[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
    out[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
    out[4 * i + 3] = (uint8_t)ctx->state[i];
  }
  secure_wipe(ctx, sizeof *ctx);
}

void sha256(const uint8_t *data, size_t len, uint8_t out[32]) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, data, len);
  sha256_final(&ctx, out);
}

/* ---- HMAC (RFC 2104): H(K ^ opad || H(K ^ ipad || text)), B = 64 ---- */

void hmac_sha256_init(hmac_sha256_ctx *ctx, const uint8_t *key, size_t key_len) {
  uint8_t padded_key[64] = {0};
  /* Keys longer than the block are hashed first; shorter ones are padded with zeros. */
  if (key_len > 64) {
    sha256(key, key_len, padded_key);
  } else {
    memcpy(padded_key, key, key_len);
  }
  uint8_t pad[64];
  for (int i = 0; i < 64; i++) pad[i] = padded_key[i] ^ 0x36;
  sha256_init(&ctx->inner);
  sha256_update(&ctx->inner, pad, 64);
  for (int i = 0; i < 64; i++) pad[i] = padded_key[i] ^ 0x5c;
  sha256_init(&ctx->outer);
  sha256_update(&ctx->outer, pad, 64);
  secure_wipe(padded_key, sizeof padded_key);
  secure_wipe(pad, sizeof pad);
}

void hmac_sha256_update(hmac_sha256_ctx *ctx, const uint8_t *data, size_t len) {
  sha256_update(&ctx->inner, data, len);
}

void hmac_sha256_final(hmac_sha256_ctx *ctx, uint8_t out[32]) {
  uint8_t inner_hash[32];
  sha256_final(&ctx->inner, inner_hash);
  sha256_update(&ctx->outer, inner_hash, 32);
  sha256_final(&ctx->outer, out);
  secure_wipe(inner_hash, sizeof inner_hash);
}

void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32]) {
  hmac_sha256_ctx ctx;
  hmac_sha256_init(&ctx, key, key_len);
  hmac_sha256_update(&ctx, data, len);
  hmac_sha256_final(&ctx, out);
}

/* ---- HKDF (RFC 5869) ---- */

void hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                 const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len) {
  /* Extract: PRK = HMAC(salt, IKM). An absent salt means HashLen zero bytes, which as an HMAC
   * key is the same as the empty key (both pad to 64 zero bytes). */
  uint8_t prk[32];
  hmac_sha256(salt, salt_len, ikm, ikm_len, prk);

  /* Expand: T(i) = HMAC(PRK, T(i-1) || info || i), i = 1..255, output T(1) || T(2) || ... */
  uint8_t block[32];
  size_t done = 0;
  for (unsigned counter = 1; done < out_len && counter <= 255; counter++) {
    hmac_sha256_ctx ctx;
    uint8_t counter_byte = (uint8_t)counter;
    hmac_sha256_init(&ctx, prk, 32);
    if (counter > 1) hmac_sha256_update(&ctx, block, 32);
    hmac_sha256_update(&ctx, info, info_len);
    hmac_sha256_update(&ctx, &counter_byte, 1);
    hmac_sha256_final(&ctx, block);
    size_t n = out_len - done < 32 ? out_len - done : 32;
    memcpy(out + done, block, n);
    done += n;
  }
  /* Past the RFC's limit of 255 blocks there is no defined output; leave no stale bytes. */
  if (done < out_len) memset(out + done, 0, out_len - done);
  secure_wipe(prk, sizeof prk);
  secure_wipe(block, sizeof block);
}
