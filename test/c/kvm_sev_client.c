/*
 * kvm_sev_client: launches a tiny real-mode guest as SEV (and SEV-ES when the host offers
 * it) through KVM's SEV ioctls, as a VMM would, then runs it. Built against the system's
 * <linux/kvm.h> (6.1 headers: the KVM_SEV_INIT2 / VM-type parts are defined here) and
 * OpenSSL for the guest owner's side (GODH key, session blob, measurement, secret).
 *
 *   cc -O2 -o kvm_sev_client test/c/kvm_sev_client.c -lcrypto
 *   LD_PRELOAD=build/Release/sevemu.so SEV_EMU_STATE=$(mktemp -d) ./kvm_sev_client [MODE]
 *
 * On the host's KVM the irq checks depend on its module (kvm_amd, kvm_intel, kvm_pvm):
 * SEV_TEST_HOST_KVM names it (the test passes what `sev-emu info --json` says), else /sys/module.
 * MODE: all (default) | launch | fuzz | memlock (expects ENOMEM: run without CAP_IPC_LOCK
 * and with a small RLIMIT_MEMLOCK) | bench MIB (LAUNCH_UPDATE_DATA throughput, prints MiB/s)
 * Prints "ok - ..." / "not ok - ..." lines; exit status 1 when a check failed.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/psp-sev.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

/* Newer UAPI than the 6.1 headers carry. */
#define X86_SEV_VM 2
#define X86_SEV_ES_VM 3
#define CAP_VM_TYPES 235
#define SEV_INIT2 22
#define GRP_SEV 1
struct sev_init2 {
  uint64_t vmsa_features;
  uint32_t flags;
  uint16_t ghcb_version;
  uint16_t pad1;
  uint32_t pad2[8];
};


static int sev_fd = -1;

/* KVM_MEMORY_ENCRYPT_OP; returns the ioctl result, *err errno, *fw the firmware error. */
static int sev_op(int vm, uint32_t id, void *data, int *err, uint32_t *fw) {
  struct kvm_sev_cmd cmd = {.id = id, .data = (uint64_t)(uintptr_t)data, .sev_fd = (uint32_t)sev_fd};
  cmd.error = 0xdeadbeef;
  int r = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd);
  *err = r < 0 ? errno : 0;
  *fw = cmd.error;
  return r;
}

static int platform_cmd(uint32_t cmd, void *data, uint32_t *fw) {
  struct sev_issue_cmd c = {.cmd = cmd, .data = (uint64_t)(uintptr_t)data};
  int r = ioctl(sev_fd, SEV_ISSUE_CMD, &c);
  *fw = c.error;
  return r;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void hmac(const uint8_t *key, size_t klen, const uint8_t *d, size_t n, uint8_t out[32]) {
  unsigned len = 32;
  HMAC(EVP_sha256(), key, (int)klen, d, n, out, &len);
}

static void kdf(const uint8_t *key, size_t klen, const char *label, const uint8_t *ctx, size_t clen,
                uint8_t out[16]) {
  uint8_t buf[256], mac[32];
  size_t n = 0, ll = strlen(label);
  put32(buf, 1);
  n = 4;
  memcpy(buf + n, label, ll);
  n += ll;
  buf[n++] = 0;
  if (clen) memcpy(buf + n, ctx, clen);  /* ctx may be NULL when empty: memcpy's pointers may not */
  n += clen;
  put32(buf + n, 128);
  n += 4;
  hmac(key, klen, buf, n, mac);
  memcpy(out, mac, 16);
}

static void aes_ctr(const uint8_t key[16], const uint8_t iv[16], const uint8_t *in, int n, uint8_t *out) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int a = 0, b = 0;
  EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv);
  EVP_EncryptUpdate(c, out, &a, in, n);
  EVP_EncryptFinal_ex(c, out + a, &b);
  EVP_CIPHER_CTX_free(c);
}

static void reverse(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n / 2; i++) {
    uint8_t t = p[i];
    p[i] = p[n - 1 - i];
    p[n - 1 - i] = t;
  }
}

/* The guest owner's LAUNCH_START inputs: GODH certificate and session blob for `policy`. */
struct owner {
  uint8_t godh[2084], session[128], tek[16], tik[16];
};

