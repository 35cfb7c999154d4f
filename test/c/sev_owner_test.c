/*
 * sev_owner_test: drives the emulator through the platform-owner flows and the kernel's
 * state machine, checking results against kernel + firmware semantics. Links the system
 * libcrypto (dynamically) to sign the owner's certificates — which also proves that the
 * emulator's static copy of OpenSSL coexists with another one in the same process.
 *
 *   cc -o sev_owner_test sev_owner_test.c -lcrypto
 *   LD_PRELOAD=.../sevemu.so SEV_EMU_STATE=$(mktemp -d) ./sev_owner_test
 * Run on a fresh state directory (it resets the platform). Exit 0 when all checks pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/psp-sev.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CERT 2084
/* Platform states (the UAPI header does not name them). */
#define STATE_UNINIT 0
#define STATE_INIT 1
static int failures;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

static int fd, ro_fd;
static int last_errno;
static uint32_t last_error;

static int issue_on(int f, uint32_t cmd, void *data) {
  struct sev_issue_cmd a = {.cmd = cmd, .data = (uint64_t)(uintptr_t)data, .error = 0};
  errno = 0;
  int r = ioctl(f, SEV_ISSUE_CMD, &a);
  last_errno = r < 0 ? errno : 0;
  last_error = a.error;
  return r;
}
static int issue(uint32_t cmd, void *data) { return issue_on(fd, cmd, data); }

