/*
 * snp_launch_client: an SEV-SNP launch done as a third-party VMM does it, through raw ioctls
 * only — KVM_X86_SNP_VM, a guest_memfd behind the memslot, private memory attributes,
 * KVM_SEV_INIT2, KVM_SEV_SNP_LAUNCH_START / _UPDATE / _FINISH — with the launch digest computed
 * here (OpenSSL SHA-384 over the PAGE_INFO chain, SNP ABI spec 56860) and proven through a
 * signed ID block. Built on the system's <linux/kvm.h> and <linux/psp-sev.h> (6.1 on the
 * development machine) plus the project's UAPI header for what they lack.
 *
 *   cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -o snp_launch_client test/c/snp_launch_client.c -lcrypto
 *   node bin/sev-emu.js run --temp-state --host-snp --kvm soft -- ./snp_launch_client
 *
 * Three VMs get the same launch sequence: A (one vCPU) shows that its digest holds the vCPU's
 * VMSA, B (no vCPU, so no VMSA page) finishes with an ID block carrying the digest computed
 * here, C (one vCPU) finishes without an ID block and runs. Prints "ok - ..." / "not ok - ..."
 * lines (A's launch in full, B's and C's repeats only where they differ); exit status 1 when a
 * check failed. Expects a platform with no other SNP guest (a fresh emulator state).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/psp-sev.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conformance/new_uapi.h"
#include "tap.h"

#define PAGE 4096u
#define MEM_SIZE (2u << 20)     /* one memslot and its guest_memfd */
#define PRIVATE_SIZE (1u << 20) /* [0, 1 MiB) private, [1 MiB, 2 MiB) left shared */
#define POLICY 0x30000ull       /* SMT allowed, bit 17 (must be one), ABI 0.0 */

/* The guest's GPA layout (gfns). */
#define CODE_GFN 0x1
#define DATA_GFN 0x2
#define NORMAL_PAGES 3 /* code, data, one more */
#define ZERO_GFN 0x10
#define ZERO_PAGES 4
#define UNMEASURED_GFN 0x1f
#define SECRETS_GFN 0x20
#define CPUID_GFN 0x21
#define EDGE_GFN 0xfe /* two private pages, then the shared half */
#define FAULT_GFN 0x30 /* three pages whose source ends in a hole */

/* SNP PAGE_INFO types (the firmware's; VMSA pages are KVM's own, at INITIAL_VMSA_GPA). */
#define PAGE_TYPE_VMSA 2
#define DIGEST 48

/* SNP firmware statuses (SEV_RET_*, psp-sev.h). */
#define FW_POLICY_FAILURE 0x07
#define FW_BAD_SIGNATURE 0x0A
#define FW_BAD_MEASUREMENT 0x0B
#define FW_INVALID_PARAM 0x16

/* The guest, in real mode at CODE_GFN: the byte at DATA_GFN's page goes to the host as the
 * reason code of a GHCB MSR-protocol termination request (GHCBData = byte << 16 | 0x100):
 *   movzx eax, byte [0x2000]; shl eax, 16; or eax, 0x100; xor edx, edx;
 *   mov ecx, 0xC0010130; wrmsr; vmgexit; hlt */
static const uint8_t guest_code[] = {0x66, 0x0F, 0xB6, 0x06, 0x00, 0x20, 0x66, 0xC1, 0xE0, 0x10, 0x66, 0x0D,
                                     0x00, 0x01, 0x00, 0x00, 0x66, 0x31, 0xD2, 0x66, 0xB9, 0x30, 0x01, 0x01,
                                     0xC0, 0x0F, 0x30, 0xF3, 0x0F, 0x01, 0xD9, 0xF4};
#define GUEST_BYTE 0xA5

static int kvm_fd = -1, sev_fd = -1;

struct vm {
  const char *name;
  int verbose; /* report every check, or only the ones that fail */
  int fd, gmem, vcpu;
  uint8_t *mem;
  struct kvm_run *run;
  size_t run_size;
  uint8_t ld[DIGEST]; /* the launch digest of the pages, as computed here */
};

/* A check on one VM's launch: printed with the VM's name; on a quiet VM only when it fails. */
#define STEP(v, cond, ...)                                     \
  do {                                                         \
    int ok_ = (cond);                                          \
    if ((v)->verbose || !ok_) {                                \
      printf("%sok - %s: ", ok_ ? "" : "not ", (v)->name);     \
      printf(__VA_ARGS__);                                     \
      printf("\n");                                            \
    }                                                          \
    if (!ok_) failures++;                                      \
  } while (0)

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t uptr(const void *p) { return (uint64_t)(uintptr_t)p; }

/* KVM_MEMORY_ENCRYPT_OP; the ioctl's result, *err its errno, *fw the kvm_sev_cmd error field. */
static int sev_op(int vm, uint32_t id, void *data, int *err, uint32_t *fw) {
  struct kvm_sev_cmd cmd = {.id = id, .data = uptr(data), .error = 0xdeadbeef, .sev_fd = (uint32_t)sev_fd};
  int r = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd);
  *err = r < 0 ? errno : 0;
  *fw = cmd.error;
  return r;
}