static int make_owner(uint32_t policy, struct owner *o) {
  uint8_t pdh[2084], chain[3 * 2084];
  struct sev_user_data_pdh_cert_export ex = {.pdh_cert_address = (uint64_t)(uintptr_t)pdh,
                                              .pdh_cert_len = sizeof pdh,
                                              .cert_chain_address = (uint64_t)(uintptr_t)chain,
                                              .cert_chain_len = sizeof chain};
  uint32_t fw;
  if (platform_cmd(SEV_PDH_CERT_EXPORT, &ex, &fw) != 0) return -1;
  /* PDH public point from the SEV certificate (little-endian coordinates at 0x14 / 0x5C). */
  uint8_t pt[97] = {4};
  memcpy(pt + 1, pdh + 0x14, 48);
  memcpy(pt + 49, pdh + 0x5C, 48);
  reverse(pt + 1, 48);
  reverse(pt + 49, 48);
  EVP_PKEY *godh = EVP_EC_gen("P-384");
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0),
                         OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt),
                         OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX *fctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY *peer = NULL;
  EVP_PKEY_fromdata_init(fctx);
  EVP_PKEY_fromdata(fctx, &peer, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(fctx);
  uint8_t z[48];
  size_t zl = sizeof z;
  EVP_PKEY_CTX *d = EVP_PKEY_CTX_new(godh, NULL);
  int ok = peer && EVP_PKEY_derive_init(d) == 1 && EVP_PKEY_derive_set_peer(d, peer) == 1 &&
           EVP_PKEY_derive(d, z, &zl) == 1;
  EVP_PKEY_CTX_free(d);
  if (!ok) return -1;
  /* GODH certificate: version 1, usage PDH, ECDH-SHA256, its public point. */
  memset(o->godh, 0, sizeof o->godh);
  put32(o->godh, 1);
  put32(o->godh + 8, 0x1003);
  put32(o->godh + 12, 0x3);
  put32(o->godh + 0x10, 2);
  uint8_t pub[97];
  size_t pl = sizeof pub;
  EVP_PKEY_get_octet_string_param(godh, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pl);
  memcpy(o->godh + 0x14, pub + 1, 48);
  memcpy(o->godh + 0x5C, pub + 49, 48);
  reverse(o->godh + 0x14, 48);
  reverse(o->godh + 0x5C, 48);
  put32(o->godh + 0x414, 0x1000);
  put32(o->godh + 0x61C, 0x1000);
  EVP_PKEY_free(godh);
  EVP_PKEY_free(peer);
  /* Session: nonce ‖ wrap_tk ‖ wrap_iv ‖ wrap_mac ‖ policy_mac. */
  uint8_t nonce[16], master[16], kek[16], kik[16], tk[32], iv[16], pol[4];
  RAND_bytes(nonce, 16);
  RAND_bytes(iv, 16);
  RAND_bytes(o->tek, 16);
  RAND_bytes(o->tik, 16);
  kdf(z, 48, "sev-master-secret", nonce, 16, master);
  kdf(master, 16, "sev-kek", NULL, 0, kek);
  kdf(master, 16, "sev-kik", NULL, 0, kik);
  memcpy(tk, o->tek, 16);
  memcpy(tk + 16, o->tik, 16);
  memcpy(o->session, nonce, 16);
  aes_ctr(kek, iv, tk, 32, o->session + 16);
  memcpy(o->session + 48, iv, 16);
  hmac(kik, 16, o->session + 16, 32, o->session + 64);
  put32(pol, policy);
  hmac(o->tik, 16, pol, 4, o->session + 96);
  return 0;
}

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static uint32_t guest_count(void) {
  struct sev_user_data_status st;
  uint32_t fw;
  memset(&st, 0, sizeof st);
  platform_cmd(SEV_PLATFORM_STATUS, &st, &fw);
  return st.guest_count;
}

#define MEM_SIZE (2u << 20)
#define CODE_GPA 0x1000
#define SECRET_GPA 0x2000

struct vm {
  int fd, vcpu;
  uint8_t *mem;
  struct kvm_run *run;
};

static int create_vm(int kvm, unsigned long type, struct vm *v) {
  v->fd = ioctl(kvm, KVM_CREATE_VM, type);
  if (v->fd < 0) return -1;
  v->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct kvm_userspace_memory_region r = {.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
                                          .userspace_addr = (uint64_t)(uintptr_t)v->mem};
  return ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r);
}

static int create_vcpu(int kvm, struct vm *v) {
  v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
  if (v->vcpu < 0) return -1;
  int sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  v->run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
  struct kvm_sregs s;
  ioctl(v->vcpu, KVM_GET_SREGS, &s);
  s.cs.base = 0;
  s.cs.selector = 0;
  s.ds.base = 0;
  s.ds.selector = 0;
  ioctl(v->vcpu, KVM_SET_SREGS, &s);
  struct kvm_regs r;
  memset(&r, 0, sizeof r);
  r.rip = CODE_GPA;
  r.rflags = 2;
  return ioctl(v->vcpu, KVM_SET_REGS, &r);
}

static void destroy_vm(struct vm *v) {
  if (v->vcpu >= 0) close(v->vcpu);
  close(v->fd);
  munmap(v->mem, MEM_SIZE);
}

/* The whole launch: INIT(2), START, UPDATE_DATA, [UPDATE_VMSA], MEASURE, SECRET, FINISH, run. */

/* Whether [addr, addr+len) lies on consecutive physical frames (/proc/self/pagemap; root sees
 * PFNs), as the kernel's get_num_contig_pages decides for LAUNCH_SECRET. */
static int frames_consecutive(uint64_t addr, uint64_t len) {
  const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return 0;
  int ok = 1;
  uint64_t prev = 0;
  for (uint64_t p = addr / page; p <= (addr + len - 1) / page && ok; p++) {
    uint64_t e = 0;
    if (pread(fd, &e, sizeof e, (off_t)(p * sizeof e)) != (ssize_t)sizeof e) ok = 0;
    uint64_t pfn = e & ((1ULL << 55) - 1);
    if (!(e >> 63) || pfn == 0 || (p != addr / page && pfn != prev + 1)) ok = 0;
    prev = pfn;
  }
  close(fd);
  return ok;
}

