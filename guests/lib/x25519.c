/*
 * X25519 (RFC 7748 section 5): the Montgomery ladder on Curve25519 over GF(p), p = 2^255 - 19.
 *
 * A field element is five 51-bit limbs, value = sum limb[i] * 2^(51 i), not necessarily fully
 * reduced. Products of two limbs need 128 bits: gcc and clang provide unsigned __int128 on
 * x86-64 as plain integer code (MUL and ADD/ADC on general registers), so it is fine under
 * -mgeneral-regs-only and calls no runtime library.
 *
 * Bound kept by every function below: each output limb is < 2^52. Then a product of two limbs
 * is < 2^104, a product with a wrap-around factor 19 < 2^109, and a sum of five of them fits
 * in 128 bits with plenty of room.
 */
#include "crypto.h"

__extension__ typedef unsigned __int128 uint128;
typedef uint64_t fe[5];

#define LIMB_MASK ((UINT64_C(1) << 51) - 1)

/* Carries each limb's excess into the next; the excess of the top limb is worth 2^255 = 19
 * (mod p), so it comes back into limb 0 times 19. Afterwards limbs 1..4 are < 2^51 and limb 0
 * is < 2^51 plus a little (< 2^52 whenever the inputs were < 2^63). */
static void fe_carry(fe h) {
  uint64_t c;
  c = h[0] >> 51; h[0] &= LIMB_MASK; h[1] += c;
  c = h[1] >> 51; h[1] &= LIMB_MASK; h[2] += c;
  c = h[2] >> 51; h[2] &= LIMB_MASK; h[3] += c;
  c = h[3] >> 51; h[3] &= LIMB_MASK; h[4] += c;
  c = h[4] >> 51; h[4] &= LIMB_MASK; h[0] += 19 * c;
}

static void fe_copy(fe out, const fe f) {
  for (int i = 0; i < 5; i++) out[i] = f[i];
}

static void fe_set_small(fe out, uint64_t v) {
  out[0] = v;
  for (int i = 1; i < 5; i++) out[i] = 0;
}

static void fe_add(fe out, const fe f, const fe g) {
  for (int i = 0; i < 5; i++) out[i] = f[i] + g[i];
  fe_carry(out);
}

/* f - g computed as f + 2p - g, so no limb goes negative (g's limbs are < 2^52 - 38, below
 * those of 2p). */
static void fe_sub(fe out, const fe f, const fe g) {
  static const uint64_t two_p[5] = {2 * (LIMB_MASK - 18), 2 * LIMB_MASK, 2 * LIMB_MASK, 2 * LIMB_MASK,
                                    2 * LIMB_MASK};
  for (int i = 0; i < 5; i++) out[i] = f[i] + two_p[i] - g[i];
  fe_carry(out);
}

/* Schoolbook product. A term f[i] g[j] with i + j >= 5 has weight 2^(51 (i+j)) = 2^255 *
 * 2^(51 (i+j-5)), i.e. 19 * 2^(51 (i+j-5)) mod p, so it lands in limb i+j-5 times 19. out may
 * alias f or g. */
static void fe_mul(fe out, const fe f, const fe g) {
  uint64_t g1_19 = 19 * g[1], g2_19 = 19 * g[2], g3_19 = 19 * g[3], g4_19 = 19 * g[4];
  uint128 r0 = (uint128)f[0] * g[0] + (uint128)f[1] * g4_19 + (uint128)f[2] * g3_19 + (uint128)f[3] * g2_19 +
               (uint128)f[4] * g1_19;
  uint128 r1 = (uint128)f[0] * g[1] + (uint128)f[1] * g[0] + (uint128)f[2] * g4_19 + (uint128)f[3] * g3_19 +
               (uint128)f[4] * g2_19;
  uint128 r2 = (uint128)f[0] * g[2] + (uint128)f[1] * g[1] + (uint128)f[2] * g[0] + (uint128)f[3] * g4_19 +
               (uint128)f[4] * g3_19;
  uint128 r3 = (uint128)f[0] * g[3] + (uint128)f[1] * g[2] + (uint128)f[2] * g[1] + (uint128)f[3] * g[0] +
               (uint128)f[4] * g4_19;
  uint128 r4 = (uint128)f[0] * g[4] + (uint128)f[1] * g[3] + (uint128)f[2] * g[2] + (uint128)f[3] * g[1] +
               (uint128)f[4] * g[0];
  /* Carry in 128 bits first (the excesses are up to ~2^64), then once more in 64 bits. */
  r1 += (uint64_t)(r0 >> 51);
  r2 += (uint64_t)(r1 >> 51);
  r3 += (uint64_t)(r2 >> 51);
  r4 += (uint64_t)(r3 >> 51);
  uint128 wrap = (uint128)(uint64_t)(r4 >> 51) * 19 + ((uint64_t)r0 & LIMB_MASK);
  out[0] = (uint64_t)wrap & LIMB_MASK;
  out[1] = ((uint64_t)r1 & LIMB_MASK) + (uint64_t)(wrap >> 51);
  out[2] = (uint64_t)r2 & LIMB_MASK;
  out[3] = (uint64_t)r3 & LIMB_MASK;
  out[4] = (uint64_t)r4 & LIMB_MASK;
}

