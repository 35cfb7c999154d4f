/* Inside an SNP guest: /dev/sev-guest (drivers/virt/coco/sev-guest/sev-guest.c) and the
 * configfs-tsm report items (drivers/virt/coco/guest/report.c with sev_report_new), as
 * Linux 7.2 and the firmware answer them. Runs under `sev-emu run --guest`. */
#include <fcntl.h>
#include <linux/sev-guest.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conformance.h"
#include "new_uapi.h"

#define PAGE 4096
#define TSM "/sys/kernel/config/tsm/report"

static const uint8_t vcek_guid[16] = {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
                                      0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd};

static uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static int guest_ioctl(int fd, unsigned long req, struct snp_guest_request_ioctl* io, void* in, void* out) {
  io->msg_version = 1;
  io->req_data = (uintptr_t)in;
  io->resp_data = (uintptr_t)out;
  return ioctl(fd, req, io);
}

static void report_checks(int fd) {
  struct snp_guest_request_ioctl io = {0};
  struct snp_report_req req = {0};
  static struct snp_report_resp resp;
  memset(req.user_data, 0x5a, sizeof req.user_data);

  io.exitinfo2 = 0x1234;
  int r = guest_ioctl(fd, SNP_GET_REPORT, &io, &req, &resp);
  uint32_t status = le32(resp.data), size = le32(resp.data + 4);
  const uint8_t* report = resp.data + 32;
  EXPECT("guest.report.ok", "get_report", r == 0 && status == 0 && size == 0x4a0 && le32(report + 0x30) == 0 &&
         report[0x50] == 0x5a && report[0x8f] == 0x5a,
         "ret %d status 0x%x size %u vmpl %u", r, status, size, le32(report + 0x30));
  EXPECT("guest.report.exitinfo2-not-copied-on-success", "snp_guest_ioctl", io.exitinfo2 == 0x1234,
         "exitinfo2 0x%llx (the caller's 0x1234 stays: only a non-zero exitinfo2 is copied back)",
         (unsigned long long)io.exitinfo2);

  req.vmpl = 2;
  r = guest_ioctl(fd, SNP_GET_REPORT, &io, &req, &resp);
  EXPECT("guest.report.vmpl", "get_report", r == 0 && le32(resp.data) == 0 && le32(resp.data + 32 + 0x30) == 2,
         "ret %d status 0x%x report vmpl %u", r, le32(resp.data), le32(resp.data + 32 + 0x30));

  req.vmpl = 4;
  r = guest_ioctl(fd, SNP_GET_REPORT, &io, &req, &resp);
  EXPECT("guest.report.bad-vmpl", "get_report (firmware MSG_REPORT_RSP status)", r == 0 && le32(resp.data) == 0x16,
         "ret %d status 0x%x (want 0 and INVALID_PARAM 0x16 in the response)", r, le32(resp.data));
  req.vmpl = 0;

  io = (struct snp_guest_request_ioctl){.msg_version = 0, .req_data = (uintptr_t)&req, .resp_data = (uintptr_t)&resp,
                                        .exitinfo2 = 0x77};
  errno = 0;
  r = ioctl(fd, SNP_GET_REPORT, &io);
  EXPECT("guest.ioctl.msg-version-0", "snp_guest_ioctl", r == -1 && errno == EINVAL && io.exitinfo2 == 0x77,
         "ret %d errno %s exitinfo2 0x%llx (want EINVAL, argument untouched)", r, strerror(errno),
         (unsigned long long)io.exitinfo2);

  io = (struct snp_guest_request_ioctl){0};
  r = guest_ioctl(fd, SNP_GET_REPORT, &io, NULL, &resp);
  EXPECT("guest.report.null-request", "get_report", r == -1 && errno == EINVAL && io.exitinfo2 == 0xff,
         "ret %d errno %s exitinfo2 0x%llx (want EINVAL and 0xff copied back)", r, strerror(errno),
         (unsigned long long)io.exitinfo2);

  io = (struct snp_guest_request_ioctl){0};
  r = guest_ioctl(fd, _IOWR('S', 0x7, struct snp_guest_request_ioctl), &io, &req, &resp);
  EXPECT("guest.ioctl.unknown", "snp_guest_ioctl", r == -1 && errno == ENOTTY && io.exitinfo2 == 0xff,
         "ret %d errno %s exitinfo2 0x%llx (want ENOTTY and 0xff copied back)", r, strerror(errno),
         (unsigned long long)io.exitinfo2);
}