static void launch(int kvm, int es, int legacy_init) {
  const char *name = es ? (legacy_init ? "SEV-ES (ES_INIT)" : "SEV-ES") : (legacy_init ? "SEV (INIT)" : "SEV");
  struct vm v = {.vcpu = -1};
  int err;
  uint32_t fw;
  unsigned long type = legacy_init ? 0 : (es ? X86_SEV_ES_VM : X86_SEV_VM);
  CHECK(create_vm(kvm, type, &v) == 0, "%s: create VM type %lu + memory slot", name, type);
  if (legacy_init) {
    CHECK(sev_op(v.fd, es ? KVM_SEV_ES_INIT : KVM_SEV_INIT, NULL, &err, &fw) == 0, "%s: INIT", name);
  } else {
    struct sev_init2 init = {0};
    CHECK(sev_op(v.fd, SEV_INIT2, &init, &err, &fw) == 0, "%s: INIT2", name);
    CHECK(sev_op(v.fd, SEV_INIT2, &init, &err, &fw) < 0 && err == EINVAL, "%s: second INIT2 is EINVAL", name);
  }
  CHECK(create_vcpu(kvm, &v) == 0, "%s: vCPU with real-mode registers", name);

  /* SEV guest: mov al,[SECRET_GPA]; out 0x10,al; hlt. An SEV-ES guest cannot use OUT without a
   * #VC handler: it hands the byte to the host in a GHCB MSR-protocol termination request
   * (reason code = the byte): movzx eax,byte [SECRET_GPA]; shl eax,16; or eax,0x100;
   * xor edx,edx; mov ecx,0xC0010130; wrmsr; vmgexit; hlt. */
  static const uint8_t code[] = {0xA0, SECRET_GPA & 0xff, SECRET_GPA >> 8, 0xE6, 0x10, 0xF4};
  static const uint8_t es_code[] = {0x66, 0x0F, 0xB6, 0x06, SECRET_GPA & 0xff, SECRET_GPA >> 8, 0x66, 0xC1, 0xE0, 0x10,
                                    0x66, 0x0D, 0x00, 0x01, 0x00, 0x00, 0x66, 0x31, 0xD2, 0x66, 0xB9, 0x30, 0x01, 0x01,
                                    0xC0, 0x0F, 0x30, 0xF3, 0x0F, 0x01, 0xD9, 0xF4};
  if (es)
    memcpy(v.mem + CODE_GPA, es_code, sizeof es_code);
  else
    memcpy(v.mem + CODE_GPA, code, sizeof code);
  static uint8_t plain[4096];
  memcpy(plain, v.mem + CODE_GPA, sizeof plain); /* the machine may encrypt the page in place */

  uint32_t policy = es ? 0x4 : 0x0;
  struct owner o;
  CHECK(make_owner(policy, &o) == 0, "%s: guest owner session from the exported PDH", name);
  struct kvm_sev_launch_start start = {.policy = policy,
                                       .dh_uaddr = (uint64_t)(uintptr_t)o.godh, .dh_len = sizeof o.godh,
                                       .session_uaddr = (uint64_t)(uintptr_t)o.session, .session_len = 128};
  int r = sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw);
  CHECK(r == 0 && fw == 0 && start.handle != 0, "%s: LAUNCH_START -> handle %u (errno %d fw %u)", name, start.handle, err, fw);
  CHECK(guest_count() >= 1, "%s: PLATFORM_STATUS counts the guest (WORKING)", name);

  struct kvm_sev_launch_update_data upd = {.uaddr = (uint64_t)(uintptr_t)(v.mem + CODE_GPA), .len = 4096};
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) == 0, "%s: LAUNCH_UPDATE_DATA", name);
  /* SEV hardware (and the emulator's software KVM) leaves ciphertext in the host's view; the
   * guest's view, read back with DBG_DECRYPT (the policy allows debugging), is the image. */
  int encrypted = memcmp(v.mem + CODE_GPA, plain, sizeof plain) != 0;
  uint8_t back[64];
  struct kvm_sev_dbg dbg = {.src_uaddr = (uint64_t)(uintptr_t)(v.mem + CODE_GPA), .dst_uaddr = (uint64_t)(uintptr_t)back,
                            .len = sizeof back};
  CHECK(sev_op(v.fd, KVM_SEV_DBG_DECRYPT, &dbg, &err, &fw) == 0 && memcmp(back, plain, sizeof back) == 0,
        "%s: DBG_DECRYPT of the updated page = the image (host view %s)", name, encrypted ? "ciphertext" : "plaintext");
  if (es) {
    CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw) == 0, "%s: LAUNCH_UPDATE_VMSA", name);
    struct kvm_regs regs;
    int rr = ioctl(v.vcpu, KVM_GET_REGS, &regs);
    if (legacy_init)
      CHECK(rr == 0, "%s: KVM_GET_REGS still allowed on the default VM type", name);
    else
      CHECK(rr < 0 && errno == EINVAL, "%s: KVM_GET_REGS refused on protected state", name);
  }
  struct kvm_sev_launch_measure m = {0};
  r = sev_op(v.fd, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw);
  CHECK(r < 0 && err == EIO && fw == SEV_RET_INVALID_LEN && m.len == 48, "%s: LAUNCH_MEASURE length query -> 48", name);
  uint8_t blob[64];
  m.uaddr = (uint64_t)(uintptr_t)blob;
  m.len = sizeof blob;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw) == 0 && m.len == 48, "%s: LAUNCH_MEASURE", name);

  struct sev_user_data_status st;
  memset(&st, 0, sizeof st);
  platform_cmd(SEV_PLATFORM_STATUS, &st, &fw);
  uint8_t digest[32], expect[32];
  if (!es) {
    SHA256(plain, 4096, digest);
  } else {
    /* The VMSA is not known here: take the digest from the attestation report. */
    uint8_t rep[0xD0];
    struct kvm_sev_attestation_report ar = {.uaddr = (uint64_t)(uintptr_t)rep, .len = sizeof rep};
    CHECK(sev_op(v.fd, KVM_SEV_GET_ATTESTATION_REPORT, &ar, &err, &fw) == 0, "%s: attestation report", name);
    memcpy(digest, rep + 0x10, 32);
  }
  uint8_t in[4 + 4 + 32 + 16] = {0x04, st.api_major, st.api_minor, st.build};
  put32(in + 4, policy);
  memcpy(in + 8, digest, 32);
  memcpy(in + 40, blob + 32, 16);
  hmac(o.tik, 16, in, sizeof in, expect);
  CHECK(memcmp(expect, blob, 32) == 0, "%s: measurement = HMAC(TIK, 04 api build policy digest mnonce)", name);

  /* Secret: 16 bytes whose first byte the guest sends to port 0x10. */
  uint8_t secret[16], ct[16], hdr[52], iv[16];
  RAND_bytes(secret, 16);
  secret[0] |= 1;
  RAND_bytes(iv, 16);
  aes_ctr(o.tek, iv, secret, 16, ct);
  put32(hdr, 0);
  memcpy(hdr + 4, iv, 16);
  uint8_t macin[1 + 4 + 16 + 4 + 4 + 16 + 32];
  macin[0] = 1;
  put32(macin + 1, 0);
  memcpy(macin + 5, iv, 16);
  put32(macin + 21, 16);
  put32(macin + 25, 16);
  memcpy(macin + 29, ct, 16);
  memcpy(macin + 45, blob, 32);
  hmac(o.tik, 16, macin, sizeof macin, hdr + 20);
  struct kvm_sev_launch_secret sec = {.hdr_uaddr = (uint64_t)(uintptr_t)hdr, .hdr_len = 52,
                                      .guest_uaddr = (uint64_t)(uintptr_t)(v.mem + SECRET_GPA), .guest_len = 16,
                                      .trans_uaddr = (uint64_t)(uintptr_t)ct, .trans_len = 16};
  /* A target spanning two pages that are not physically consecutive (anonymous memory). */
  struct kvm_sev_launch_secret split = sec;
  split.guest_uaddr = (uint64_t)(uintptr_t)(v.mem + 0x4000 - 16);
  split.guest_len = 32;
  r = sev_op(v.fd, KVM_SEV_LAUNCH_SECRET, &split, &err, &fw);
  /* Anonymous pages are physically scattered as a rule, but two neighbours can happen to be
   * consecutive frames (a huge page, or chance): then the kernel goes on to the firmware. */
  if (!frames_consecutive(split.guest_uaddr, split.guest_len))
    CHECK(r < 0 && err == EINVAL, "%s: LAUNCH_SECRET across non-contiguous pages -> EINVAL (errno %d)", name, err);
  else
    CHECK(!(r < 0 && err == EINVAL), "%s: LAUNCH_SECRET across two pages that happen to be consecutive frames reaches the firmware (errno %d)", name, err);
  hdr[30] ^= 1;
  r = sev_op(v.fd, KVM_SEV_LAUNCH_SECRET, &sec, &err, &fw);
  CHECK(r < 0 && err == EIO && fw == SEV_RET_BAD_MEASUREMENT, "%s: LAUNCH_SECRET with a bad MAC -> BAD_MEASUREMENT", name);
  hdr[30] ^= 1;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_SECRET, &sec, &err, &fw) == 0, "%s: LAUNCH_SECRET (errno %d fw %u)", name, err, fw);
  uint8_t got[16];
  dbg = (struct kvm_sev_dbg){.src_uaddr = (uint64_t)(uintptr_t)(v.mem + SECRET_GPA), .dst_uaddr = (uint64_t)(uintptr_t)got,
                             .len = 16};
  CHECK(sev_op(v.fd, KVM_SEV_DBG_DECRYPT, &dbg, &err, &fw) == 0 && memcmp(got, secret, 16) == 0,
        "%s: secret decrypted into guest memory", name);
  CHECK((memcmp(v.mem + SECRET_GPA, secret, 16) != 0) == encrypted, "%s: the host sees the secret %s", name,
        encrypted ? "encrypted" : "in clear (memory not encrypted here)");
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_FINISH, NULL, &err, &fw) == 0, "%s: LAUNCH_FINISH", name);
  struct kvm_sev_guest_status gs = {0};
  CHECK(sev_op(v.fd, KVM_SEV_GUEST_STATUS, &gs, &err, &fw) == 0 && gs.state == 3 && gs.handle == start.handle &&
            gs.policy == policy, "%s: GUEST_STATUS RUNNING", name);

  /* Under the emulator with the host's KVM, an "SEV-ES" guest is a plain VM: no GHCB to talk to. */
  const char *(*backend)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "sevemu_kvm_backend");
  if (es && backend && backend() && strcmp(backend(), "host") == 0) {
    printf("ok - %s: run # SKIP the host KVM is not an SEV-ES machine\n", name);
  } else if (es) {
    r = ioctl(v.vcpu, KVM_RUN, 0);
    int term_ok = r == 0 && v.run->exit_reason == KVM_EXIT_SYSTEM_EVENT && v.run->system_event.type == 6 &&
                  ((v.run->system_event.data[0] >> 16) & 0xff) == secret[0];
    CHECK(term_ok, "%s: guest runs and hands out the secret byte 0x%02x in a GHCB termination request", name, secret[0]);
  } else {
    r = ioctl(v.vcpu, KVM_RUN, 0);
    int io_ok = r == 0 && v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == 0x10 &&
                ((uint8_t *)v.run)[v.run->io.data_offset] == secret[0];
    CHECK(io_ok, "%s: guest runs and OUTs the secret byte 0x%02x to port 0x10", name, secret[0]);
    r = ioctl(v.vcpu, KVM_RUN, 0);
    CHECK(r == 0 && v.run->exit_reason == KVM_EXIT_HLT, "%s: guest halts", name);
  }
  uint32_t before = guest_count();
  destroy_vm(&v);
  CHECK(guest_count() == before - 1, "%s: closing the VM decommissions the guest", name);
}