static void fe_square(fe out, const fe f) {
  fe_mul(out, f, f);
}

/* f * small for a small constant (a24 = 121665 < 2^17). */
static void fe_mul_small(fe out, const fe f, uint32_t small) {
  uint128 r[5];
  for (int i = 0; i < 5; i++) r[i] = (uint128)f[i] * small;
  for (int i = 0; i < 4; i++) {
    r[i + 1] += (uint64_t)(r[i] >> 51);
    out[i] = (uint64_t)r[i] & LIMB_MASK;
  }
  out[4] = (uint64_t)r[4] & LIMB_MASK;
  out[0] += 19 * (uint64_t)(r[4] >> 51);
  fe_carry(out);
}

/* z^(p-2) = 1/z (Fermat), or 0 for z = 0 as RFC 7748 wants. Square-and-multiply over the public
 * exponent p - 2 = 2^255 - 21, whose bits 254..0 are all 1 except bits 4 and 2 (21 = 10101b
 * subtracted from 2^255 leaves ...11101011b). */
static void fe_invert(fe out, const fe z) {
  fe r;
  fe_copy(r, z); /* bit 254 */
  for (int bit = 253; bit >= 0; bit--) {
    fe_square(r, r);
    if (bit != 4 && bit != 2) fe_mul(r, r, z);
  }
  fe_copy(out, r);
}

/* decodeUCoordinate: little-endian, bit 255 masked off; values >= p are accepted as they are
 * (they reduce in the arithmetic). */
static void fe_from_bytes(fe h, const uint8_t s[32]) {
  uint64_t w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = 0;
    for (int j = 7; j >= 0; j--) w[i] = w[i] << 8 | s[8 * i + j];
  }
  w[3] &= ~(UINT64_C(1) << 63);
  /* Limb i starts at bit 51 i: 0, 51, 102 = 64 + 38, 153 = 128 + 25, 204 = 192 + 12. */
  h[0] = w[0] & LIMB_MASK;
  h[1] = (w[0] >> 51 | w[1] << 13) & LIMB_MASK;
  h[2] = (w[1] >> 38 | w[2] << 26) & LIMB_MASK;
  h[3] = (w[2] >> 25 | w[3] << 39) & LIMB_MASK;
  h[4] = w[3] >> 12;
}

/* encodeUCoordinate: the unique representative in [0, p), little-endian. */
static void fe_to_bytes(uint8_t s[32], const fe f) {
  fe h;
  fe_copy(h, f);
  /* Two carry passes leave every limb < 2^51, so the value v is < 2^255 (a second wrap can only
   * happen after limb 0 carried, i.e. when it is small). */
  fe_carry(h);
  fe_carry(h);
  /* v >= p exactly when v + 19 >= 2^255: find that carry out of bit 254 without branching... */
  uint64_t q = (h[0] + 19) >> 51;
  q = (h[1] + q) >> 51;
  q = (h[2] + q) >> 51;
  q = (h[3] + q) >> 51;
  q = (h[4] + q) >> 51;
  /* ...and then v - p = v + 19 - 2^255: add 19 q, carry, drop bit 255. */
  h[0] += 19 * q;
  uint64_t c;
  c = h[0] >> 51; h[0] &= LIMB_MASK; h[1] += c;
  c = h[1] >> 51; h[1] &= LIMB_MASK; h[2] += c;
  c = h[2] >> 51; h[2] &= LIMB_MASK; h[3] += c;
  c = h[3] >> 51; h[3] &= LIMB_MASK; h[4] += c;
  h[4] &= LIMB_MASK;
  uint64_t w[4] = {
      h[0] | h[1] << 51,
      h[1] >> 13 | h[2] << 38,
      h[2] >> 26 | h[3] << 25,
      h[3] >> 39 | h[4] << 12,
  };
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 8; j++) s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
  }
}

