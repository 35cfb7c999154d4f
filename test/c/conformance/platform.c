/* /dev/sev checks (drivers/crypto/ccp/sev-dev.c): the open, the ioctl's own checks, the
 * length-query protocol, write commands on a read-only fd, implicit INIT, SNP commands on a host
 * without SNP. Expects a fresh platform as kvm_amd leaves it: INIT, self-owned, one socket, a
 * generation with SNP firmware (Milan or later) on a host that did not enable SNP. */
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "new_uapi.h"

/* The firmware's platform states (include/linux/psp-sev.h, not UAPI). */
enum { STATE_UNINIT = 0, STATE_INIT = 1 };
#define NOT_WRITTEN 0xA5A5A5A5u

static int rw_fd = -1, ro_fd = -1;
static uint32_t last_error; /* sev_issue_cmd.error after the call */

static int issue(int fd, uint32_t cmd, void* data) {
  struct sev_issue_cmd c = {.cmd = cmd, .data = (uintptr_t)data, .error = NOT_WRITTEN};
  int r = ioctl(fd, SEV_ISSUE_CMD, &c);
  last_error = c.error;
  return r;
}

static const char* dev_path(void) {
  const char* p = getenv("SEV_EMU_DEVICE");
  return p && *p ? p : "/dev/sev";
}

static struct sev_user_data_status platform_status(void) {
  struct sev_user_data_status s;
  memset(&s, 0, sizeof s);
  issue(ro_fd, SEV_PLATFORM_STATUS, &s);
  return s;
}

/* The node is created root-only (misc_register, mode 0600): another uid cannot open it at
 * all, for reading or writing, and access(2) says so too. */
static void check_open_as_other_uid(void) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
    int rw = open(dev_path(), O_RDWR), rw_errno = errno;
    int ro = open(dev_path(), O_RDONLY), ro_errno = errno;
    int acc = access(dev_path(), R_OK), acc_errno = errno;
    _exit(rw == -1 && rw_errno == EACCES ? ro == -1 && ro_errno == EACCES ? acc == -1 && acc_errno == EACCES ? 0 : 3 : 2 : 1);
  }
  int status = -1;
  waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  EXPECT("platform.open.other-uid", "misc_register (0600) / generic_permission", code == 0,
         "uid 65534: open O_RDWR, open O_RDONLY and access(R_OK) all EACCES (child said %d: 1 rw, 2 ro, 3 access, 10 setuid)",
         code);
  EXPECT("platform.open.root", "generic_permission", rw_fd >= 0 && ro_fd >= 0,
         "root opens %s read-write (%d) and read-only (%d)", dev_path(), rw_fd, ro_fd);
}

static void check_ioctl_entry(void) {
  EXPECT_ERRNO("platform.ioctl.other-request", "sev_ioctl", ioctl(rw_fd, _IOWR('S', 0x1, int), 0),
               EINVAL, "an ioctl other than SEV_ISSUE_CMD");
  EXPECT_ERRNO("platform.ioctl.bad-argument", "sev_ioctl", ioctl(rw_fd, SEV_ISSUE_CMD, (void*)8), EFAULT,
               "SEV_ISSUE_CMD on an unmapped argument");
  struct sev_user_data_status s;
  for (uint32_t cmd = CMD_SEV_MAX_7_2; cmd <= CMD_SEV_MAX_7_2 + 1; cmd++) {
    int r = issue(rw_fd, cmd, &s);
    int e = errno;
    EXPECT("platform.ioctl.unknown-command", "sev_ioctl", r == -1 && e == EINVAL && last_error == NOT_WRITTEN,
           "cmd %u -> %d %s, error %s (want EINVAL, nothing copied back)", cmd, r, strerror(e),
           last_error == NOT_WRITTEN ? "untouched" : "written");
  }
}