/*
 * Which KVM answers /dev/kvm: "soft" (the emulator's software KVM), or the host's vendor module
 * (kvm_amd, kvm_intel, kvm_pvm), where their interrupt handling differs. The test passes the
 * module in SEV_TEST_HOST_KVM, from `sev-emu info --json` run outside the emulator (inside it,
 * /proc/cpuinfo and CPUID are the emulated EPYC's). Run by hand without it, /sys/module says:
 * the emulator answers only kvm_amd's SEV parameter files there, not the module directories.
 */
static const char *kvm_impl(void) {
  const char *(*backend)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "sevemu_kvm_backend");
  if (backend && backend() && strcmp(backend(), "soft") == 0) return "soft";
  const char *m = getenv("SEV_TEST_HOST_KVM");
  if (m && *m) return m;
  static const char *const modules[] = {"kvm_amd", "kvm_intel", "kvm_pvm"};
  const char *found = "unknown";
  int n = 0;
  for (unsigned k = 0; k < sizeof modules / sizeof modules[0]; k++) {
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/sys/module/%s", modules[k]);
    if (stat(path, &st) == 0) {
      found = modules[k];
      n++;
    }
  }
  return n == 1 ? found : "unknown";
}

/*
 * The userspace irqchip protocol, as QEMU drives it without an in-kernel APIC: with IF clear and
 * request_interrupt_window set, KVM_RUN returns KVM_EXIT_IRQ_WINDOW_OPEN when the guest opens the
 * window (after the instruction following STI), with ready_for_interrupt_injection set; then
 * KVM_INTERRUPT queues a vector, delivered at the next entry; 256 and up: EINVAL.
 * Per KVM:
 * - a second KVM_INTERRUPT before delivery: the kernel (x86.c kvm_vcpu_ioctl_interrupt, no
 *   in-kernel irqchip) queues it over the first (kvm_queue_interrupt) and returns 0 — EEXIST is
 *   only for the split irqchip's EXTINT; the software KVM does the same;
 * - kvm_pvm runs real-mode code in its instruction emulator, in batches, and makes no window
 *   exit there: the run ends at the guest's next exit to the VMM (the OUT after sti; nop), which
 *   reports the open window (if_flag, ready_for_interrupt_injection). Measured on kvm_pvm.
 */