/* SNP_PLATFORM_STATUS through SEV_ISSUE_CMD; the guest count, or -1. */
static long snp_guest_count(struct snp_platform_status_7_2 *out) {
  struct snp_platform_status_7_2 st;
  memset(&st, 0, sizeof st);
  struct sev_issue_cmd c = {.cmd = CMD_SNP_PLATFORM_STATUS, .data = uptr(&st)};
  if (ioctl(sev_fd, SEV_ISSUE_CMD, &c) != 0) return -1;
  if (out) *out = st;
  return st.guest_count;
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* ---- The launch digest (SNP ABI spec, "Launch Digest" / PAGE_INFO) ---- */

/* LD' = SHA-384(PAGE_INFO): LD | contents (SHA-384 of the page for NORMAL and VMSA, else zero)
 * | u16 length 0x70 | u8 type | u8 IMI 0 | VMPL3..1 permissions 0 | reserved | u64 GPA. */
static void measure(uint8_t ld[DIGEST], uint8_t type, uint64_t gpa, const uint8_t *page) {
  uint8_t info[0x70];
  memset(info, 0, sizeof info);
  memcpy(info, ld, DIGEST);
  if (page) SHA384(page, PAGE, info + 0x30);
  info[0x60] = 0x70;
  info[0x62] = type;
  put64(info + 0x68, gpa);
  SHA384(info, sizeof info, ld);
}

/* ---- ID block and ID authentication information (SNP ABI spec, SNP_LAUNCH_FINISH) ---- */

/* ECDSA P-384 / SHA-384 of `data` into an SNP signature: R and S little-endian, 72 bytes each. */
static int snp_sign(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t sig[0x200]) {
  uint8_t der[256];
  size_t dl = sizeof der;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && EVP_DigestSignInit(c, NULL, EVP_sha384(), NULL, key) == 1 && EVP_DigestSign(c, der, &dl, data, len) == 1;
  EVP_MD_CTX_free(c);
  if (!ok) return -1;
  const unsigned char *p = der;
  ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)dl);
  if (!s) return -1;
  const BIGNUM *r, *sv;
  ECDSA_SIG_get0(s, &r, &sv);
  memset(sig, 0, 0x200);
  ok = BN_bn2lebinpad(r, sig, 72) == 72 && BN_bn2lebinpad(sv, sig + 72, 72) == 72;
  ECDSA_SIG_free(s);
  return ok ? 0 : -1;
}

/* An SNP public key (0x404 bytes): u32 curve 2 (P-384), Qx, Qy little-endian in 72 bytes each. */
static int snp_public_key(EVP_PKEY *key, uint8_t out[0x404]) {
  BIGNUM *x = NULL, *y = NULL;
  memset(out, 0, 0x404);
  int ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
           EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 && BN_bn2lebinpad(x, out + 4, 72) == 72 &&
           BN_bn2lebinpad(y, out + 4 + 72, 72) == 72;
  put32(out, 2);
  BN_free(x);
  BN_free(y);
  return ok ? 0 : -1;
}

/* ID block (96 bytes): LD, FAMILY_ID, IMAGE_ID, VERSION 1, GUEST_SVN, POLICY; ID auth (4096):
 * ID_KEY_ALGO 1 @0, AUTH_KEY_ALGO @4, ID block signature @0x40, ID key @0x240, and with an
 * author key its signature of the ID key @0x680 and the author key @0x880. */
static int make_id(const uint8_t ld[DIGEST], uint64_t policy, EVP_PKEY *id_key, EVP_PKEY *author_key,
                   uint8_t block[KVM_SEV_SNP_ID_BLOCK_SIZE], uint8_t auth[KVM_SEV_SNP_ID_AUTH_SIZE]) {
  memset(block, 0, KVM_SEV_SNP_ID_BLOCK_SIZE);
  memset(auth, 0, KVM_SEV_SNP_ID_AUTH_SIZE);
  memcpy(block, ld, DIGEST);
  memcpy(block + 0x30, "snp-client-fam-1", 16);
  memcpy(block + 0x40, "snp-client-img-1", 16);
  put32(block + 0x50, 1);
  put32(block + 0x54, 7);
  put64(block + 0x58, policy);
  put32(auth, 1);
  if (snp_sign(id_key, block, KVM_SEV_SNP_ID_BLOCK_SIZE, auth + 0x40) || snp_public_key(id_key, auth + 0x240)) return -1;
  if (author_key) {
    put32(auth + 4, 1);
    if (snp_sign(author_key, auth + 0x240, 0x404, auth + 0x680) || snp_public_key(author_key, auth + 0x880)) return -1;
  }
  return 0;
}