static void check_status(void) {
  struct sev_user_data_status s;
  memset(&s, 0xee, sizeof s);
  int r = issue(ro_fd, SEV_PLATFORM_STATUS, &s);
  EXPECT("platform.status.read-only-fd", "sev_ioctl_do_platform_status",
         r == 0 && last_error == 0 && s.state == STATE_INIT && s.api_major >= 1 && (s.flags & 1) == 0,
         "PLATFORM_STATUS on a read-only fd -> %d, error %u, state %u, API %u.%u, owner bit %u", r, last_error,
         s.state, s.api_major, s.api_minor, s.flags & 1);
  void* ro_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_ERRNO("platform.status.unwritable-buffer", "sev_ioctl_do_platform_status",
               issue(rw_fd, SEV_PLATFORM_STATUS, ro_page), EFAULT, "PLATFORM_STATUS into a read-only page");
  munmap(ro_page, 4096);
}

/* Every command that changes platform state needs FMODE_WRITE, checked before anything else
 * (even a bad data pointer), and the error field is copied back as it came in. */
static void check_write_commands_on_read_only_fd(void) {
  static const struct {
    uint32_t cmd;
    const char* name;
  } cmds[] = {{SEV_FACTORY_RESET, "FACTORY_RESET"}, {SEV_PEK_GEN, "PEK_GEN"},
              {SEV_PDH_GEN, "PDH_GEN"},             {SEV_PEK_CSR, "PEK_CSR"},
              {SEV_PEK_CERT_IMPORT, "PEK_CERT_IMPORT"}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    int r = issue(ro_fd, cmds[i].cmd, (void*)8);
    int e = errno;
    EXPECT("platform.write-command.read-only-fd", "sev_ioctl_do_* (writable)", r == -1 && e == EPERM && last_error == NOT_WRITTEN,
           "%s on a read-only fd -> %d %s, error 0x%x (want EPERM, error as given)", cmds[i].name, r, strerror(e),
           last_error);
  }
  struct sev_user_data_status before = platform_status();
  EXPECT("platform.write-command.read-only-fd-no-effect", "sev_ioctl_do_reset", before.state == STATE_INIT,
         "the platform is still INIT after the refused FACTORY_RESET (state %u)", before.state);
}

static void check_pek_csr_length_query(void) {
  uint8_t buf[64];
  memset(buf, 0x5a, sizeof buf);
  struct sev_user_data_pek_csr q = {0, 0};
  int r = issue(rw_fd, SEV_PEK_CSR, &q);
  int e = errno;
  uint32_t need = q.length;
  EXPECT("platform.pek-csr.length-query", "sev_ioctl_do_pek_csr",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_LEN && need == 2084,
         "address 0, length 0 -> %d %s, error 0x%x, length %u (want EIO, INVALID_LEN, the CSR's 2084)", r, strerror(e),
         last_error, need);
  q.address = (uintptr_t)buf;
  q.length = sizeof buf;
  r = issue(rw_fd, SEV_PEK_CSR, &q);
  e = errno;
  EXPECT("platform.pek-csr.short-buffer", "sev_ioctl_do_pek_csr",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_LEN && q.length == need && buf[0] == 0x5a && buf[63] == 0x5a,
         "64-byte buffer -> %d %s, error 0x%x, length %u, buffer %s", r, strerror(e), last_error, q.length,
         buf[0] == 0x5a && buf[63] == 0x5a ? "untouched" : "written");
  q.length = SEV_FW_BLOB_MAX_SIZE + 1;
  EXPECT_ERRNO("platform.pek-csr.oversized", "sev_ioctl_do_pek_csr", issue(rw_fd, SEV_PEK_CSR, &q), EFAULT,
               "a length above SEV_FW_BLOB_MAX_SIZE");
  uint8_t* csr = malloc(need);
  q.address = (uintptr_t)csr;
  q.length = need;
  r = issue(rw_fd, SEV_PEK_CSR, &q);
  EXPECT("platform.pek-csr.exact", "sev_ioctl_do_pek_csr", r == 0 && last_error == 0 && q.length == need,
         "the required length -> %d, error %u, length %u", r, last_error, q.length);
  free(csr);
}