static void irq(int kvm) {
  const char *impl = kvm_impl();
  const int soft = !strcmp(impl, "soft"), pvm = !strcmp(impl, "kvm_pvm");
  if (!soft && !pvm && strcmp(impl, "kvm_amd") != 0 && strcmp(impl, "kvm_intel") != 0) {
    CHECK(0, "irq: no expectations for the host's KVM module '%s' (SEV_TEST_HOST_KVM: kvm_amd, kvm_intel or kvm_pvm)", impl);
    return;
  }
  struct vm v = {.vcpu = -1};
  if (create_vm(kvm, 0, &v) < 0 || create_vcpu(kvm, &v) < 0) {
    CHECK(0, "irq: VM and vCPU (%s)", strerror(errno));
    return;
  }
  /* cli; mov cx, 3; loop $; sti; nop; out 0x10, al; hlt. Vector 0x20 -> 0:0x1100: out 0x66, al; hlt;
   * vector 0x21 -> 0:0x1200: out 0x67, al; hlt */
  static const uint8_t code[] = {0xfa, 0xb9, 0x03, 0x00, 0xe2, 0xfe, 0xfb, 0x90, 0xe6, 0x10, 0xf4};
  static const uint8_t handler20[] = {0xe6, 0x66, 0xf4}, handler21[] = {0xe6, 0x67, 0xf4};
  memcpy(v.mem + CODE_GPA, code, sizeof code);
  memcpy(v.mem + 0x1100, handler20, sizeof handler20);
  memcpy(v.mem + 0x1200, handler21, sizeof handler21);
  put32(v.mem + 0x20 * 4, 0x1100);
  put32(v.mem + 0x21 * 4, 0x1200);
  struct kvm_regs r;
  ioctl(v.vcpu, KVM_GET_REGS, &r);
  r.rsp = 0x8000;
  ioctl(v.vcpu, KVM_SET_REGS, &r);
  v.run->request_interrupt_window = 1;
  int rc = ioctl(v.vcpu, KVM_RUN, 0);
  ioctl(v.vcpu, KVM_GET_REGS, &r);
  if (!pvm)
    CHECK(rc == 0 && v.run->exit_reason == KVM_EXIT_IRQ_WINDOW_OPEN && r.rip == 0x1008 && v.run->if_flag &&
              v.run->ready_for_interrupt_injection,
          "%s, IF clear + request_interrupt_window: IRQ_WINDOW_OPEN after sti; nop (exit %u, rip 0x%llx)", impl,
          v.run->exit_reason, (unsigned long long)r.rip);
  else
    CHECK(rc == 0 && v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == 0x10 && r.rip == 0x100a &&
              v.run->if_flag && v.run->ready_for_interrupt_injection,
          "kvm_pvm, IF clear + request_interrupt_window: no window exit in its emulated real mode; the next exit, "
          "the OUT after sti; nop, reports the window open (exit %u, rip 0x%llx)",
          v.run->exit_reason, (unsigned long long)r.rip);
  const uint16_t stopped = pvm ? 0x100a : 0x1008;
  v.run->request_interrupt_window = 0;
  struct kvm_interrupt i = {.irq = 0x20};
  CHECK(ioctl(v.vcpu, KVM_INTERRUPT, &i) == 0, "KVM_INTERRUPT 0x20");
  i.irq = 0x21;
  rc = ioctl(v.vcpu, KVM_INTERRUPT, &i);
  CHECK(rc == 0, "%s: a second KVM_INTERRUPT before delivery replaces the first (no in-kernel irqchip: no EEXIST) (errno %d)",
        impl, rc < 0 ? errno : 0);
  i.irq = 256;
  CHECK(ioctl(v.vcpu, KVM_INTERRUPT, &i) < 0 && errno == EINVAL, "KVM_INTERRUPT 256: EINVAL");
  rc = ioctl(v.vcpu, KVM_RUN, 0);
  const unsigned vector = 0x21, port = 0x67;
  uint16_t ip;
  memcpy(&ip, v.mem + 0x8000 - 6, 2);
  CHECK(rc == 0 && v.run->exit_reason == KVM_EXIT_IO && v.run->io.port == port && ip == stopped,
        "%s: vector 0x%x runs its IVT handler, the frame holding the interrupted IP 0x%x (port 0x%x, ip 0x%x)", impl,
        vector, stopped, v.run->exit_reason == KVM_EXIT_IO ? v.run->io.port : 0, ip);
  destroy_vm(&v);
}