/* Swaps a and b when swap is 1, leaves them when 0, doing the same work either way. */
static void fe_cswap(fe a, fe b, uint64_t swap) {
  uint64_t mask = 0 - swap;
  for (int i = 0; i < 5; i++) {
    uint64_t t = mask & (a[i] ^ b[i]);
    a[i] ^= t;
    b[i] ^= t;
  }
}

void x25519(uint8_t out[32], const uint8_t scalar[32], const uint8_t point[32]) {
  /* decodeScalar25519: clear the 3 low bits (a multiple of the cofactor 8), clear bit 255, set
   * bit 254. */
  uint8_t k[32];
  memcpy(k, scalar, 32);
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;

  /* The ladder as RFC 7748 section 5 writes it: (x_2 : z_2) and (x_3 : z_3) hold k' * u and
   * (k' + 1) * u for the scalar's leading bits k'; a conditional swap picks which one doubles. */
  fe x_1, x_2, z_2, x_3, z_3;
  fe a, aa, b, bb, e, c, d, da, cb, t;
  fe_from_bytes(x_1, point);
  fe_set_small(x_2, 1);
  fe_set_small(z_2, 0);
  fe_copy(x_3, x_1);
  fe_set_small(z_3, 1);
  uint64_t swap = 0;
  for (int bit = 254; bit >= 0; bit--) {
    uint64_t k_t = (k[bit / 8] >> (bit % 8)) & 1;
    swap ^= k_t;
    fe_cswap(x_2, x_3, swap);
    fe_cswap(z_2, z_3, swap);
    swap = k_t;

    fe_add(a, x_2, z_2);   /* A = x_2 + z_2 */
    fe_square(aa, a);      /* AA = A^2 */
    fe_sub(b, x_2, z_2);   /* B = x_2 - z_2 */
    fe_square(bb, b);      /* BB = B^2 */
    fe_sub(e, aa, bb);     /* E = AA - BB */
    fe_add(c, x_3, z_3);   /* C = x_3 + z_3 */
    fe_sub(d, x_3, z_3);   /* D = x_3 - z_3 */
    fe_mul(da, d, a);      /* DA = D * A */
    fe_mul(cb, c, b);      /* CB = C * B */
    fe_add(t, da, cb);
    fe_square(x_3, t);     /* x_3 = (DA + CB)^2 */
    fe_sub(t, da, cb);
    fe_square(t, t);
    fe_mul(z_3, x_1, t);   /* z_3 = x_1 * (DA - CB)^2 */
    fe_mul(x_2, aa, bb);   /* x_2 = AA * BB */
    fe_mul_small(t, e, 121665);
    fe_add(t, aa, t);
    fe_mul(z_2, e, t);     /* z_2 = E * (AA + a24 * E) */
  }
  fe_cswap(x_2, x_3, swap);
  fe_cswap(z_2, z_3, swap);

  /* Back to affine: x_2 / z_2 (z_2 = 0, for a low-order point, gives 0). */
  fe_invert(t, z_2);
  fe_mul(t, x_2, t);
  fe_to_bytes(out, t);

  secure_wipe(k, sizeof k);
  secure_wipe(x_2, sizeof x_2);
  secure_wipe(z_2, sizeof z_2);
  secure_wipe(x_3, sizeof x_3);
  secure_wipe(z_3, sizeof z_3);
  secure_wipe(a, sizeof a);
  secure_wipe(aa, sizeof aa);
  secure_wipe(b, sizeof b);
  secure_wipe(bb, sizeof bb);
  secure_wipe(e, sizeof e);
  secure_wipe(c, sizeof c);
  secure_wipe(d, sizeof d);
  secure_wipe(da, sizeof da);
  secure_wipe(cb, sizeof cb);
  secure_wipe(t, sizeof t);
}

void x25519_base(uint8_t out[32], const uint8_t scalar[32]) {
  /* The base point of Curve25519 has u = 9. */
  static const uint8_t base_point[32] = {9};
  x25519(out, scalar, base_point);
}