static void check_pdh_export_length_query(void) {
  enum { CERT = 2084 };
  uint8_t pdh[CERT], chain[3 * CERT];
  struct sev_user_data_pdh_cert_export q;
  memset(&q, 0, sizeof q);
  int r = issue(ro_fd, SEV_PDH_CERT_EXPORT, &q);
  int e = errno;
  EXPECT("platform.pdh-export.length-query", "sev_ioctl_do_pdh_export",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_LEN && q.pdh_cert_len == CERT && q.cert_chain_len == 3 * CERT,
         "all zero -> %d %s, error 0x%x, lengths %u/%u (want EIO, INVALID_LEN, %u/%u)", r, strerror(e), last_error,
         q.pdh_cert_len, q.cert_chain_len, CERT, 3 * CERT);
  /* Any zero address or length is a query: here only cert_chain_len is 0, so nothing may be
     written to the PDH buffer although its address and length are good. */
  memset(pdh, 0x5a, sizeof pdh);
  q.pdh_cert_address = (uintptr_t)pdh;
  q.pdh_cert_len = CERT;
  q.cert_chain_address = (uintptr_t)chain;
  q.cert_chain_len = 0;
  r = issue(ro_fd, SEV_PDH_CERT_EXPORT, &q);
  e = errno;
  EXPECT("platform.pdh-export.query-chain-len-0", "sev_ioctl_do_pdh_export",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_LEN && q.pdh_cert_len == CERT &&
             q.cert_chain_len == 3 * CERT && pdh[0] == 0x5a,
         "cert_chain_len 0 -> %d %s, error 0x%x, lengths %u/%u, PDH buffer %s", r, strerror(e), last_error,
         q.pdh_cert_len, q.cert_chain_len, pdh[0] == 0x5a ? "untouched" : "written");
  q.cert_chain_address = 0;
  q.cert_chain_len = 3 * CERT;
  r = issue(ro_fd, SEV_PDH_CERT_EXPORT, &q);
  EXPECT("platform.pdh-export.query-null-chain", "sev_ioctl_do_pdh_export",
         r == -1 && last_error == SEV_RET_INVALID_LEN && pdh[0] == 0x5a,
         "null cert_chain_address -> %d, error 0x%x, PDH buffer %s", r, last_error, pdh[0] == 0x5a ? "untouched" : "written");
  q.cert_chain_address = (uintptr_t)chain;
  q.cert_chain_len = CERT;
  r = issue(ro_fd, SEV_PDH_CERT_EXPORT, &q);
  e = errno;
  EXPECT("platform.pdh-export.short-chain", "sev_ioctl_do_pdh_export",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_LEN && q.cert_chain_len == 3 * CERT && pdh[0] == 0x5a,
         "a one-certificate chain buffer -> %d %s, error 0x%x, chain length %u, PDH buffer %s", r, strerror(e),
         last_error, q.cert_chain_len, pdh[0] == 0x5a ? "untouched" : "written");
  q.cert_chain_len = SEV_FW_BLOB_MAX_SIZE + 1;
  EXPECT_ERRNO("platform.pdh-export.oversized", "sev_ioctl_do_pdh_export", issue(ro_fd, SEV_PDH_CERT_EXPORT, &q),
               EFAULT, "a chain length above SEV_FW_BLOB_MAX_SIZE");
  q.cert_chain_len = 3 * CERT;
  r = issue(ro_fd, SEV_PDH_CERT_EXPORT, &q);
  EXPECT("platform.pdh-export.read-only-fd", "sev_ioctl_do_pdh_export", r == 0 && last_error == 0 && pdh[0] != 0x5a,
         "the full export on a read-only fd in INIT -> %d, error %u", r, last_error);
}