static void fuzz(int kvm) {
  int err;
  uint32_t fw;
  struct vm v = {.vcpu = -1};
  create_vm(kvm, 0, &v);
  CHECK(ioctl(v.fd, KVM_MEMORY_ENCRYPT_OP, NULL) == 0, "fuzz: NULL argument -> 0");
  CHECK(ioctl(v.fd, KVM_MEMORY_ENCRYPT_OP, (void *)8) < 0 && errno == EFAULT, "fuzz: bad kvm_sev_cmd -> EFAULT");
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, NULL, &err, &fw) < 0 && err == ENOTTY, "fuzz: LAUNCH_START on a non-SEV VM -> ENOTTY");
  CHECK(sev_op(v.fd, 999, NULL, &err, &fw) < 0 && err == EINVAL && fw == 0xdeadbeef, "fuzz: unknown id -> EINVAL, error untouched");
  struct sev_init2 init = {0};
  CHECK(sev_op(v.fd, SEV_INIT2, &init, &err, &fw) < 0 && err == EINVAL, "fuzz: INIT2 on the default VM type -> EINVAL");
  CHECK(sev_op(v.fd, KVM_SEV_INIT, NULL, &err, &fw) == 0, "fuzz: INIT");
  CHECK(sev_op(v.fd, KVM_SEV_INIT, NULL, &err, &fw) < 0 && err == EINVAL, "fuzz: INIT twice -> EINVAL");
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, (void *)8, &err, &fw) < 0 && err == EFAULT, "fuzz: LAUNCH_START bad data -> EFAULT");
  struct kvm_sev_launch_update_data upd = {.uaddr = (uint64_t)(uintptr_t)v.mem, .len = 4096};
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && err == EBADF,
        "fuzz: UPDATE_DATA before LAUNCH_START -> EBADF (sev->fd is 0)");
  struct kvm_sev_launch_start start = {.policy = 0x1, .dh_uaddr = 16, .dh_len = 0};
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) < 0 && err == EINVAL, "fuzz: dh_len 0 -> EINVAL");
  start.dh_len = 0x4001;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) < 0 && err == EINVAL, "fuzz: dh_len > 16K -> EINVAL");
  start.dh_len = 2084;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) < 0 && err == EFAULT, "fuzz: bad dh pointer -> EFAULT");
  start = (struct kvm_sev_launch_start){.policy = 0xff010001};  /* needs API 1.255 */
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) < 0 && err == EIO && fw == SEV_RET_POLICY_FAILURE,
        "fuzz: policy API above the firmware -> POLICY_FAILURE");
  int saved = sev_fd;
  sev_fd = 1;
  start.policy = 1;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) < 0 && err == EBADF, "fuzz: sev_fd not /dev/sev -> EBADF");
  sev_fd = saved;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) == 0, "fuzz: LAUNCH_START NODBG, no DH");
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw) < 0 && fw == SEV_RET_ASID_OWNED,
        "fuzz: second LAUNCH_START -> ASID_OWNED");
  upd.len = 15;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && fw == SEV_RET_INVALID_LEN, "fuzz: len 15 -> INVALID_LEN");
  upd.uaddr += 8;
  upd.len = 16;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && fw == SEV_RET_INVALID_ADDRESS, "fuzz: unaligned -> INVALID_ADDRESS");
  upd.uaddr = 4096;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && err == ENOMEM, "fuzz: unmapped -> ENOMEM (pin fails)");
  upd.len = 0;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && err == EINVAL, "fuzz: len 0 -> EINVAL");
  void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  upd = (struct kvm_sev_launch_update_data){.uaddr = (uint64_t)(uintptr_t)ro, .len = 4096};
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && err == ENOMEM, "fuzz: read-only memory -> ENOMEM");
  munmap(ro, 4096);
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw) < 0 && err == ENOTTY, "fuzz: UPDATE_VMSA on SEV -> ENOTTY");
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_FINISH, NULL, &err, &fw) < 0 && fw == SEV_RET_INVALID_GUEST_STATE,
        "fuzz: FINISH before MEASURE -> INVALID_GUEST_STATE");
  uint8_t buf[64];
  struct kvm_sev_dbg dbg = {.src_uaddr = (uint64_t)(uintptr_t)v.mem, .dst_uaddr = (uint64_t)(uintptr_t)buf, .len = 16};
  CHECK(sev_op(v.fd, KVM_SEV_DBG_DECRYPT, &dbg, &err, &fw) < 0 && fw == SEV_RET_POLICY_FAILURE, "fuzz: DBG_DECRYPT with NODBG -> POLICY_FAILURE");
  struct kvm_sev_launch_measure m = {.uaddr = (uint64_t)(uintptr_t)buf, .len = 20};
  /* sev_launch_measure writes the length back only for a query (len 0). */
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw) < 0 && fw == SEV_RET_INVALID_LEN && m.len == 20,
        "fuzz: MEASURE into 20 bytes -> INVALID_LEN, len not written back");
  m.uaddr = 8;
  m.len = 48;
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw) < 0 && err == EFAULT, "fuzz: MEASURE to a bad buffer -> EFAULT");
  struct kvm_sev_guest_status gs;
  CHECK(sev_op(v.fd, KVM_SEV_GUEST_STATUS, &gs, &err, &fw) == 0 && gs.state == 2, "fuzz: ...but the guest moved to LSECRET");
  struct kvm_enc_region reg = {.addr = (uint64_t)(uintptr_t)v.mem, .size = MEM_SIZE};
  CHECK(ioctl(v.fd, KVM_MEMORY_ENCRYPT_REG_REGION, &reg) == 0, "fuzz: REG_REGION");
  reg.size = 4096;
  CHECK(ioctl(v.fd, KVM_MEMORY_ENCRYPT_UNREG_REGION, &reg) < 0 && errno == EINVAL, "fuzz: UNREG of an unknown range -> EINVAL");
  reg.size = MEM_SIZE;
  CHECK(ioctl(v.fd, KVM_MEMORY_ENCRYPT_UNREG_REGION, &reg) == 0, "fuzz: UNREG_REGION");
  /* Random structs at every id: no crash. */
  for (int i = 0; i < 2000; i++) {
    uint8_t junk[128];
    RAND_bytes(junk, sizeof junk);
    uint32_t id = (uint32_t)(junk[0] % 25);
    if (id == KVM_SEV_INIT || id == KVM_SEV_ES_INIT || id == SEV_INIT2) continue;
    if (junk[1] & 1) memset(junk + 8, 0, 8);      /* some zero pointers */
    sev_op(v.fd, id, junk + 8, &err, &fw);
  }
  CHECK(1, "fuzz: 2000 random commands without a crash");
  destroy_vm(&v);
}

