/*
 * The SEV-SNP demo guest (after entry.S): it validates a page of its own (PVALIDATE), asks the
 * firmware for a key derived from its measurement and for an attestation report through the
 * GHCB (guest messages encrypted with VMPCK0 from its secrets page), binds an X25519 public key
 * into the report, hands both to the host, and waits; a verifier that trusts the report
 * encrypts a secret to that key, and the guest decrypts and prints it.
 */
#include <stddef.h>
#include <stdint.h>

#include "../lib/crypto.h"
#include "layout.h"

/* struct ghcb fields (GHCB spec 56421) */
#define G_RAX        0x1f8
#define G_RBX        0x318
#define G_EXIT_CODE  0x390
#define G_EXIT_INFO1 0x398
#define G_EXIT_INFO2 0x3a0
#define G_SCRATCH    0x3a8
#define G_VALID      0x3f0
#define G_SHARED     0x800
#define G_SHARED_MAX 0x7f0
#define G_VERSION    0xffa
#define G_USAGE      0xffc

#define EXIT_IOIO          0x7b
#define EXIT_GUEST_REQUEST 0x80000011ull
#define EXIT_EXT_GUEST_REQUEST 0x80000012ull
#define VMM_ERR_INVALID_LEN (1ull << 32)
#define IOIO_STRING        (1u << 2)
#define IOIO_SIZE8         (1u << 4)

/* Guest messages (SNP ABI "Guest Messages") */
#define MSG_KEY_REQ    3
#define MSG_REPORT_REQ 5
#define REPORT_SIZE    0x4a0