static void ext_report_checks(int fd) {
  struct snp_guest_request_ioctl io = {0};
  struct snp_ext_report_req req = {0};
  static struct snp_report_resp resp;
  static uint8_t certs[SEV_FW_BLOB_MAX_SIZE];

  req.certs_address = (uintptr_t)certs;
  req.certs_len = 100;
  int r = guest_ioctl(fd, SNP_GET_EXT_REPORT, &io, &req, &resp);
  EXPECT_ERRNO("guest.ext-report.unaligned", "get_ext_report", r, EINVAL, "certs_len 100");
  req.certs_len = SEV_FW_BLOB_MAX_SIZE + PAGE;
  r = guest_ioctl(fd, SNP_GET_EXT_REPORT, &io, &req, &resp);
  EXPECT_ERRNO("guest.ext-report.oversized", "get_ext_report", r, EINVAL, "certs_len above SEV_FW_BLOB_MAX_SIZE");

  req.certs_len = PAGE;
  memset(&resp, 0xee, sizeof resp);
  io = (struct snp_guest_request_ioctl){0};
  r = guest_ioctl(fd, SNP_GET_EXT_REPORT, &io, &req, &resp);
  EXPECT("guest.ext-report.short", "get_ext_report, __handle_guest_request", r == -1 && errno == EIO &&
         io.vmm_error == SNP_GUEST_VMM_ERR_INVALID_LEN && io.fw_error == 0 && req.certs_len > PAGE &&
         req.certs_len % PAGE == 0 && resp.data[0] == 0xee,
         "ret %d errno %s vmm_error %u certs_len %u (want EIO, INVALID_LEN, the needed pages written back, no response)",
         r, strerror(errno), io.vmm_error, req.certs_len);

  io = (struct snp_guest_request_ioctl){0};
  r = guest_ioctl(fd, SNP_GET_EXT_REPORT, &io, &req, &resp);
  uint32_t first_off = le32(certs + 16), first_len = le32(certs + 20);
  EXPECT("guest.ext-report.certificates", "get_ext_report", r == 0 && le32(resp.data) == 0 &&
         le32(resp.data + 4) == 0x4a0 && memcmp(certs, vcek_guid, 16) == 0 && first_off + first_len <= req.certs_len &&
         certs[first_off] == 0x30,
         "ret %d status 0x%x first entry offset %u length %u (want the VCEK's GUID and a DER certificate)", r,
         le32(resp.data), first_off, first_len);

  req.certs_len = 0;
  r = guest_ioctl(fd, SNP_GET_EXT_REPORT, &io, &req, &resp);
  EXPECT("guest.ext-report.no-certificates", "get_ext_report", r == 0 && le32(resp.data + 4) == 0x4a0,
         "ret %d (certs_len 0: a report without certificates)", r);
}

static void derived_key_checks(int fd) {
  struct snp_guest_request_ioctl io = {0};
  struct snp_derived_key_req req = {.guest_field_select = 1 << 3};  /* the measurement */
  struct snp_derived_key_resp a, b;
  int r1 = guest_ioctl(fd, SNP_GET_DERIVED_KEY, &io, &req, &a);
  int r2 = guest_ioctl(fd, SNP_GET_DERIVED_KEY, &io, &req, &b);
  static const uint8_t zero[32];
  EXPECT("guest.key.ok", "get_derived_key", r1 == 0 && r2 == 0 && le32(a.data) == 0 && memcmp(a.data + 32, zero, 32) != 0 &&
         memcmp(a.data, b.data, 64) == 0,
         "ret %d/%d status 0x%x (want a non-zero 32-byte key, the same twice)", r1, r2, le32(a.data));
  req.rsvd = 1;
  r1 = guest_ioctl(fd, SNP_GET_DERIVED_KEY, &io, &req, &a);
  EXPECT("guest.key.reserved", "get_derived_key (firmware MSG_KEY_RSP status)", r1 == 0 && le32(a.data) == 0x16,
         "ret %d status 0x%x (want INVALID_PARAM 0x16)", r1, le32(a.data));
}