#define EXPECT_OK(call) CHECK((call) == 0, #call " -> errno %d error %u", last_errno, last_error)
#define EXPECT_FW(call, status) \
  CHECK((call) == -1 && last_errno == EIO && last_error == (status), \
        #call " -> errno %d error %u, want EIO/%d", last_errno, last_error, status)
#define EXPECT_ERRNO(call, e) \
  CHECK((call) == -1 && last_errno == (e), #call " -> errno %d, want %d", last_errno, e)

static struct sev_user_data_status status(void) {
  struct sev_user_data_status s;
  memset(&s, 0, sizeof s);
  EXPECT_OK(issue(SEV_PLATFORM_STATUS, &s));
  return s;
}

static void export_chain(uint8_t *pdh, uint8_t *chain) {
  struct sev_user_data_pdh_cert_export e = {(uintptr_t)pdh, CERT, (uintptr_t)chain, 3 * CERT};
  EXPECT_OK(issue(SEV_PDH_CERT_EXPORT, &e));
}

/* --- minimal SEV certificate helpers for the owner side --- */
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void bn_le(const BIGNUM *bn, uint8_t *out72) {
  uint8_t be[48];
  BN_bn2binpad(bn, be, 48);
  memset(out72, 0, 72);
  for (int i = 0; i < 48; i++) out72[i] = be[47 - i];
}
static void set_pubkey(uint8_t *c, EVP_PKEY *k) {
  BIGNUM *x = NULL, *y = NULL;
  EVP_PKEY_get_bn_param(k, "qx", &x);
  EVP_PKEY_get_bn_param(k, "qy", &y);
  put32(c + 16, 2);
  bn_le(x, c + 20);
  bn_le(y, c + 92);
  BN_free(x);
  BN_free(y);
}
static void sign_slot(uint8_t *c, int slot, uint32_t usage, EVP_PKEY *k) {
  uint8_t *s = c + (slot ? 0x61c : 0x414);
  memset(s, 0, 520);
  put32(s, usage);
  put32(s + 4, 2);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  uint8_t der[256];
  size_t len = sizeof der;
  EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k);
  EVP_DigestSign(ctx, der, &len, c, 0x414);
  EVP_MD_CTX_free(ctx);
  const uint8_t *p = der;
  ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
  bn_le(ECDSA_SIG_get0_r(sig), s + 8);
  bn_le(ECDSA_SIG_get0_s(sig), s + 80);
  ECDSA_SIG_free(sig);
}
static void make_oca(uint8_t *c, EVP_PKEY *k) {
  memset(c, 0, CERT);
  put32(c, 1);
  put32(c + 8, 0x1001);
  put32(c + 12, 2);
  set_pubkey(c, k);
  put32(c + 0x61c, 0x1000);
  sign_slot(c, 0, 0x1001, k);
}

static void test_ownership(void) {
  uint8_t csr[CERT], oca[CERT], pek[CERT], pdh[CERT], chain[3 * CERT], pdh2[CERT];
  struct sev_user_data_status s = status();
  CHECK(s.state == STATE_INIT && !(s.flags & 1), "fresh platform INIT, self-owned");

  /* PEK_CSR: query, short buffer, full buffer. */
  struct sev_user_data_pek_csr q = {0, 0};
  EXPECT_FW(issue(SEV_PEK_CSR, &q), SEV_RET_INVALID_LEN);
  CHECK(q.length == CERT, "csr length %u", q.length);
  uint8_t small[100];
  memset(small, 0xAA, sizeof small);
  q.address = (uintptr_t)small;
  q.length = sizeof small;
  EXPECT_FW(issue(SEV_PEK_CSR, &q), SEV_RET_INVALID_LEN);
  CHECK(q.length == CERT && small[0] == 0xAA, "short csr: length %u, buffer untouched", q.length);
  q.address = (uintptr_t)csr;
  q.length = 4096 > CERT ? CERT : 0;
  EXPECT_OK(issue(SEV_PEK_CSR, &q));
  export_chain(pdh, chain);
  CHECK(get32(csr + 8) == 0x1002 && get32(csr + 0x414) == 0x1000 && get32(csr + 0x61c) == 0x1000,
        "csr is an unsigned PEK cert");
  CHECK(memcmp(csr + 16, chain + 16, 1028) == 0, "csr key is the PEK");
  CHECK(issue_on(ro_fd, SEV_PEK_CSR, &q) == -1 && last_errno == EPERM, "PEK_CSR on ro fd");

  /* The owner: an OCA key, self-signed OCA cert, PEK signed by it. */
  EVP_PKEY *ok = EVP_EC_gen("P-384"), *other = EVP_EC_gen("P-384");
  make_oca(oca, ok);
  memcpy(pek, csr, CERT);
  sign_slot(pek, 0, 0x1001, ok);

  struct sev_user_data_pek_cert_import imp = {(uintptr_t)pek, CERT, (uintptr_t)oca, CERT};
  /* Kernel checks on the blobs. */
  struct sev_user_data_pek_cert_import bad = imp;
  bad.pek_cert_len = 0;
  EXPECT_ERRNO(issue(SEV_PEK_CERT_IMPORT, &bad), EINVAL);
  bad = imp;
  bad.oca_cert_len = 0x4001;
  EXPECT_ERRNO(issue(SEV_PEK_CERT_IMPORT, &bad), EINVAL);
  bad = imp;
  bad.oca_cert_address = 16;
  EXPECT_ERRNO(issue(SEV_PEK_CERT_IMPORT, &bad), EFAULT);
  EXPECT_ERRNO(issue_on(ro_fd, SEV_PEK_CERT_IMPORT, &imp), EPERM);
  /* Firmware checks. */
  bad = imp;
  bad.pek_cert_len = CERT - 1;
  EXPECT_FW(issue(SEV_PEK_CERT_IMPORT, &bad), SEV_RET_INVALID_LEN);
  uint8_t t[CERT];
  memcpy(t, oca, CERT);
  put32(t + 8, 0x1002);
  bad = imp;
  bad.oca_cert_address = (uintptr_t)t;
  EXPECT_FW(issue(SEV_PEK_CERT_IMPORT, &bad), SEV_RET_INVALID_CERTIFICATE);
  memcpy(t, oca, CERT);
  t[0x414 + 8] ^= 1;
  EXPECT_FW(issue(SEV_PEK_CERT_IMPORT, &bad), SEV_RET_BAD_SIGNATURE);
  memcpy(t, csr, CERT);
  set_pubkey(t, other);
  sign_slot(t, 0, 0x1001, ok);
  bad = imp;
  bad.pek_cert_address = (uintptr_t)t;
  EXPECT_FW(issue(SEV_PEK_CERT_IMPORT, &bad), SEV_RET_INVALID_CERTIFICATE);
  memcpy(t, csr, CERT);
  sign_slot(t, 0, 0x1001, other);
  EXPECT_FW(issue(SEV_PEK_CERT_IMPORT, &bad), SEV_RET_BAD_SIGNATURE);
  CHECK(!(status().flags & 1), "still self-owned after failed imports");

  EXPECT_OK(issue(SEV_PEK_CERT_IMPORT, &imp));
  s = status();
  CHECK(s.flags & 1, "owned after import");
  EXPECT_FW(issue(SEV_PEK_CERT_IMPORT, &imp), SEV_RET_ALREADY_OWNED);
  export_chain(pdh2, chain);
  CHECK(memcmp(chain + CERT, oca, CERT) == 0, "chain carries the owner's OCA");
  CHECK(memcmp(chain, pek, 0x414 + 520) == 0 && get32(chain + 0x61c) == 0x1004,
        "PEK keeps the OCA signature, gains the CEK's");
  CHECK(memcmp(pdh, pdh2, CERT) != 0, "PDH regenerated by import");

  /* PDH_GEN: new PDH, same PEK. */
  uint8_t chain2[3 * CERT];
  EXPECT_OK(issue(SEV_PDH_GEN, NULL));
  export_chain(pdh, chain2);
  CHECK(memcmp(pdh, pdh2, CERT) != 0 && memcmp(chain, chain2, CERT) == 0, "PDH_GEN");
  EXPECT_ERRNO(issue_on(ro_fd, SEV_PDH_GEN, NULL), EPERM);

  /* PEK_GEN: self-owned again, new PEK and OCA. */
  EXPECT_OK(issue(SEV_PEK_GEN, NULL));
  CHECK(!(status().flags & 1), "PEK_GEN clears the owner");
  export_chain(pdh, chain2);
  CHECK(memcmp(chain, chain2, 2 * CERT) != 0 && memcmp(chain + 2 * CERT, chain2 + 2 * CERT, CERT) == 0,
        "PEK_GEN: new PEK/OCA, same CEK");
  EVP_PKEY_free(ok);
  EVP_PKEY_free(other);
}

static void test_state_machine(void) {
  uint8_t pdh[CERT], chain[3 * CERT], pdh2[CERT], chain2[3 * CERT];
  export_chain(pdh, chain);
  EXPECT_ERRNO(issue_on(ro_fd, SEV_FACTORY_RESET, NULL), EPERM);
  EXPECT_OK(issue(SEV_FACTORY_RESET, NULL));  /* INIT: kernel shuts down, then resets */
  struct sev_user_data_status s = status();
  CHECK(s.state == STATE_UNINIT && !(s.flags & 1) && !(s.flags & 0x100),
        "after reset: UNINIT, self-owned, no CONFIG_ES (state %u flags %x)", s.state, s.flags);
  EXPECT_OK(issue(SEV_FACTORY_RESET, NULL));  /* UNINIT: straight to the firmware */

  /* PDH export from UNINIT: read-only fd may not move the platform; rw does, and the
     kernel shuts it down again afterwards. */
  struct sev_user_data_pdh_cert_export e = {0, 0, 0, 0};
  EXPECT_ERRNO(issue_on(ro_fd, SEV_PDH_CERT_EXPORT, &e), EPERM);
  export_chain(pdh2, chain2);
  CHECK(memcmp(pdh, pdh2, CERT) != 0 && memcmp(chain, chain2, 2 * CERT) != 0 &&
        memcmp(chain + 2 * CERT, chain2 + 2 * CERT, CERT) == 0,
        "reset deleted PEK/PDH/OCA, kept the CEK");
  CHECK(status().state == STATE_UNINIT, "implicit INIT is undone (newest kernel)");
  EXPECT_OK(issue(SEV_PEK_GEN, NULL));
  CHECK(status().state == STATE_UNINIT, "PEK_GEN from UNINIT leaves UNINIT");
  EXPECT_OK(issue(SEV_PDH_GEN, NULL));

  /* GET_ID / GET_ID2 work in any state. */
  struct sev_user_data_get_id id;
  memset(&id, 0x5A, sizeof id);
  EXPECT_OK(issue(SEV_GET_ID, &id));
  uint8_t id2[64];
  struct sev_user_data_get_id2 g = {(uintptr_t)id2, 64};
  EXPECT_OK(issue(SEV_GET_ID2, &g));
  CHECK(g.length == 64 && memcmp(id.socket1, id2, 64) == 0, "GET_ID = GET_ID2");
  CHECK(id.socket2[0] == 0x5A && id.socket2[63] == 0x5A, "GET_ID: socket2 untouched (1 socket)");
  g.length = 10;
  EXPECT_FW(issue(SEV_GET_ID2, &g), SEV_RET_INVALID_LEN);
  CHECK(g.length == 64, "GET_ID2 short length -> required length");
  g.address = 0;
  g.length = 64;
  EXPECT_FW(issue(SEV_GET_ID2, &g), SEV_RET_INVALID_LEN);
  EXPECT_OK(issue_on(ro_fd, SEV_GET_ID2, &(struct sev_user_data_get_id2){(uintptr_t)id2, 64}));
}

/* SNP commands by number: the 6.1 header predates them. */
#define CMD_SNP_PLATFORM_STATUS 9
#define CMD_SNP_COMMIT 10
#define CMD_SNP_SET_CONFIG 11
/* `mode`: "none" (no SNP firmware: Naples, Rome), "off" (SNP firmware, the host did not enable
   SNP), "on" (the host enabled it: SNP initialized at boot). Linux 7.2 initializes SNP only at
   boot; STATUS and COMMIT go to the firmware in any state, SET_CONFIG needs SNP (ENODEV). */
static void test_snp(const char *mode) {
  uint8_t st[32], cfg[64];
  memset(st, 0, sizeof st);
  memset(cfg, 0, sizeof cfg);
  EXPECT_ERRNO(issue(CMD_SNP_PLATFORM_STATUS, NULL), EINVAL);
  EXPECT_ERRNO(issue_on(ro_fd, CMD_SNP_SET_CONFIG, cfg), EPERM);
  if (strcmp(mode, "none") == 0) {
    EXPECT_FW(issue(CMD_SNP_PLATFORM_STATUS, st), SEV_RET_INVALID_COMMAND);
    EXPECT_FW(issue(CMD_SNP_COMMIT, NULL), SEV_RET_INVALID_COMMAND);
    EXPECT_ERRNO(issue(CMD_SNP_SET_CONFIG, cfg), ENODEV);
    return;
  }
  if (strcmp(mode, "off") == 0) {
    EXPECT_OK(issue(CMD_SNP_PLATFORM_STATUS, st));
    CHECK(st[2] == 0 && !(st[3] & 1), "SNP UNINIT, no RMP");
    EXPECT_FW(issue(CMD_SNP_COMMIT, NULL), SEV_RET_INVALID_PLATFORM_STATE);
    EXPECT_ERRNO(issue(CMD_SNP_SET_CONFIG, cfg), ENODEV);
    return;
  }
  EXPECT_OK(issue(CMD_SNP_PLATFORM_STATUS, st));
  CHECK(st[2] == 1 && (st[3] & 1), "SNP INIT, RMP initialized");
  uint64_t cur, rep;
  memcpy(&cur, st + 16, 8);
  memcpy(&rep, st + 24, 8);
  CHECK(cur && cur == rep, "reported TCB defaults to current");
  EXPECT_OK(issue_on(ro_fd, CMD_SNP_COMMIT, NULL));
  uint64_t want = cur - 1;
  memcpy(cfg, &want, 8);
  cfg[8] = 1;  /* mask_chip_id */
  EXPECT_OK(issue(CMD_SNP_SET_CONFIG, cfg));
  EXPECT_OK(issue(CMD_SNP_PLATFORM_STATUS, st));
  memcpy(&rep, st + 24, 8);
  CHECK(rep == want && (st[8] & 1), "SNP_SET_CONFIG applied");
  cfg[20] = 1;  /* reserved byte */
  EXPECT_FW(issue(CMD_SNP_SET_CONFIG, cfg), SEV_RET_INVALID_PARAM);
  /* 7.2's __sev_firmware_shutdown after an implicit INIT shuts SNP down too. */
  EXPECT_OK(issue(SEV_FACTORY_RESET, NULL));
  EXPECT_OK(issue(SEV_PDH_GEN, NULL));
  EXPECT_OK(issue(CMD_SNP_PLATFORM_STATUS, st));
  CHECK(st[2] == 0, "PDH_GEN from UNINIT shut SNP down with SEV (state %u)", st[2]);
  EXPECT_ERRNO(issue(CMD_SNP_SET_CONFIG, cfg), ENODEV);
}

static void test_bad_memory(void) {
  /* Read-only output buffer: the kernel's copy_to_user fails -> EFAULT. */
  uint8_t *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_ERRNO(issue(SEV_PLATFORM_STATUS, ro), EFAULT);
  struct sev_user_data_pdh_cert_export e = {(uintptr_t)ro, CERT, (uintptr_t)ro, 3 * CERT};
  EXPECT_ERRNO(issue(SEV_PDH_CERT_EXPORT, &e), EFAULT);
  munmap(ro, 4096);
  EXPECT_ERRNO(ioctl(fd, SEV_ISSUE_CMD, (void *)-1L), EFAULT);
}

int main(void) {
  const char *dev = getenv("SEV_EMU_DEVICE") ? getenv("SEV_EMU_DEVICE") : "/dev/sev";
  fd = open(dev, O_RDWR);
  ro_fd = open(dev, O_RDONLY);
  if (fd < 0 || ro_fd < 0) {
    perror("open");
    return 2;
  }
  const char *snp = getenv("SNP_MODE") ? getenv("SNP_MODE") : "off";
  test_ownership();
  test_snp(snp);
  test_state_machine();
  test_bad_memory();
  /* dup'd fds share the open file, including its access mode. */
  int d = dup(ro_fd), d2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  EXPECT_ERRNO(issue_on(d, SEV_PEK_GEN, NULL), EPERM);
  EXPECT_OK(issue_on(d2, SEV_PDH_GEN, NULL));
  dup2(d, d2); /* d2 now read-only */
  EXPECT_ERRNO(issue_on(d2, SEV_PDH_GEN, NULL), EPERM);
  close(d);
  close(d2);
  close(ro_fd);
  EXPECT_ERRNO(issue_on(ro_fd, SEV_PLATFORM_STATUS, &(struct sev_user_data_status){0}), EBADF);
  close(fd);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("sev_owner_test: all checks passed\n");
  return failures ? 1 : 0;
}
