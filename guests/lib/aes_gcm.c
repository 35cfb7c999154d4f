/*
 * AES-256 (FIPS 197) and GCM (NIST SP 800-38D) for a 96-bit IV and a 128-bit tag.
 *
 * The cipher works on the byte-oriented state of FIPS 197 section 3.4, kept column by column
 * as in the input: state[r][c] is s[4 * c + r]. The only table is the 256-byte S-box; GHASH
 * multiplies bit by bit with masks, so neither depends on big tables or on branching on
 * secret bits (the S-box lookup still indexes by secret bytes; acceptable for this guest).
 */
#include "crypto.h"

/* FIPS 197 Figure 7: SubBytes as a table (the multiplicative inverse in GF(2^8) followed by the
 * affine transformation of section 5.1.1). */
static const uint8_t sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

/* Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (FIPS 197 4.2.1), reducing
 * with a mask rather than a branch on the top bit. */
static uint8_t xtime(uint8_t b) {
  return (uint8_t)((b << 1) ^ (0x1b & -(b >> 7)));
}

/* ---- AES-256 ---- */

void aes256_expand_key(aes256_key_schedule *ks, const uint8_t key[32]) {
  /* FIPS 197 5.2 with Nk = 8: 60 words w[i], here as 240 consecutive bytes. */
  uint8_t *w = &ks->round_key[0][0];
  uint8_t rcon = 0x01;
  memcpy(w, key, 32);
  for (int i = 8; i < 60; i++) {
    uint8_t temp[4];
    memcpy(temp, &w[4 * (i - 1)], 4);
    if (i % 8 == 0) {
      /* SubWord(RotWord(temp)) xor Rcon[i/8]; Rcon is x^(i/8 - 1), so double it each time. */
      uint8_t first = temp[0];
      temp[0] = (uint8_t)(sbox[temp[1]] ^ rcon);
      temp[1] = sbox[temp[2]];
      temp[2] = sbox[temp[3]];
      temp[3] = sbox[first];
      rcon = xtime(rcon);
    } else if (i % 8 == 4) {
      for (int j = 0; j < 4; j++) temp[j] = sbox[temp[j]];
    }
    for (int j = 0; j < 4; j++) w[4 * i + j] = (uint8_t)(w[4 * (i - 8) + j] ^ temp[j]);
  }
}

static void add_round_key(uint8_t s[16], const uint8_t round_key[16]) {
  for (int i = 0; i < 16; i++) s[i] ^= round_key[i];
}

/* SubBytes and ShiftRows together: row r moves left by r columns, so new state[r][c] is old
 * state[r][(c + r) mod 4], substituted. */
static void sub_bytes_shift_rows(uint8_t s[16]) {
  uint8_t t[16];
  for (int c = 0; c < 4; c++) {
    for (int r = 0; r < 4; r++) t[4 * c + r] = sbox[s[4 * ((c + r) % 4) + r]];
  }
  memcpy(s, t, 16);
}

/* MixColumns (FIPS 197 5.1.3): each column times the fixed polynomial {03}x^3+{01}x^2+{01}x+{02},
 * written out as the matrix of equation 5.6; 3*b is xtime(b) ^ b. */
static void mix_columns(uint8_t s[16]) {
  for (int c = 0; c < 4; c++) {
    uint8_t *col = &s[4 * c];
    uint8_t a0 = col[0], a1 = col[1], a2 = col[2], a3 = col[3];
    col[0] = (uint8_t)(xtime(a0) ^ (xtime(a1) ^ a1) ^ a2 ^ a3);
    col[1] = (uint8_t)(a0 ^ xtime(a1) ^ (xtime(a2) ^ a2) ^ a3);
    col[2] = (uint8_t)(a0 ^ a1 ^ xtime(a2) ^ (xtime(a3) ^ a3));
    col[3] = (uint8_t)((xtime(a0) ^ a0) ^ a1 ^ a2 ^ xtime(a3));
  }
}

void aes256_encrypt_block(const aes256_key_schedule *ks, const uint8_t in[16], uint8_t out[16]) {
  uint8_t s[16];
  memcpy(s, in, 16);
  add_round_key(s, ks->round_key[0]);
  for (int round = 1; round < 14; round++) {
    sub_bytes_shift_rows(s);
    mix_columns(s);
    add_round_key(s, ks->round_key[round]);
  }
  sub_bytes_shift_rows(s); /* the last round has no MixColumns */
  add_round_key(s, ks->round_key[14]);
  memcpy(out, s, 16);
  secure_wipe(s, sizeof s);
}

/* ---- GCM ---- */

/* A GF(2^128) element as GCM orders its bits: bit 0 (the coefficient of x^0) is the most
 * significant bit of the first byte. hi holds bytes 0..7 big-endian, lo bytes 8..15. */
typedef struct {
  uint64_t hi, lo;
} gf128;

static uint64_t load_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static void store_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

/* x * y in GF(2^128), SP 800-38D Algorithm 1: walk the bits of x from bit 0, adding V (which
 * starts as y and is multiplied by the field's x each step) where a bit is set. "Multiply by x"
 * is a right shift in this bit order; the bit shifted out of position 127 is folded back with
 * R = 11100001 || 0^120. Masks instead of branches keep the time independent of the values. */