static ssize_t read_all(const char* path, uint8_t* buf, size_t cap) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = 0, r;
  while ((size_t)n < cap && (r = read(fd, buf + n, cap - n)) > 0) n += r;
  close(fd);
  return n;
}

static int write_all(const char* path, const void* data, size_t len) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) return -1;
  ssize_t w = write(fd, data, len);
  close(fd);
  return w == (ssize_t)len ? 0 : -1;
}

static void tsm_checks(void) {
  const char* item = TSM "/conformance";
  int r = mkdir(item, 0700);
  EXPECT("tsm.mkdir", "tsm_report_make_item", r == 0, "mkdir %s -> %d %s", item, r, r ? strerror(errno) : "");
  EXPECT_ERRNO("tsm.mkdir.exists", "configfs_mkdir", mkdir(item, 0700), EEXIST, "mkdir of an existing item");

  uint8_t buf[SEV_FW_BLOB_MAX_SIZE];
  ssize_t n = read_all(TSM "/conformance/provider", buf, sizeof buf - 1);
  EXPECT("tsm.provider", "tsm_report_provider_show", n == 10 && memcmp(buf, "sev_guest\n", 10) == 0, "read %zd bytes", n);

  errno = 0;
  n = read_all(TSM "/conformance/outblob", buf, sizeof buf);
  EXPECT("tsm.outblob.without-inblob", "tsm_report_read", n < 0 && errno == EINVAL, "read -> %zd %s (want EINVAL)", n,
         strerror(errno));

  uint8_t nonce[64];
  memset(nonce, 0x42, sizeof nonce);
  r = write_all(TSM "/conformance/inblob", nonce, sizeof nonce);
  n = read_all(TSM "/conformance/generation", buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  EXPECT("tsm.generation", "try_advance_write_generation", r == 0 && strcmp((char*)buf, "1\n") == 0,
         "after one inblob write: %s", (char*)buf);

  n = read_all(TSM "/conformance/outblob", buf, sizeof buf);
  EXPECT("tsm.outblob", "sev_report_new", n == 0x4a0 && buf[0x50] == 0x42 && buf[0x8f] == 0x42, "read %zd bytes", n);
  static uint8_t again[SEV_FW_BLOB_MAX_SIZE];
  ssize_t m = read_all(TSM "/conformance/outblob", again, sizeof again);
  EXPECT("tsm.outblob.cached", "read_cached_report", m == n && memcmp(buf, again, (size_t)n) == 0,
         "two reads of one generation give the same report (%zd, %zd bytes)", n, m);

  n = read_all(TSM "/conformance/auxblob", buf, sizeof buf);
  EXPECT("tsm.auxblob", "sev_report_new", n > 96 && memcmp(buf, vcek_guid, 16) == 0, "read %zd bytes", n);

  r = write_all(TSM "/conformance/privlevel", "7\n", 2);
  errno = 0;
  n = read_all(TSM "/conformance/outblob", buf, sizeof buf);
  EXPECT("tsm.privlevel.invalid", "tsm_report_privlevel_store", r < 0 || (n < 0 && errno == EINVAL),
         "privlevel 7: write %d, then outblob %zd %s (want EINVAL)", r, n, strerror(errno));

  r = rmdir(item);
  EXPECT("tsm.rmdir", "configfs_rmdir", r == 0, "rmdir -> %d %s", r, r ? strerror(errno) : "");
  EXPECT_ERRNO("tsm.rmdir.gone", "configfs_rmdir", rmdir(item), ENOENT, "rmdir of a removed item");
}

void sev_guest_checks(void) {
  int fd = open("/dev/sev-guest", O_RDWR);
  EXPECT("guest.open", "misc_open", fd >= 0, "open /dev/sev-guest -> %d %s", fd, fd < 0 ? strerror(errno) : "");
  if (fd < 0) return;
  report_checks(fd);
  ext_report_checks(fd);
  derived_key_checks(fd);
  close(fd);
  tsm_checks();
}