static int finish(struct vm *v, const uint8_t *block, const uint8_t *auth, int author, int *err, uint32_t *fw) {
  struct kvm_sev_snp_launch_finish f;
  memset(&f, 0, sizeof f);
  if (block) {
    f.id_block_uaddr = uptr(block);
    f.id_auth_uaddr = uptr(auth);
    f.id_block_en = 1;
    f.auth_key_en = (uint8_t)author;
  }
  memcpy(f.host_data, "host data of the snp client ....", KVM_SEV_SNP_FINISH_DATA_SIZE);
  return sev_op(v->fd, KVM_SEV_SNP_LAUNCH_FINISH, &f, err, fw);
}

/* ---- The VMM side ---- */

/* KVM_GET_SUPPORTED_CPUID as an SNP CPUID page: u32 count, reserved to 0x10, then up to 64
 * entries of {EAX_IN, ECX_IN, u64 XCR0_IN, u64 XSS_IN, EAX, EBX, ECX, EDX, u64 reserved}.
 * Returns the number of entries, or -1. */
static int build_cpuid_page(uint8_t *page) {
  const int max = 256;
  struct kvm_cpuid2 *c = calloc(1, sizeof *c + (size_t)max * sizeof(struct kvm_cpuid_entry2));
  c->nent = (uint32_t)max;
  int r = ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c);
  memset(page, 0, PAGE);
  uint32_t n = 0;
  for (uint32_t i = 0; r == 0 && i < c->nent && n < 64; i++) {
    const struct kvm_cpuid_entry2 *e = &c->entries[i];
    uint8_t *d = page + 0x10 + n++ * 0x30;
    put32(d, e->function);
    put32(d + 4, e->index);
    /* XSAVE sizes (0xD, 0 and 1) are given for the legacy x87 state, as guests look them up. */
    if (e->function == 0xD && e->index <= 1) put64(d + 8, 1);
    put32(d + 0x18, e->eax);
    put32(d + 0x1c, e->ebx);
    put32(d + 0x20, e->ecx);
    put32(d + 0x24, e->edx);
  }
  put32(page, n);
  free(c);
  return r == 0 ? (int)n : -1;
}

/* The entry for leaf `fn`, subleaf 0, in a CPUID page, or NULL. */
static uint8_t *cpuid_entry(uint8_t *page, uint32_t fn) {
  for (uint32_t i = 0; i < get32(page) && i < 64; i++) {
    uint8_t *d = page + 0x10 + i * 0x30;
    if (get32(d) == fn && get32(d + 4) == 0) return d;
  }
  return NULL;
}