static inline void wrmsr(uint32_t msr, uint64_t v) {
  __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline void vmgexit(void) { __asm__ volatile(".byte 0xf3, 0x0f, 0x01, 0xd9" : : : "memory"); }

static volatile uint8_t *const ghcb = (volatile uint8_t *)GHCB;

static void ghcb_put(uint32_t off, uint64_t v) {
  *(volatile uint64_t *)(ghcb + off) = v;
  ghcb[G_VALID + off / 64] |= (uint8_t)(1u << ((off / 8) % 8));
}

static uint64_t ghcb_get(uint32_t off) { return *(volatile uint64_t *)(ghcb + off); }

/* One VMGEXIT through the GHCB; returns SW_EXITINFO2, *info1 gets SW_EXITINFO1 (0: done). */
static uint64_t ghcb_call(uint64_t code, uint64_t info1, uint64_t info2, uint64_t *result1) {
  ghcb_put(G_EXIT_CODE, code);
  ghcb_put(G_EXIT_INFO1, info1);
  ghcb_put(G_EXIT_INFO2, info2);
  *(volatile uint16_t *)(ghcb + G_VERSION) = 2;
  *(volatile uint32_t *)(ghcb + G_USAGE) = 0;
  wrmsr(GHCB_MSR, GHCB);
  vmgexit();
  if (result1) *result1 = ghcb_get(G_EXIT_INFO1);
  return ghcb_get(G_EXIT_INFO2);
}

static void ghcb_clear_valid(void) {
  for (int i = 0; i < 16; i++) ghcb[G_VALID + i] = 0;
}

/* OUT of one byte to `port`, as a #VC handler would forward it. */
static void out8(uint16_t port, uint8_t value) {
  ghcb_clear_valid();
  ghcb_put(G_RAX, value);
  ghcb_call(EXIT_IOIO, (uint64_t)port << 16 | IOIO_SIZE8, 0, NULL);
}

/* OUTSB of `len` bytes to `port`, through the GHCB's shared buffer. */
static void out_text(uint16_t port, const char *s, size_t len) {
  while (len) {
    size_t n = len < G_SHARED_MAX ? len : G_SHARED_MAX;
    for (size_t i = 0; i < n; i++) ghcb[G_SHARED + i] = (uint8_t)s[i];
    ghcb_clear_valid();
    ghcb_put(G_SCRATCH, GHCB + G_SHARED);
    ghcb_call(EXIT_IOIO, (uint64_t)port << 16 | IOIO_STRING | IOIO_SIZE8, n, NULL);
    s += n;
    len -= n;
  }
}

static size_t text_len(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static void print(const char *s) { out_text(PORT_TEXT, s, text_len(s)); }

static int fail(const char *why) {
  print("snp guest: ");
  print(why);
  print("\n");
  return 1;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* A guest message exchange with the firmware, VMPCK0 from the secrets page. */
struct channel {
  const uint8_t *vmpck;
  uint64_t seqno; /* the last sequence number used */
};

/* Sends `payload` as message `type`, receives the response payload (at most out_len bytes).
 * Returns its length, or -1 (-2: the certificate buffer was too small). With `certs`, an
 * extended request: the host puts its certificate table in those CERTS_PAGES shared pages.
 * Only ciphertext ever leaves private memory. */
static int guest_request(struct channel *c, uint8_t type, const uint8_t *payload, uint16_t len, uint8_t *out, uint16_t out_len,
                         uint64_t certs) {
  uint8_t *req = (uint8_t *)REQ_PAGE;
  const uint8_t *resp = (const uint8_t *)RESP_PAGE;
  uint8_t iv[12] = {0}, tag[16];
  const uint64_t seqno = c->seqno + 1;
  memset(req, 0, 4096);
  put_le(req + 0x20, seqno, 8);
  req[0x30] = 1;          /* ALGO: AES-256-GCM */
  req[0x31] = 1;          /* HDR_VERSION */
  put_le(req + 0x32, 0x60, 2);
  req[0x34] = type;
  req[0x35] = 1;          /* MSG_VERSION */
  put_le(req + 0x36, len, 2);
  req[0x3c] = 0;          /* MSG_VMPCK */
  put_le(iv, seqno, 8);
  aes256_gcm_encrypt(c->vmpck, iv, req + 0x30, 0x30, payload, len, req + 0x60, tag);
  memcpy(req, tag, 16);
  uint64_t action;
  ghcb_clear_valid();
  if (certs) {
    ghcb_put(G_RAX, certs);
    ghcb_put(G_RBX, CERTS_PAGES);
  }
  uint64_t error = ghcb_call(certs ? EXIT_EXT_GUEST_REQUEST : EXIT_GUEST_REQUEST, REQ_PAGE, RESP_PAGE, &action);
  if (!action && error == VMM_ERR_INVALID_LEN) return -2;
  if (action || error) return -1;
  const uint16_t resp_len = (uint16_t)get_le(resp + 0x36, 2);
  if (get_le(resp + 0x20, 8) != seqno + 1 || resp[0x34] != type + 1 || resp_len > out_len) return -1;
  put_le(iv, seqno + 1, 8);
  if (aes256_gcm_decrypt(c->vmpck, iv, resp + 0x30, 0x30, resp + 0x60, resp_len, out, resp)) return -1;
  c->seqno = seqno + 1;
  return resp_len;
}

/* PVALIDATE: RAX the page, ECX 0 (4 KiB), EDX 1 (validate); RAX 0 on success. */
static uint64_t pvalidate(uint64_t page) {
  uint64_t rax = page;
  __asm__ volatile(".byte 0xf2, 0x0f, 0x01, 0xff" : "+a"(rax) : "c"(0), "d"(1) : "memory", "cc");
  return rax;
}

int snp_main(void) {
  const uint8_t *x = (const uint8_t *)XCHG;
  uint8_t *xout = (uint8_t *)XCHG;

  /* A page nobody launched: private, not yet validated; validating it makes it usable. */
  if (pvalidate(SPARE_PAGE) != 0) return fail("PVALIDATE failed");
  volatile uint64_t *spare = (volatile uint64_t *)SPARE_PAGE;
  *spare = 0x5eed;
  if (*spare != 0x5eed) return fail("the validated page does not hold data");

  struct channel c = {(const uint8_t *)SECRETS + 0x20, 0};
  uint8_t nonce[32];
  memcpy(nonce, x + X_NONCE, 32);

  /* A key only this guest's measurement (and policy) can get, mixed with the verifier's nonce:
   * the private half of the key the secret will be encrypted to. */
  uint8_t key_req[32] = {0}, key_resp[64];
  put_le(key_req + 8, (1u << 0) | (1u << 3), 8); /* GUEST_FIELD_SELECT: policy, measurement */
  if (guest_request(&c, MSG_KEY_REQ, key_req, sizeof key_req, key_resp, sizeof key_resp, 0) != 64 || get_le(key_resp, 4))
    return fail("MSG_KEY_REQ failed");
  uint8_t priv[32], pub[32];
  static const char key_info[] = "node-sev snp demo: guest key";
  hkdf_sha256(nonce, 32, key_resp + 32, 32, (const uint8_t *)key_info, sizeof key_info - 1, priv, 32);
  secure_wipe(key_resp, sizeof key_resp);
  x25519_base(pub, priv);

  /* The report binds the nonce and the public key: REPORT_DATA = nonce || SHA-256(pub). An
   * extended request: the host's certificates (VCEK, ASK, ARK) come with it. */
  uint8_t report_req[96] = {0};
  memcpy(report_req, nonce, 32);
  sha256(pub, 32, report_req + 32);
  uint8_t report_resp[32 + REPORT_SIZE];
  const int got = guest_request(&c, MSG_REPORT_REQ, report_req, sizeof report_req, report_resp, sizeof report_resp, CERTS);
  if (got == -2) return fail("the host's certificates do not fit the buffer");
  if (got != sizeof report_resp || get_le(report_resp, 4) || get_le(report_resp + 4, 4) != REPORT_SIZE)
    return fail("MSG_REPORT_REQ failed");
  memcpy(xout + X_PUB, pub, 32);
  memcpy(xout + X_REPORT, report_resp + 32, REPORT_SIZE);
  out8(PORT_EVENT, EVENT_REPORT_READY);

  /* The host's answer: the verifier's public key and the secret encrypted to ours. */
  uint8_t shared[32], key[32], iv[12], tag[16], secret[X_CT_MAX + 1];
  const uint32_t len = (uint32_t)get_le(x + X_CT_LEN, 4);
  if (len == 0 || len > X_CT_MAX) return fail("no secret was released");
  x25519(shared, priv, x + X_PEER);
  static const uint8_t zero[32] = {0};
  if (ct_equal(shared, zero, 32)) return fail("the verifier's key is not usable");
  static const char secret_info[] = "node-sev snp demo: secret";
  hkdf_sha256(nonce, 32, shared, 32, (const uint8_t *)secret_info, sizeof secret_info - 1, key, 32);
  memcpy(iv, x + X_IV, 12);
  memcpy(tag, x + X_TAG, 16);
  if (aes256_gcm_decrypt(key, iv, pub, 32, x + X_CT, len, secret, tag)) return fail("the secret does not decrypt");
  secure_wipe(priv, sizeof priv);
  secure_wipe(key, sizeof key);
  out_text(PORT_TEXT, (const char *)secret, len);
  secure_wipe(secret, sizeof secret);
  return 0;
}