static void check_get_id2(void) {
  uint8_t id[64];
  struct sev_user_data_get_id2 q = {0, 0};
  int r = issue(ro_fd, SEV_GET_ID2, &q);
  int e = errno;
  EXPECT("platform.get-id2.length-query", "sev_ioctl_do_get_id2",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_LEN && q.length == 64,
         "address 0 -> %d %s, error 0x%x, length %u (want EIO, INVALID_LEN, 64 for one socket)", r, strerror(e),
         last_error, q.length);
  memset(id, 0x5a, sizeof id);
  q.address = (uintptr_t)id;
  q.length = 10;
  r = issue(ro_fd, SEV_GET_ID2, &q);
  EXPECT("platform.get-id2.short-buffer", "sev_ioctl_do_get_id2",
         r == -1 && last_error == SEV_RET_INVALID_LEN && q.length == 64 && id[0] == 0x5a,
         "10-byte buffer -> %d, error 0x%x, length %u, buffer %s", r, last_error, q.length,
         id[0] == 0x5a ? "untouched" : "written");
  q.length = 64;
  r = issue(ro_fd, SEV_GET_ID2, &q);
  EXPECT("platform.get-id2.exact", "sev_ioctl_do_get_id2", r == 0 && last_error == 0 && q.length == 64,
         "64 bytes on a read-only fd -> %d, error %u, length %u", r, last_error, q.length);
  q.length = (4u << 20) + 1; /* beyond what kzalloc may give: ENOMEM, no warning */
  EXPECT_ERRNO("platform.get-id2.huge", "sev_ioctl_do_get_id2", issue(ro_fd, SEV_GET_ID2, &q), ENOMEM,
               "a length above 4 MiB");
  struct sev_user_data_get_id old;
  memset(&old, 0x5a, sizeof old);
  r = issue(ro_fd, SEV_GET_ID, &old);
  EXPECT("platform.get-id.deprecated", "sev_ioctl_do_get_id",
         r == 0 && memcmp(old.socket1, id, 64) == 0 && old.socket2[0] == 0x5a,
         "GET_ID -> %d: socket1 = GET_ID2's id, socket2 %s on one socket", r,
         old.socket2[0] == 0x5a ? "untouched" : "written");
}

/* FACTORY_RESET from INIT shuts down first; commands that need INIT then move the platform to
 * INIT and shut it down again afterwards; a read-only fd may not move it. */
static void check_implicit_init(void) {
  int r = issue(rw_fd, SEV_FACTORY_RESET, NULL);
  uint32_t after = platform_status().state;
  EXPECT("platform.reset.from-init", "sev_ioctl_do_reset", r == 0 && after == STATE_UNINIT,
         "FACTORY_RESET in INIT -> %d, state %u (want UNINIT)", r, after);
  struct sev_user_data_pdh_cert_export q;
  memset(&q, 0, sizeof q);
  r = issue(ro_fd, SEV_PDH_CERT_EXPORT, &q);
  int e = errno;
  EXPECT("platform.pdh-export.uninit-read-only", "sev_ioctl_do_pdh_export",
         r == -1 && e == EPERM && last_error == NOT_WRITTEN,
         "length query on a read-only fd in UNINIT -> %d %s, error 0x%x (want EPERM before any firmware call)", r,
         strerror(e), last_error);
  r = issue(rw_fd, SEV_PDH_CERT_EXPORT, &q);
  uint32_t error = last_error, state = platform_status().state;
  EXPECT("platform.pdh-export.uninit-implicit-init", "sev_move_to_init_state",
         r == -1 && error == SEV_RET_INVALID_LEN && q.cert_chain_len == 3 * 2084 && state == STATE_UNINIT,
         "length query on a read-write fd in UNINIT -> %d, error 0x%x, then state %u (want INVALID_LEN, back to UNINIT)",
         r, error, state);
  r = issue(rw_fd, SEV_PEK_GEN, NULL);
  error = last_error;
  state = platform_status().state;
  EXPECT("platform.pek-gen.uninit", "sev_ioctl_do_pek_pdh_gen", r == 0 && error == 0 && state == STATE_UNINIT,
         "PEK_GEN in UNINIT -> %d, error %u, state %u (want 0, UNINIT again)", r, error, state);
  struct sev_user_data_pek_cert_import imp = {0, 0, 0, 0};
  r = issue(rw_fd, SEV_PEK_CERT_IMPORT, &imp);
  int e2 = errno;
  EXPECT("platform.pek-import.empty-blob", "psp_copy_user_blob", r == -1 && e2 == EINVAL && last_error == NOT_WRITTEN,
         "PEK_CERT_IMPORT with no certificates -> %d %s, error 0x%x (want EINVAL, no firmware call)", r, strerror(e2),
         last_error);
  r = issue(rw_fd, SEV_FACTORY_RESET, NULL);
  EXPECT("platform.reset.from-uninit", "sev_ioctl_do_reset", r == 0 && last_error == 0,
         "FACTORY_RESET in UNINIT -> %d, error %u", r, last_error);
}