static gf128 gf128_mul(gf128 x, gf128 y) {
  gf128 z = {0, 0}, v = y;
  for (int i = 0; i < 128; i++) {
    uint64_t word = i < 64 ? x.hi : x.lo;
    uint64_t bit_mask = 0 - ((word >> (63 - (i & 63))) & 1);
    z.hi ^= v.hi & bit_mask;
    z.lo ^= v.lo & bit_mask;
    uint64_t carry_mask = 0 - (v.lo & 1);
    v.lo = (v.lo >> 1) | (v.hi << 63);
    v.hi = (v.hi >> 1) ^ (0xe100000000000000ull & carry_mask);
  }
  return z;
}

/* GHASH state Y <- (Y xor block) * H over data, the last partial block padded with zeros (the
 * padding of SP 800-38D 7.1 step 5 for A and C). */
static void ghash_update(gf128 *y, gf128 h, const uint8_t *data, size_t len) {
  while (len > 0) {
    uint8_t block[16] = {0};
    size_t n = len < 16 ? len : 16;
    memcpy(block, data, n);
    y->hi ^= load_be64(block);
    y->lo ^= load_be64(block + 8);
    *y = gf128_mul(*y, h);
    data += n;
    len -= n;
  }
}

/* GCTR (SP 800-38D 6.5) from the counter block after J0, whose last 32 bits count modulo 2^32
 * (inc32). Works in place: each keystream block is applied after its input bytes are read. */
static void gcm_ctr(const aes256_key_schedule *ks, const uint8_t j0[16], const uint8_t *in, size_t len, uint8_t *out) {
  uint8_t counter[16], keystream[16];
  memcpy(counter, j0, 16);
  uint32_t count = (uint32_t)counter[12] << 24 | (uint32_t)counter[13] << 16 | (uint32_t)counter[14] << 8 | counter[15];
  while (len > 0) {
    count++;
    counter[12] = (uint8_t)(count >> 24);
    counter[13] = (uint8_t)(count >> 16);
    counter[14] = (uint8_t)(count >> 8);
    counter[15] = (uint8_t)count;
    aes256_encrypt_block(ks, counter, keystream);
    size_t n = len < 16 ? len : 16;
    for (size_t i = 0; i < n; i++) out[i] = in[i] ^ keystream[i];
    in += n;
    out += n;
    len -= n;
  }
  secure_wipe(keystream, sizeof keystream);
}

/* The parts both directions share: the key schedule, H = E(K, 0^128) and J0 = IV || 0^31 || 1. */
typedef struct {
  aes256_key_schedule ks;
  gf128 h;
  uint8_t j0[16];
} gcm_setup;

static void gcm_init(gcm_setup *g, const uint8_t key[32], const uint8_t iv[12]) {
  uint8_t h_block[16] = {0};
  aes256_expand_key(&g->ks, key);
  aes256_encrypt_block(&g->ks, h_block, h_block);
  g->h.hi = load_be64(h_block);
  g->h.lo = load_be64(h_block + 8);
  memcpy(g->j0, iv, 12);
  g->j0[12] = 0;
  g->j0[13] = 0;
  g->j0[14] = 0;
  g->j0[15] = 1;
  secure_wipe(h_block, sizeof h_block);
}

/* T = E(K, J0) xor GHASH_H(A padded || C padded || [len(A)]64 || [len(C)]64), lengths in bits. */
static void gcm_tag(const gcm_setup *g, const uint8_t *aad, size_t aad_len, const uint8_t *ciphertext, size_t len,
                    uint8_t tag[16]) {
  gf128 y = {0, 0};
  uint8_t lengths[16];
  ghash_update(&y, g->h, aad, aad_len);
  ghash_update(&y, g->h, ciphertext, len);
  store_be64(lengths, (uint64_t)aad_len * 8);
  store_be64(lengths + 8, (uint64_t)len * 8);
  ghash_update(&y, g->h, lengths, 16);
  aes256_encrypt_block(&g->ks, g->j0, tag);
  uint8_t s[16];
  store_be64(s, y.hi);
  store_be64(s + 8, y.lo);
  for (int i = 0; i < 16; i++) tag[i] ^= s[i];
}

void aes256_gcm_encrypt(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                        const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16]) {
  gcm_setup g;
  gcm_init(&g, key, iv);
  gcm_ctr(&g.ks, g.j0, in, len, out);
  gcm_tag(&g, aad, aad_len, out, len, tag);
  secure_wipe(&g, sizeof g);
}

int aes256_gcm_decrypt(const uint8_t key[32], const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t len, uint8_t *out, const uint8_t tag[16]) {
  gcm_setup g;
  uint8_t expected[16];
  gcm_init(&g, key, iv);
  /* Authenticate before decrypting (the tag covers the ciphertext), so a forgery never puts
   * plaintext in out, and so out == in works. */
  gcm_tag(&g, aad, aad_len, in, len, expected);
  int ok = ct_equal(expected, tag, 16);
  if (ok) {
    gcm_ctr(&g.ks, g.j0, in, len, out);
  } else {
    memset(out, 0, len);
  }
  secure_wipe(&g, sizeof g);
  secure_wipe(expected, sizeof expected);
  return ok ? 0 : -1;
}