static void memlock(int kvm) {
  int err;
  uint32_t fw;
  struct vm v = {.vcpu = -1};
  create_vm(kvm, 0, &v);
  sev_op(v.fd, KVM_SEV_INIT, NULL, &err, &fw);
  struct rlimit rl;
  getrlimit(RLIMIT_MEMLOCK, &rl);
  struct kvm_enc_region reg = {.addr = (uint64_t)(uintptr_t)v.mem, .size = MEM_SIZE};
  int r = ioctl(v.fd, KVM_MEMORY_ENCRYPT_REG_REGION, &reg);
  CHECK(r < 0 && errno == ENOMEM, "memlock: REG_REGION of 2 MiB over RLIMIT_MEMLOCK %llu -> ENOMEM",
        (unsigned long long)rl.rlim_cur);
  reg.size = rl.rlim_cur;
  CHECK(ioctl(v.fd, KVM_MEMORY_ENCRYPT_REG_REGION, &reg) == 0, "memlock: a region of exactly the limit");
  struct kvm_sev_launch_start start = {.policy = 0};
  sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw);
  struct kvm_sev_launch_update_data upd = {.uaddr = (uint64_t)(uintptr_t)v.mem, .len = 4096};
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) < 0 && err == ENOMEM,
        "memlock: UPDATE_DATA counts pages on top of registered ones -> ENOMEM");
  ioctl(v.fd, KVM_MEMORY_ENCRYPT_UNREG_REGION, &reg);
  CHECK(sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) == 0, "memlock: fits after UNREG_REGION");
  destroy_vm(&v);
}