/* A host without SNP (CC_ATTR_HOST_SEV_SNP clear): SNP is never initialized. STATUS and COMMIT
 * still reach the firmware; SET_CONFIG and VLEK_LOAD stop at ENODEV after their own checks. */
static void check_snp_without_host_snp(void) {
  uint8_t st[SNP_STATUS_SIZE], cfg[SNP_CONFIG_SIZE], vlek[SNP_VLEK_LOAD_SIZE];
  memset(cfg, 0, sizeof cfg);
  memset(vlek, 0, sizeof vlek);
  vlek[0] = SNP_VLEK_LOAD_SIZE;
  EXPECT_ERRNO("platform.snp-status.null", "sev_ioctl_do_snp_platform_status",
               issue(ro_fd, CMD_SNP_PLATFORM_STATUS, NULL), EINVAL, "SNP_PLATFORM_STATUS without a buffer");
  memset(st, 0xee, sizeof st);
  int r = issue(ro_fd, CMD_SNP_PLATFORM_STATUS, st);
  EXPECT("platform.snp-status.uninit", "__sev_do_snp_platform_status",
         r == 0 && last_error == 0 && st[2] == 0 && (st[3] & 1) == 0 && st[0] >= 1,
         "SNP_PLATFORM_STATUS -> %d, error %u, SNP state %u, RMP initialized %u, API %u.%u (want the firmware's answer: UNINIT)",
         r, last_error, st[2], st[3] & 1, st[0], st[1]);
  r = issue(ro_fd, CMD_SNP_COMMIT, NULL);
  int e = errno;
  EXPECT("platform.snp-commit.uninit", "sev_ioctl_do_snp_commit",
         r == -1 && e == EIO && last_error == SEV_RET_INVALID_PLATFORM_STATE,
         "SNP_COMMIT (read-only fd) -> %d %s, error 0x%x (want EIO, INVALID_PLATFORM_STATE)", r, strerror(e), last_error);
  EXPECT_ERRNO("platform.snp-set-config.null", "sev_ioctl_do_snp_set_config",
               issue(ro_fd, CMD_SNP_SET_CONFIG, NULL), EINVAL, "SNP_SET_CONFIG without data, read-only fd");
  EXPECT_ERRNO("platform.snp-set-config.read-only-fd", "sev_ioctl_do_snp_set_config",
               issue(ro_fd, CMD_SNP_SET_CONFIG, cfg), EPERM, "SNP_SET_CONFIG on a read-only fd");
  EXPECT_ERRNO("platform.snp-set-config.no-snp", "sev_ioctl_do_snp_set_config",
               issue(rw_fd, CMD_SNP_SET_CONFIG, (void*)8), ENODEV, "SNP_SET_CONFIG (bad pointer) without SNP");
  EXPECT_ERRNO("platform.snp-vlek-load.read-only-fd", "sev_ioctl_do_snp_vlek_load",
               issue(ro_fd, CMD_SNP_VLEK_LOAD, vlek), EPERM, "SNP_VLEK_LOAD on a read-only fd");
  EXPECT_ERRNO("platform.snp-vlek-load.no-snp", "sev_ioctl_do_snp_vlek_load",
               issue(rw_fd, CMD_SNP_VLEK_LOAD, vlek), ENODEV, "SNP_VLEK_LOAD without SNP");
}

void platform_checks(void) {
  rw_fd = open(dev_path(), O_RDWR | O_CLOEXEC);
  ro_fd = open(dev_path(), O_RDONLY | O_CLOEXEC);
  check_open_as_other_uid();
  if (rw_fd < 0 || ro_fd < 0) return;
  check_ioctl_entry();
  check_status();
  check_write_commands_on_read_only_fd();
  check_pek_csr_length_query();
  check_pdh_export_length_query();
  check_get_id2();
  check_snp_without_host_snp();
  check_implicit_init();
  close(rw_fd);
  close(ro_fd);
}