/* An SNP VM with one memslot over shared memory and a guest_memfd, its first MiB private. */
static int vm_create(struct vm *v) {
  v->fd = ioctl(kvm_fd, KVM_CREATE_VM, (unsigned long)KVM_X86_SNP_VM);
  STEP(v, v->fd >= 0, "KVM_CREATE_VM(KVM_X86_SNP_VM) (%s)", v->fd >= 0 ? "fd" : strerror(errno));
  if (v->fd < 0) return -1;
  int attrs = ioctl(v->fd, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
  STEP(v, attrs == (int)KVM_MEMORY_ATTRIBUTE_PRIVATE, "KVM_CAP_MEMORY_ATTRIBUTES on the VM = 0x%x (PRIVATE)", attrs);
  struct kvm_create_guest_memfd g = {.size = MEM_SIZE};
  v->gmem = ioctl(v->fd, KVM_CREATE_GUEST_MEMFD, &g);
  STEP(v, v->gmem >= 0, "KVM_CREATE_GUEST_MEMFD of 2 MiB (%s)", v->gmem >= 0 ? "fd" : strerror(errno));
  v->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (v->gmem < 0 || v->mem == MAP_FAILED) return -1;
  struct kvm_userspace_memory_region2 r;
  memset(&r, 0, sizeof r);
  r.slot = 0;
  r.flags = KVM_MEM_GUEST_MEMFD;
  r.guest_phys_addr = 0;
  r.memory_size = MEM_SIZE;
  r.userspace_addr = uptr(v->mem);
  r.guest_memfd = (uint32_t)v->gmem;
  r.guest_memfd_offset = 0;
  int rc = ioctl(v->fd, KVM_SET_USER_MEMORY_REGION2, &r);
  STEP(v, rc == 0, "KVM_SET_USER_MEMORY_REGION2: slot 0, 2 MiB at GPA 0, KVM_MEM_GUEST_MEMFD (%s)", rc ? strerror(errno) : "ok");
  struct kvm_memory_attributes a = {.address = 0, .size = PRIVATE_SIZE, .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE};
  int ra = ioctl(v->fd, KVM_SET_MEMORY_ATTRIBUTES, &a);
  STEP(v, ra == 0, "KVM_SET_MEMORY_ATTRIBUTES: [0, 1 MiB) private (%s)", ra ? strerror(errno) : "ok");
  return rc || ra ? -1 : 0;
}

/* KVM_SEV_INIT2 and KVM_SEV_SNP_LAUNCH_START with the argument checks around them. */
static int vm_start(struct vm *v, uint64_t policy_bits) {
  int err;
  uint32_t fw;
  struct kvm_sev_snp_launch_update early = {.gfn_start = CODE_GFN, .uaddr = uptr(v->mem + CODE_GFN * PAGE), .len = PAGE,
                                            .type = KVM_SEV_SNP_PAGE_TYPE_NORMAL};
  int r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_UPDATE, &early, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE before INIT2 -> EINVAL (errno %d)", err);

  struct kvm_sev_init init;
  memset(&init, 0, sizeof init);
  init.ghcb_version = 2;
  r = sev_op(v->fd, KVM_SEV_INIT2, &init, &err, &fw);
  STEP(v, r == 0, "KVM_SEV_INIT2 (vmsa_features 0, ghcb_version 2) (errno %d)", err);
  r = sev_op(v->fd, KVM_SEV_INIT2, &init, &err, &fw);
  /* sev_mem_enc_ioctl: once an SNP guest, any command below KVM_SEV_SNP_LAUNCH_START is EPERM. */
  STEP(v, r < 0 && err == EPERM, "a second KVM_SEV_INIT2 -> EPERM (errno %d)", err);
  struct kvm_sev_launch_start legacy;
  memset(&legacy, 0, sizeof legacy);
  r = sev_op(v->fd, KVM_SEV_LAUNCH_START, &legacy, &err, &fw);
  STEP(v, r < 0 && err == EPERM, "legacy KVM_SEV_LAUNCH_START on an SNP guest -> EPERM (errno %d)", err);
  r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_UPDATE, &early, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE before SNP_LAUNCH_START -> EINVAL (errno %d)", err);
  struct kvm_sev_snp_launch_finish fin;
  memset(&fin, 0, sizeof fin);
  r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_FINISH, &fin, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_FINISH before SNP_LAUNCH_START -> EINVAL (errno %d)", err);

  struct kvm_sev_snp_launch_start start;
  memset(&start, 0, sizeof start);
  start.policy = POLICY & ~(1ull << 17);
  r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_START, &start, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_START without policy bit 17 -> EINVAL (errno %d)", err);
  uint64_t unsupported = ~policy_bits & ~0xffffull; /* a policy bit KVM does not offer */
  if (unsupported) {
    start.policy = POLICY | (unsupported & -unsupported);
    r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_START, &start, &err, &fw);
    STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_START with policy bit %d, not in KVM_X86_SNP_POLICY_BITS -> EINVAL (errno %d)",
         __builtin_ctzll(unsupported), err);
  }
  start.policy = POLICY;
  start.flags = 1;
  r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_START, &start, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_START with flags 1 -> EINVAL (errno %d)", err);
  start.flags = 0;
  memcpy(start.gosvw, "snp-client-gosvw", 16);
  long before = snp_guest_count(NULL);
  r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_START, &start, &err, &fw);
  long after = snp_guest_count(NULL);
  STEP(v, r == 0 && fw == 0, "SNP_LAUNCH_START, policy 0x%llx (errno %d, fw 0x%x)", (unsigned long long)POLICY, err, fw);
  STEP(v, before >= 0 && after == before + 1, "SNP_PLATFORM_STATUS guest_count %ld -> %ld", before, after);
  r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_START, &start, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "a second SNP_LAUNCH_START -> EINVAL (errno %d)", err);
  return 0;
}

/* One SNP_LAUNCH_UPDATE; on success the pages it reports done are added to the digest kept
 * here (the page contents hashed from the source, as the owner hashes its image). */
static int update(struct vm *v, struct kvm_sev_snp_launch_update *u, int *err, uint32_t *fw) {
  const struct kvm_sev_snp_launch_update before = *u;
  int r = sev_op(v->fd, KVM_SEV_SNP_LAUNCH_UPDATE, u, err, fw);
  if (r == 0) {
    for (uint64_t gfn = before.gfn_start; gfn < u->gfn_start; gfn++) {
      const uint8_t *src = (const uint8_t *)(uintptr_t)(before.uaddr + (gfn - before.gfn_start) * PAGE);
      measure(v->ld, before.type, gfn * PAGE, before.type == KVM_SEV_SNP_PAGE_TYPE_NORMAL ? src : NULL);
    }
  }
  return r;
}

static struct kvm_sev_snp_launch_update upd(uint64_t gfn, const void *src, uint64_t pages, uint8_t type) {
  struct kvm_sev_snp_launch_update u;
  memset(&u, 0, sizeof u);
  u.gfn_start = gfn;
  u.uaddr = uptr(src);
  u.len = pages * PAGE;
  u.type = type;
  return u;
}

