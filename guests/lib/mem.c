/*
 * The four memory functions gcc may emit calls to for struct copies and initialisers even in
 * freestanding code (the gcc manual says they must be provided), plus the two helpers secret
 * handling needs. Plain byte loops: the guest's buffers are small and this keeps them obviously
 * right. gcc does not turn a loop inside memcpy/memset back into a call to the same function
 * (it checks for that), so these cannot recurse.
 */
#include "crypto.h"

void *memcpy(void *restrict dst, const void *restrict src, size_t len) {
  uint8_t *d = dst;
  const uint8_t *s = src;
  for (size_t i = 0; i < len; i++) d[i] = s[i];
  return dst;
}

void *memmove(void *dst, const void *src, size_t len) {
  uint8_t *d = dst;
  const uint8_t *s = src;
  if (d == s || len == 0) return dst;
  /* Copy away from the overlap: forwards when the destination is below the source. Comparing
   * as integers because the pointers may point into different objects. */
  if ((uintptr_t)d < (uintptr_t)s) {
    for (size_t i = 0; i < len; i++) d[i] = s[i];
  } else {
    for (size_t i = len; i > 0; i--) d[i - 1] = s[i - 1];
  }
  return dst;
}

void *memset(void *dst, int value, size_t len) {
  uint8_t *d = dst;
  for (size_t i = 0; i < len; i++) d[i] = (uint8_t)value;
  return dst;
}

int memcmp(const void *a, const void *b, size_t len) {
  const uint8_t *x = a, *y = b;
  for (size_t i = 0; i < len; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

int ct_equal(const void *a, const void *b, size_t len) {
  const uint8_t *x = a, *y = b;
  uint8_t diff = 0;
  /* Accumulate every difference instead of returning at the first, so the time says nothing
   * about where the buffers differ. */
  for (size_t i = 0; i < len; i++) diff |= (uint8_t)(x[i] ^ y[i]);
  /* 1 when diff == 0: (diff - 1) has bit 8 set only then, without a data-dependent branch. */
  return (int)(((uint32_t)diff - 1u) >> 8 & 1u);
}

void secure_wipe(void *p, size_t len) {
  /* Stores through a volatile pointer are observable behaviour, so they are never dropped as
   * dead even when the buffer is not read again. */
  volatile uint8_t *v = p;
  for (size_t i = 0; i < len; i++) v[i] = 0;
}
