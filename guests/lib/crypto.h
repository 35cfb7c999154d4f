/*
 * Freestanding cryptography for the demo guests: AES-256-GCM, SHA-256 / HMAC / HKDF, X25519,
 * and the memory functions the compiler may call. No libc, no SSE, no heap; written from the
 * specifications (FIPS 197, NIST SP 800-38D, FIPS 180-4, RFC 2104, RFC 5869, RFC 7748).
 *
 * Buffers may be any alignment. Unless a comment says otherwise, an output may not overlap an
 * input; the GCM functions do allow out == in (exactly the same buffer).
 */
#ifndef GUEST_CRYPTO_H
#define GUEST_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* ---- mem.c: the C library functions gcc may emit calls to even with -fno-builtin ---- */
void *memcpy(void *restrict dst, const void *restrict src, size_t len);
void *memmove(void *dst, const void *src, size_t len);
void *memset(void *dst, int value, size_t len);
int memcmp(const void *a, const void *b, size_t len);
/* 1 when the buffers are equal, else 0; the time taken depends only on len (for MACs, tags). */
int ct_equal(const void *a, const void *b, size_t len);
/* Zeroes secrets in a way the optimizer may not remove as a dead store. */
void secure_wipe(void *p, size_t len);

/* ---- aes_gcm.c ---- */
/* AES-256 round keys (FIPS 197 KeyExpansion, Nr = 14): 15 round keys of 16 bytes. */
typedef struct {
  uint8_t round_key[15][16];
} aes256_key_schedule;

void aes256_expand_key(aes256_key_schedule *ks, const uint8_t key[32]);
/* One block, FIPS 197 Cipher(); in and out may be the same buffer. */
void aes256_encrypt_block(const aes256_key_schedule *ks, const uint8_t in[16], uint8_t out[16]);

/* AES-256-GCM (SP 800-38D) with a 96-bit IV and a 128-bit tag. aad/in may be NULL when their
 * length is 0. */
void aes256_gcm_encrypt(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                        const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16]);
/* Returns 0 when the tag verifies (out holds the plaintext), -1 otherwise (out[0..len) zeroed,
 * nothing of the plaintext is released). */
int aes256_gcm_decrypt(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t len, uint8_t *out, const uint8_t tag[16]);

/* ---- sha256.c ---- */
typedef struct {
  uint32_t state[8];     /* H(i) of FIPS 180-4 */
  uint64_t total_len;    /* bytes absorbed so far */
  uint8_t block[64];     /* the incomplete block */
  size_t block_used;     /* bytes of block[] in use, 0..63 */
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t len);
/* Writes the digest and wipes ctx (init it again to reuse). */
void sha256_final(sha256_ctx *ctx, uint8_t out[32]);
void sha256(const uint8_t *data, size_t len, uint8_t out[32]);

/* HMAC-SHA256 (RFC 2104), incremental and one-shot; any key length. */
typedef struct {
  sha256_ctx inner; /* has absorbed key ^ ipad */
  sha256_ctx outer; /* has absorbed key ^ opad */
} hmac_sha256_ctx;

void hmac_sha256_init(hmac_sha256_ctx *ctx, const uint8_t *key, size_t key_len);
void hmac_sha256_update(hmac_sha256_ctx *ctx, const uint8_t *data, size_t len);
void hmac_sha256_final(hmac_sha256_ctx *ctx, uint8_t out[32]);
void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[32]);

/* HKDF-SHA256 (RFC 5869): Extract (salt_len 0 means the default all-zero salt) then Expand.
 * out_len must be <= 255 * 32; bytes past that limit are set to zero. */
#define HKDF_SHA256_MAX_OUT (255 * 32)
void hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
                 const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

/* ---- x25519.c ---- */
/* X25519 (RFC 7748 section 5): out = scalar * point, u-coordinates little-endian. The scalar is
 * clamped here; the point's top bit is ignored and non-canonical values are accepted. An all-zero
 * out means a low-order point: callers doing key agreement should reject it. */
void x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t point[32]);
/* The public key for a private scalar: scalar * 9. */
void x25519_base(uint8_t out[32], const uint8_t scalar[32]);

#endif