static void bench(int kvm, unsigned mib) {
  int err;
  uint32_t fw;
  struct vm v = {.vcpu = -1};
  create_vm(kvm, 0, &v);
  sev_op(v.fd, KVM_SEV_INIT, NULL, &err, &fw);
  struct kvm_sev_launch_start start = {.policy = 0};
  sev_op(v.fd, KVM_SEV_LAUNCH_START, &start, &err, &fw);
  size_t total = (size_t)mib << 20;
  uint8_t *buf = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(buf, 0x5a, total);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (size_t off = 0; off < total; off += 1u << 20) {
    struct kvm_sev_launch_update_data upd = {.uaddr = (uint64_t)(uintptr_t)(buf + off), .len = 1u << 20};
    if (sev_op(v.fd, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw) != 0) {
      CHECK(0, "bench: UPDATE_DATA errno %d fw %u", err, fw);
      break;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  printf("bench: %u MiB in %.3f s = %.0f MiB/s\n", mib, s, mib / s);
  munmap(buf, total);
  destroy_vm(&v);
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "all";
  int fds0 = count_fds();
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  sev_fd = open(getenv("SEV_EMU_DEVICE") ? getenv("SEV_EMU_DEVICE") : "/dev/sev", O_RDWR | O_CLOEXEC);
  if (kvm < 0 || sev_fd < 0) {
    fprintf(stderr, "kvm_sev_client: cannot open /dev/kvm or /dev/sev: %s\n", strerror(errno));
    return 2;
  }
  int types = ioctl(kvm, KVM_CHECK_EXTENSION, CAP_VM_TYPES);
  int es = types > 0 && (types & (1 << X86_SEV_ES_VM));
  if (!strcmp(mode, "all") || !strcmp(mode, "launch")) {
    CHECK(types > 0 && (types & (1 << X86_SEV_VM)), "KVM_CAP_VM_TYPES has SEV (0x%x)", types);
    uint64_t feats = ~0ull;
    struct kvm_device_attr attr = {.group = GRP_SEV, .attr = 0, .addr = (uint64_t)(uintptr_t)&feats};
    CHECK(ioctl(kvm, KVM_GET_DEVICE_ATTR, &attr) == 0 && feats != ~0ull, "VMSA features attribute 0x%llx",
          (unsigned long long)feats);
    launch(kvm, 0, 0);
    launch(kvm, 0, 1);
    if (es) {
      launch(kvm, 1, 0);
      launch(kvm, 1, 1);
    } else {
      CHECK(ioctl(kvm, KVM_CREATE_VM, X86_SEV_ES_VM) < 0 && errno == EINVAL, "no SEV-ES here: type 3 -> EINVAL");
    }
  }
  if (!strcmp(mode, "all") || !strcmp(mode, "irq")) irq(kvm);
  if (!strcmp(mode, "all") || !strcmp(mode, "fuzz")) fuzz(kvm);
  if (!strcmp(mode, "memlock")) memlock(kvm);
  if (!strcmp(mode, "bench")) bench(kvm, argc > 2 ? (unsigned)atoi(argv[2]) : 256);
  close(kvm);
  close(sev_fd);
  CHECK(count_fds() == fds0, "no fd leaked (%d before, %d after)", fds0, count_fds());
  return failures ? 1 : 0;
}
