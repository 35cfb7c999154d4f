/*
 * Host-side driver for the guest crypto library (guests/lib), used by
 * test/unit/guest-crypto.test.ts. Reads one command per line on stdin and prints one line per
 * command, so a single process answers a whole batch. Byte strings are hex, "-" is empty.
 *
 *   aes-block KEY BLOCK                -> CIPHERTEXT
 *   gcm-enc KEY IV AAD PT              -> CT TAG
 *   gcm-dec KEY IV AAD CT TAG          -> "ok PT" | "bad zeroed" | "bad not-zeroed"
 *   gcm-inplace KEY IV AAD PT          -> CT TAG ROUNDTRIP  (encrypt and decrypt with out == in)
 *   sha256 DATA                        -> DIGEST
 *   sha256-split DATA MAXCHUNK         -> DIGEST (incremental, chunks of 1, 2, .. MAXCHUNK bytes, cycling)
 *   sha256-pattern LEN                 -> DIGEST of LEN bytes i * 131 + 7 (mod 256)
 *   hmac KEY DATA                      -> MAC
 *   hkdf SALT IKM INFO LEN             -> OKM
 *   x25519 SCALAR POINT                -> U
 *   x25519-base SCALAR                 -> U
 *   x25519-iter N                      -> K after N rounds of RFC 7748 5.2's iteration
 *   ct-equal A B                       -> 1 | 0
 *   mem-check                          -> ok | failure text
 *
 * Links the library's own memcpy/memset/memcmp/memmove (mem.c), which then serve this program.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../guests/lib/crypto.h"

static void fail(const char *why) {
  fprintf(stderr, "guest_crypto_test: %s\n", why);
  exit(2);
}

/* Not sscanf: glibc's measures the whole remaining string on every call, quadratic on 2 MB lines. */
static unsigned hex_digit(char c) {
  if (c >= '0' && c <= '9') return (unsigned)(c - '0');
  if (c >= 'a' && c <= 'f') return (unsigned)(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return (unsigned)(c - 'A' + 10);
  fail("bad hex");
  return 0;
}

/* Decodes hex ("-" is empty) into a fresh buffer; never NULL, so callers can index it. */
static uint8_t *from_hex(const char *hex, size_t *len) {
  if (hex == NULL) fail("missing argument");
  if (strcmp(hex, "-") == 0) hex = "";
  size_t n = strlen(hex);
  if (n % 2) fail("odd hex length");
  uint8_t *buf = malloc(n / 2 + 1);
  if (!buf) fail("out of memory");
  for (size_t i = 0; i < n / 2; i++) buf[i] = (uint8_t)(hex_digit(hex[2 * i]) << 4 | hex_digit(hex[2 * i + 1]));
  *len = n / 2;
  return buf;
}

static uint8_t *from_hex_exact(const char *hex, size_t want) {
  size_t len;
  uint8_t *buf = from_hex(hex, &len);
  if (len != want) fail("wrong length");
  return buf;
}

static void put_hex(const uint8_t *p, size_t len) {
  if (len == 0) fputc('-', stdout);
  for (size_t i = 0; i < len; i++) printf("%02x", p[i]);
}

static int check_mem(void) {
  uint8_t a[64], b[64];
  for (int i = 0; i < 64; i++) a[i] = (uint8_t)(i + 1);
  /* memmove in both directions over an overlap */
  memcpy(b, a, 64);
  memmove(b + 5, b, 40);
  for (int i = 0; i < 40; i++) if (b[5 + i] != a[i]) return puts("memmove forward overlap"), 1;
  memcpy(b, a, 64);
  memmove(b, b + 7, 40);
  for (int i = 0; i < 40; i++) if (b[i] != a[7 + i]) return puts("memmove backward overlap"), 1;
  memset(b, 0xab, 10);
  for (int i = 0; i < 10; i++) if (b[i] != 0xab) return puts("memset"), 1;
  memcpy(b, a, 64);
  if (memcmp(a, b, 64) != 0) return puts("memcmp equal"), 1;
  b[9] = 0xff;
  if (memcmp(a, b, 64) >= 0 || memcmp(b, a, 64) <= 0) return puts("memcmp order"), 1;
  if (memcmp(a, b, 9) != 0) return puts("memcmp prefix"), 1;
  if (ct_equal(a, b, 64) != 0 || ct_equal(a, b, 9) != 1 || ct_equal(a, b, 0) != 1) return puts("ct_equal"), 1;
  secure_wipe(b, 64);
  for (int i = 0; i < 64; i++) if (b[i] != 0) return puts("secure_wipe"), 1;
  puts("ok");
  return 0;
}

static void run(char *line) {
  char *argv[8] = {0};
  int argc = 0;
  for (char *tok = strtok(line, " \t\r\n"); tok && argc < 8; tok = strtok(NULL, " \t\r\n")) argv[argc++] = tok;
  if (argc == 0) return;
  const char *cmd = argv[0];
  size_t len, aad_len;

  if (strcmp(cmd, "aes-block") == 0) {
    uint8_t *key = from_hex_exact(argv[1], 32), *block = from_hex_exact(argv[2], 16);
    aes256_key_schedule ks;
    aes256_expand_key(&ks, key);
    aes256_encrypt_block(&ks, block, block);
    put_hex(block, 16);
    free(key);
    free(block);
  } else if (strcmp(cmd, "gcm-enc") == 0) {
    uint8_t *key = from_hex_exact(argv[1], 32), *iv = from_hex_exact(argv[2], 12);
    uint8_t *aad = from_hex(argv[3], &aad_len), *pt = from_hex(argv[4], &len), tag[16];
    uint8_t *ct = malloc(len + 1);
    aes256_gcm_encrypt(key, iv, aad, aad_len, pt, len, ct, tag);
    put_hex(ct, len);
    printf(" ");
    put_hex(tag, 16);
    free(key), free(iv), free(aad), free(pt), free(ct);
  } else if (strcmp(cmd, "gcm-inplace") == 0) {
    uint8_t *key = from_hex_exact(argv[1], 32), *iv = from_hex_exact(argv[2], 12);
    uint8_t *aad = from_hex(argv[3], &aad_len), *buf = from_hex(argv[4], &len), tag[16];
    uint8_t *original = malloc(len + 1);
    memcpy(original, buf, len);
    aes256_gcm_encrypt(key, iv, aad, aad_len, buf, len, buf, tag);
    put_hex(buf, len);
    printf(" ");
    put_hex(tag, 16);
    int rc = aes256_gcm_decrypt(key, iv, aad, aad_len, buf, len, buf, tag);
    printf(" %s", rc == 0 && memcmp(buf, original, len) == 0 ? "roundtrip-ok" : "roundtrip-bad");
    free(key), free(iv), free(aad), free(buf), free(original);
  } else if (strcmp(cmd, "gcm-dec") == 0) {
    uint8_t *key = from_hex_exact(argv[1], 32), *iv = from_hex_exact(argv[2], 12);
    uint8_t *aad = from_hex(argv[3], &aad_len), *ct = from_hex(argv[4], &len), *tag = from_hex_exact(argv[5], 16);
    uint8_t *pt = malloc(len + 1);
    memset(pt, 0xa5, len); /* so "zeroed on failure" is visible */
    if (aes256_gcm_decrypt(key, iv, aad, aad_len, ct, len, pt, tag) == 0) {
      printf("ok ");
      put_hex(pt, len);
    } else {
      int zeroed = 1;
      for (size_t i = 0; i < len; i++) zeroed &= pt[i] == 0;
      printf(zeroed ? "bad zeroed" : "bad not-zeroed");
    }
    free(key), free(iv), free(aad), free(ct), free(tag), free(pt);
  } else if (strcmp(cmd, "sha256") == 0) {
    uint8_t *data = from_hex(argv[1], &len), digest[32];
    sha256(data, len, digest);
    put_hex(digest, 32);
    free(data);
  } else if (strcmp(cmd, "sha256-split") == 0) {
    uint8_t *data = from_hex(argv[1], &len), digest[32];
    size_t max_chunk = argv[2] ? strtoul(argv[2], NULL, 10) : 1;
    sha256_ctx ctx;
    sha256_init(&ctx);
    for (size_t off = 0, chunk = 1; off < len; chunk = chunk % max_chunk + 1) {
      size_t n = len - off < chunk ? len - off : chunk;
      sha256_update(&ctx, data + off, n);
      off += n;
    }
    sha256_final(&ctx, digest);
    put_hex(digest, 32);
    free(data);
  } else if (strcmp(cmd, "sha256-pattern") == 0) {
    size_t n = argv[1] ? strtoul(argv[1], NULL, 10) : 0;
    uint8_t *data = malloc(n + 1), digest[32];
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 131 + 7);
    sha256(data, n, digest);
    put_hex(digest, 32);
    free(data);
  } else if (strcmp(cmd, "hmac") == 0) {
    size_t key_len;
    uint8_t *key = from_hex(argv[1], &key_len), *data = from_hex(argv[2], &len), mac[32];
    hmac_sha256(key, key_len, data, len, mac);
    put_hex(mac, 32);
    free(key), free(data);
  } else if (strcmp(cmd, "hkdf") == 0) {
    size_t salt_len, ikm_len, info_len;
    uint8_t *salt = from_hex(argv[1], &salt_len), *ikm = from_hex(argv[2], &ikm_len), *info = from_hex(argv[3], &info_len);
    size_t out_len = argv[4] ? strtoul(argv[4], NULL, 10) : 0;
    uint8_t *okm = malloc(out_len + 1);
    hkdf_sha256(salt, salt_len, ikm, ikm_len, info, info_len, okm, out_len);
    put_hex(okm, out_len);
    free(salt), free(ikm), free(info), free(okm);
  } else if (strcmp(cmd, "x25519") == 0) {
    uint8_t *scalar = from_hex_exact(argv[1], 32), *point = from_hex_exact(argv[2], 32), u[32];
    x25519(u, scalar, point);
    put_hex(u, 32);
    free(scalar), free(point);
  } else if (strcmp(cmd, "x25519-base") == 0) {
    uint8_t *scalar = from_hex_exact(argv[1], 32), u[32];
    x25519_base(u, scalar);
    put_hex(u, 32);
    free(scalar);
  } else if (strcmp(cmd, "x25519-iter") == 0) {
    /* RFC 7748 5.2: k = u = 9; each round k, u = X25519(k, u), k. */
    unsigned long rounds = argv[1] ? strtoul(argv[1], NULL, 10) : 0;
    uint8_t k[32] = {9}, u[32] = {9}, next[32];
    for (unsigned long i = 0; i < rounds; i++) {
      x25519(next, k, u);
      memcpy(u, k, 32);
      memcpy(k, next, 32);
    }
    put_hex(k, 32);
  } else if (strcmp(cmd, "ct-equal") == 0) {
    size_t b_len;
    uint8_t *a = from_hex(argv[1], &len), *b = from_hex(argv[2], &b_len);
    if (b_len != len) fail("ct-equal needs equal lengths");
    printf("%d", ct_equal(a, b, len));
    free(a), free(b);
  } else if (strcmp(cmd, "mem-check") == 0) {
    check_mem();
    return;
  } else {
    fail("unknown command");
  }
  printf("\n");
}

int main(void) {
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, stdin) > 0) run(line);
  free(line);
  return 0;
}