/* The guest image and the whole LAUNCH_UPDATE sequence, the same on every VM. */
static void launch_pages(struct vm *v) {
  int err, r;
  uint32_t fw;
  uint8_t *m = v->mem;
  memcpy(m + CODE_GFN * PAGE, guest_code, sizeof guest_code);
  for (unsigned i = 0; i < PAGE; i++) {
    m[DATA_GFN * PAGE + i] = (uint8_t)(i * 7 + 1);
    m[(DATA_GFN + 1) * PAGE + i] = (uint8_t)(i ^ 0x3c);
    m[UNMEASURED_GFN * PAGE + i] = (uint8_t)(i * 13);
    for (unsigned k = 0; k < 4; k++) m[(EDGE_GFN + k) * PAGE + i] = (uint8_t)(i + 31 * k);
  }
  m[DATA_GFN * PAGE] = GUEST_BYTE;

  /* Arguments KVM refuses before anything is done. */
  struct kvm_sev_snp_launch_update u = upd(CODE_GFN, m + CODE_GFN * PAGE, 1, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  u.flags = 1;
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE with flags 1 -> EINVAL (errno %d)", err);
  u = upd(CODE_GFN, m + CODE_GFN * PAGE, 1, PAGE_TYPE_VMSA);
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE of type 2 (VMSA) -> EINVAL (errno %d)", err);
  u = upd(CODE_GFN, m + CODE_GFN * PAGE, 0, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE with len 0 -> EINVAL (errno %d)", err);
  u.len = PAGE / 2;
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE with len 0x800 -> EINVAL (errno %d)", err);
  u = upd(CODE_GFN, m + CODE_GFN * PAGE + 0x800, 1, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE from an unaligned source -> EINVAL (errno %d)", err);
  u = upd(MEM_SIZE / PAGE + 0x100, m, 1, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EINVAL, "SNP_LAUNCH_UPDATE at a gfn with no guest_memfd slot -> EINVAL (errno %d)", err);

  /* NORMAL: code and data, three pages in one call. */
  u = upd(CODE_GFN, m + CODE_GFN * PAGE, NORMAL_PAGES, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  r = update(v, &u, &err, &fw);
  STEP(v, r == 0 && u.gfn_start == CODE_GFN + NORMAL_PAGES && u.len == 0 && u.uaddr == uptr(m + (CODE_GFN + NORMAL_PAGES) * PAGE),
       "NORMAL gfn 0x%x x%d -> gfn_start 0x%llx len 0x%llx uaddr +0x%llx (errno %d fw 0x%x)", CODE_GFN, NORMAL_PAGES,
       (unsigned long long)u.gfn_start, (unsigned long long)u.len, (unsigned long long)(u.uaddr - uptr(m + CODE_GFN * PAGE)), err,
       fw);

  /* ZERO: no source (uaddr is ignored, and not advanced). */
  u = upd(ZERO_GFN, (void *)0x123, ZERO_PAGES, KVM_SEV_SNP_PAGE_TYPE_ZERO);
  r = update(v, &u, &err, &fw);
  STEP(v, r == 0 && u.gfn_start == ZERO_GFN + ZERO_PAGES && u.len == 0 && u.uaddr == 0x123,
       "ZERO gfn 0x%x x%d, uaddr 0x123 unused -> gfn_start 0x%llx len 0x%llx uaddr 0x%llx (errno %d fw 0x%x)", ZERO_GFN,
       ZERO_PAGES, (unsigned long long)u.gfn_start, (unsigned long long)u.len, (unsigned long long)u.uaddr, err, fw);

  u = upd(UNMEASURED_GFN, m + UNMEASURED_GFN * PAGE, 1, KVM_SEV_SNP_PAGE_TYPE_UNMEASURED);
  r = update(v, &u, &err, &fw);
  STEP(v, r == 0 && u.len == 0, "UNMEASURED gfn 0x%x (errno %d fw 0x%x)", UNMEASURED_GFN, err, fw);
  u = upd(SECRETS_GFN, m + SECRETS_GFN * PAGE, 1, KVM_SEV_SNP_PAGE_TYPE_SECRETS);
  r = update(v, &u, &err, &fw);
  STEP(v, r == 0 && u.len == 0, "SECRETS gfn 0x%x (errno %d fw 0x%x)", SECRETS_GFN, err, fw);

  /* CPUID: first with leaf 1 ECX all ones, which the firmware refuses (INVALID_PARAM) after
   * writing what it accepts into the page, which KVM copies back to the source; then that page. */
  uint8_t *cpuid = m + CPUID_GFN * PAGE;
  int n = build_cpuid_page(cpuid);
  uint8_t *leaf1 = n > 0 ? cpuid_entry(cpuid, 1) : NULL;
  STEP(v, leaf1 != NULL, "CPUID page from KVM_GET_SUPPORTED_CPUID: %d entries, leaf 1 ECX 0x%x", n, leaf1 ? get32(leaf1 + 0x20) : 0);
  if (leaf1) {
    put32(leaf1 + 0x20, 0xffffffffu);
    u = upd(CPUID_GFN, cpuid, 1, KVM_SEV_SNP_PAGE_TYPE_CPUID);
    r = update(v, &u, &err, &fw);
    uint32_t fixed = get32(leaf1 + 0x20);
    STEP(v, r < 0 && err == EIO && fw == FW_INVALID_PARAM && u.gfn_start == CPUID_GFN && u.len == PAGE,
         "CPUID page with leaf 1 ECX 0xffffffff -> EIO, INVALID_PARAM, arguments untouched (errno %d fw 0x%x)", err, fw);
    STEP(v, r < 0 && fixed != 0xffffffffu && get32(cpuid) == (uint32_t)n,
         "the refused CPUID page came back with what the firmware accepts: leaf 1 ECX 0x%x", fixed);
    r = update(v, &u, &err, &fw);
    STEP(v, r == 0 && u.len == 0 && get32(leaf1 + 0x20) == fixed, "the rewritten CPUID page is accepted (errno %d fw 0x%x)", err, fw);
  }

  /* A range that runs from private into shared pages: the private ones are done, the call
   * succeeds with gfn_start/len/uaddr advanced past them; called again, nothing is done: EIO. */
  u = upd(EDGE_GFN, m + EDGE_GFN * PAGE, 4, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  r = update(v, &u, &err, &fw);
  STEP(v, r == 0 && u.gfn_start == 0x100 && u.len == 2 * PAGE && u.uaddr == uptr(m + 0x100 * PAGE),
       "NORMAL gfn 0xfe x4 over the private/shared edge -> partial: gfn_start 0x%llx len 0x%llx uaddr +0x%llx (want 0x100, 0x2000, "
       "+0x2000; errno %d)",
       (unsigned long long)u.gfn_start, (unsigned long long)u.len, (unsigned long long)(u.uaddr - uptr(m + EDGE_GFN * PAGE)), err);
  if (r == 0) {
    struct kvm_sev_snp_launch_update again = u;
    r = update(v, &u, &err, &fw);
    STEP(v, r < 0 && err == EIO && fw == 0 && memcmp(&again, &u, sizeof u) == 0,
         "calling again for the shared rest -> EIO, error 0, arguments untouched (errno %d fw 0x%x)", err, fw);
  }

  /* A source whose third page is unmapped: the first two are launched and the call succeeds
   * with the rest left to do (kvm_gmem_populate stops at the page GUP cannot get); the rest is
   * then EIO with error 0. */
  uint8_t *holed = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (holed != MAP_FAILED) {
    memset(holed, 0x77, 2 * PAGE);
    munmap(holed + 2 * PAGE, PAGE);
    u = upd(FAULT_GFN, holed, 3, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
    r = update(v, &u, &err, &fw);
    STEP(v, r == 0 && u.gfn_start == FAULT_GFN + 2 && u.len == PAGE && u.uaddr == uptr(holed + 2 * PAGE),
         "NORMAL gfn 0x%x x3 from a source with its third page unmapped -> partial: gfn_start 0x%llx len 0x%llx (errno %d)",
         FAULT_GFN, (unsigned long long)u.gfn_start, (unsigned long long)u.len, err);
    r = update(v, &u, &err, &fw);
    STEP(v, r < 0 && err == EIO && fw == 0, "the unmapped source page -> EIO, error 0 (errno %d fw 0x%x)", err, fw);
    munmap(holed, 2 * PAGE);
  }

  /* A page launched already. */
  u = upd(CODE_GFN, m + CODE_GFN * PAGE, 1, KVM_SEV_SNP_PAGE_TYPE_NORMAL);
  r = update(v, &u, &err, &fw);
  STEP(v, r < 0 && err == EIO && fw == 0, "launching gfn 0x%x again -> EIO, error 0 (errno %d fw 0x%x)", CODE_GFN, err, fw);
}

/* vCPU 0 in real mode at CODE_GFN. */
static int vm_vcpu(struct vm *v) {
  v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
  if (v->vcpu < 0) return -1;
  int sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  v->run_size = sz > 0 ? (size_t)sz : 0;
  v->run = sz > 0 ? mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0) : MAP_FAILED;
  if (v->run == MAP_FAILED) {
    v->run = NULL;
    return -1;
  }
  struct kvm_sregs s;
  if (ioctl(v->vcpu, KVM_GET_SREGS, &s)) return -1;
  s.cs.base = 0;
  s.cs.selector = 0;
  s.ds.base = 0;
  s.ds.selector = 0;
  if (ioctl(v->vcpu, KVM_SET_SREGS, &s)) return -1;
  struct kvm_regs r;
  memset(&r, 0, sizeof r);
  r.rip = CODE_GFN * PAGE;
  r.rflags = 2;
  if (ioctl(v->vcpu, KVM_SET_REGS, &r)) return -1;
  memset(&r, 0, sizeof r);
  return ioctl(v->vcpu, KVM_GET_REGS, &r) == 0 && r.rip == CODE_GFN * PAGE ? 0 : -1;
}

/* Closes what a VM holds; the guest context goes with the last reference to the VM, which the
 * guest_memfd holds too. Checked on B: the VM fd closed first, the guest_memfd still open. */
static void vm_close(struct vm *v, int check_gmem_ref) {
  if (v->run) munmap(v->run, v->run_size);
  if (v->vcpu >= 0) close(v->vcpu);
  long before = snp_guest_count(NULL);
  if (v->fd >= 0) close(v->fd);
  long mid = snp_guest_count(NULL);
  if (v->gmem >= 0) close(v->gmem);
  long after = snp_guest_count(NULL);
  if (v->mem && v->mem != MAP_FAILED) munmap(v->mem, MEM_SIZE);
  if (check_gmem_ref) {
    CHECK(mid == before, "%s: VM fd closed, guest_memfd open: the guest lives on (guest_count %ld -> %ld)", v->name, before, mid);
    CHECK(after == before - 1, "%s: guest_memfd closed: the guest is decommissioned (guest_count %ld -> %ld)", v->name, mid, after);
  } else {
    CHECK(after == before - 1, "%s: closed, the guest is decommissioned (guest_count %ld -> %ld)", v->name, before, after);
  }
}

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

int main(void) {
  int fds0 = count_fds();
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  sev_fd = open(getenv("SEV_EMU_DEVICE") ? getenv("SEV_EMU_DEVICE") : "/dev/sev", O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0 || sev_fd < 0) {
    fprintf(stderr, "snp_launch_client: cannot open /dev/kvm or /dev/sev: %s\n", strerror(errno));
    return 2;
  }
  int err;
  uint32_t fw;

  /* 1. What the host offers. */
  int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
  CHECK(types > 0 && (types & (1 << KVM_X86_SNP_VM)), "KVM_CAP_VM_TYPES 0x%x has KVM_X86_SNP_VM (bit 4)", types);
  uint64_t policy_bits = 0, req_certs = ~0ull;
  struct kvm_device_attr attr = {.group = KVM_X86_GRP_SEV, .attr = KVM_X86_SNP_POLICY_BITS, .addr = uptr(&policy_bits)};
  int r = ioctl(kvm_fd, KVM_GET_DEVICE_ATTR, &attr);
  CHECK(r == 0 && policy_bits && (policy_bits & (1ull << 17)) && (policy_bits & POLICY) == POLICY,
        "KVM_X86_SNP_POLICY_BITS = 0x%llx (non-zero, bits 16 and 17)", (unsigned long long)policy_bits);
  attr.attr = KVM_X86_SEV_SNP_REQ_CERTS;
  attr.addr = uptr(&req_certs);
  r = ioctl(kvm_fd, KVM_GET_DEVICE_ATTR, &attr);
  CHECK(r == 0 && req_certs == 1, "KVM_X86_SEV_SNP_REQ_CERTS = %llu (KVM_SEV_SNP_ENABLE_REQ_CERTS offered)", (unsigned long long)req_certs);
  struct snp_platform_status_7_2 st;
  long guests0 = snp_guest_count(&st);
  CHECK(guests0 == 0, "SNP_PLATFORM_STATUS: API %u.%u build %u, state %u, RMP initialized %u, guest_count %ld", st.api_major,
        st.api_minor, st.build_id, st.state, st.rmp_flags & 1, guests0);

  EVP_PKEY *id_key = EVP_EC_gen("P-384"), *author_key = EVP_EC_gen("P-384");
  CHECK(id_key && author_key, "fresh P-384 ID and author keys");
  uint8_t *block = calloc(1, KVM_SEV_SNP_ID_BLOCK_SIZE), *auth = calloc(1, KVM_SEV_SNP_ID_AUTH_SIZE);
  char hx[2 * DIGEST + 1];

  /* 2-5. VM A: the launch in full, one vCPU; the page chain alone is not its digest. */
  struct vm a = {.name = "A", .verbose = 1, .fd = -1, .gmem = -1, .vcpu = -1};
  if (vm_create(&a) == 0) {
    vm_start(&a, policy_bits);
    launch_pages(&a);
    CHECK(vm_vcpu(&a) == 0, "A: vCPU 0 in real mode at 0x%x (registers set and read back)", CODE_GFN * PAGE);
    hex(a.ld, DIGEST, hx);
    printf("# page digest computed here: %s\n", hx);
    make_id(a.ld, POLICY, id_key, NULL, block, auth);
    r = finish(&a, block, auth, 0, &err, &fw);
    CHECK(r < 0 && err == EIO && fw == FW_BAD_MEASUREMENT,
          "A: FINISH with an ID block of the pages' digest -> EIO, BAD_MEASUREMENT: the VMSA is measured too (errno %d fw 0x%x)", err, fw);
    struct kvm_regs regs;
    r = ioctl(a.vcpu, KVM_GET_REGS, &regs);
    CHECK(r < 0 && errno == EINVAL, "A: the measured vCPU's state is protected: KVM_GET_REGS -> EINVAL");
    r = finish(&a, NULL, NULL, 0, &err, &fw);
    CHECK(r < 0 && err == EINVAL, "A: FINISH again, the VMSA already encrypted -> EINVAL (errno %d)", err);
  }

  /* VM B: the same launch, no vCPU, so no VMSA page: its digest is the chain computed here. */
  struct vm b = {.name = "B", .verbose = 0, .fd = -1, .gmem = -1, .vcpu = -1};
  if (vm_create(&b) == 0) {
    vm_start(&b, policy_bits);
    launch_pages(&b);
    CHECK(memcmp(a.ld, b.ld, DIGEST) == 0, "B: the same launch sequence, every call answered as on A");
    make_id(b.ld, POLICY, id_key, author_key, block, auth);
    auth[0x40] ^= 1;
    r = finish(&b, block, auth, 1, &err, &fw);
    CHECK(r < 0 && err == EIO && fw == FW_BAD_SIGNATURE, "B: FINISH with a broken ID block signature -> EIO, BAD_SIGNATURE (errno %d fw 0x%x)",
          err, fw);
    uint8_t off[DIGEST];
    memcpy(off, b.ld, DIGEST);
    off[DIGEST - 1] ^= 0x01;
    make_id(off, POLICY, id_key, author_key, block, auth);
    r = finish(&b, block, auth, 1, &err, &fw);
    CHECK(r < 0 && err == EIO && fw == FW_BAD_MEASUREMENT, "B: FINISH with the digest one bit off -> EIO, BAD_MEASUREMENT (errno %d fw 0x%x)",
          err, fw);
    make_id(b.ld, POLICY & ~(1ull << 16), id_key, author_key, block, auth);
    r = finish(&b, block, auth, 1, &err, &fw);
    CHECK(r < 0 && err == EIO && fw == FW_POLICY_FAILURE,
          "B: FINISH with an ID block for policy 0x20000 (the guest's is 0x30000) -> EIO, POLICY_FAILURE (errno %d fw 0x%x)", err, fw);
    make_id(b.ld, POLICY, id_key, author_key, block, auth);
    r = finish(&b, block, auth, 1, &err, &fw);
    CHECK(r == 0 && fw == 0, "B: FINISH with a signed ID block (and author key) of the digest computed here (errno %d fw 0x%x)", err, fw);
  }

  /* VM C: the same launch, one vCPU, FINISH without an ID block; the guest runs. */
  struct vm c = {.name = "C", .verbose = 0, .fd = -1, .gmem = -1, .vcpu = -1};
  if (vm_create(&c) == 0) {
    vm_start(&c, policy_bits);
    launch_pages(&c);
    CHECK(vm_vcpu(&c) == 0, "C: vCPU 0 in real mode");
    r = finish(&c, NULL, NULL, 0, &err, &fw);
    CHECK(r == 0 && fw == 0, "C: FINISH without an ID block (errno %d fw 0x%x)", err, fw);
    long g = snp_guest_count(NULL);
    CHECK(g == guests0 + 3, "SNP_PLATFORM_STATUS guest_count %ld with A, B and C", g);
    r = c.run ? ioctl(c.vcpu, KVM_RUN, 0) : -1;
    int term = r == 0 && c.run->exit_reason == KVM_EXIT_SYSTEM_EVENT && c.run->system_event.type == KVM_SYSTEM_EVENT_SEV_TERM &&
               c.run->system_event.ndata >= 1 && (c.run->system_event.data[0] & 0xfff) == 0x100 &&
               ((c.run->system_event.data[0] >> 16) & 0xff) == GUEST_BYTE;
    CHECK(term, "C: the guest runs, reads its private data page and sends 0x%02x in a GHCB termination request (KVM_RUN %d, exit %u, "
          "event type %u, data 0x%llx)",
          GUEST_BYTE, r, c.run ? c.run->exit_reason : 0, c.run ? c.run->system_event.type : 0,
          c.run ? (unsigned long long)c.run->system_event.data[0] : 0ull);
  }

  /* 6. Closing gives the guest contexts back. */
  vm_close(&a, 0);
  vm_close(&b, 1);
  vm_close(&c, 0);
  long g = snp_guest_count(NULL);
  CHECK(g == guests0, "SNP_PLATFORM_STATUS guest_count back to %ld (%ld)", guests0, g);
  EVP_PKEY_free(id_key);
  EVP_PKEY_free(author_key);
  free(block);
  free(auth);
  close(kvm_fd);
  close(sev_fd);
  CHECK(count_fds() == fds0, "no fd leaked (%d before, %d after)", fds0, count_fds());
  return failures ? 1 : 0;
}
