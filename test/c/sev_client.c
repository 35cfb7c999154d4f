/*
 * sev_client: a plain C client of /dev/sev, built against the system's
 * <linux/psp-sev.h>, used to compare the emulator (and real hardware) with the addon.
 *
 *   sev_client [status|id|pdh|probe|all]      (default: all)
 *
 * Prints one JSON object on stdout. The device is /dev/sev, or $SEV_EMU_DEVICE when set.
 * Exit status 0 when every requested section ran (individual ioctl failures are reported
 * in the JSON, not by the exit status); 2 on usage errors or when the device cannot open.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/psp-sev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char *device_path(void) {
  const char *p = getenv("SEV_EMU_DEVICE");
  return p && *p ? p : "/dev/sev";
}

static const char *errno_str(int e) {
  switch (e) {
    case 0: return "";
    case EPERM: return "EPERM";
    case EIO: return "EIO";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case ENOMEM: return "ENOMEM";
    case ENOTTY: return "ENOTTY";
    case 524: return "ENOTSUPP";
    default: return "OTHER";
  }
}

/* Issues one command; returns the ioctl result and stores errno and the firmware error. */
static int issue(int fd, uint32_t cmd, void *data, int *err, uint32_t *fw_error) {
  struct sev_issue_cmd arg;
  memset(&arg, 0, sizeof arg);
  arg.cmd = cmd;
  arg.data = (uint64_t)(uintptr_t)data;
  arg.error = 0;
  errno = 0;
  int r = ioctl(fd, SEV_ISSUE_CMD, &arg);
  *err = r < 0 ? errno : 0;
  *fw_error = arg.error;
  return r;
}

static void print_result(const char *name, int r, int err, uint32_t fw_error) {
  printf("\"%s\":{\"ret\":%d,\"errno\":%d,\"errno_name\":\"%s\",\"error\":%u}", name, r, err,
         errno_str(err), fw_error);
}

static void print_hex(const uint8_t *p, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
  putchar('"');
}

static void section_status(int fd) {
  struct sev_user_data_status st;
  int err;
  uint32_t fw;
  memset(&st, 0, sizeof st);
  int r = issue(fd, SEV_PLATFORM_STATUS, &st, &err, &fw);
  printf("\"status\":{");
  print_result("result", r, err, fw);
  if (r == 0)
    printf(",\"api_major\":%u,\"api_minor\":%u,\"state\":%u,\"flags\":%u,\"owner\":%u,"
           "\"config_es\":%u,\"build\":%u,\"guest_count\":%u",
           st.api_major, st.api_minor, st.state, (unsigned)st.flags, (unsigned)(st.flags & 1),
           (unsigned)((st.flags >> 8) & 1), st.build, (unsigned)st.guest_count);
  printf("}");
}

static void section_id(int fd) {
  struct sev_user_data_get_id2 q;
  int err, r;
  uint32_t fw;
  memset(&q, 0, sizeof q);  /* null address: length query */
  r = issue(fd, SEV_GET_ID2, &q, &err, &fw);
  printf("\"id\":{");
  print_result("query", r, err, fw);
  printf(",\"length\":%u", q.length);
  if (q.length > 0 && q.length <= 4096) {
    uint8_t *buf = calloc(1, q.length);
    struct sev_user_data_get_id2 g;
    g.address = (uint64_t)(uintptr_t)buf;
    g.length = q.length;
    r = issue(fd, SEV_GET_ID2, &g, &err, &fw);
    printf(",");
    print_result("fetch", r, err, fw);
    if (r == 0) {
      printf(",\"hex\":");
      print_hex(buf, g.length);
    }
    free(buf);
  }
  printf("}");
}

static void section_pdh(int fd) {
  struct sev_user_data_pdh_cert_export q;
  int err, r;
  uint32_t fw;
  memset(&q, 0, sizeof q);  /* null addresses: length query */
  r = issue(fd, SEV_PDH_CERT_EXPORT, &q, &err, &fw);
  printf("\"pdh\":{");
  print_result("query", r, err, fw);
  printf(",\"pdh_cert_len\":%u,\"cert_chain_len\":%u", q.pdh_cert_len, q.cert_chain_len);
  if (q.pdh_cert_len && q.pdh_cert_len <= 16384 && q.cert_chain_len &&
      q.cert_chain_len <= 16384) {
    uint8_t *pdh = calloc(1, q.pdh_cert_len), *chain = calloc(1, q.cert_chain_len);
    struct sev_user_data_pdh_cert_export e;
    e.pdh_cert_address = (uint64_t)(uintptr_t)pdh;
    e.pdh_cert_len = q.pdh_cert_len;
    e.cert_chain_address = (uint64_t)(uintptr_t)chain;
    e.cert_chain_len = q.cert_chain_len;
    r = issue(fd, SEV_PDH_CERT_EXPORT, &e, &err, &fw);
    printf(",");
    print_result("fetch", r, err, fw);
    if (r == 0) {
      printf(",\"pdh_hex\":");
      print_hex(pdh, e.pdh_cert_len);
      printf(",\"chain_hex\":");
      print_hex(chain, e.cert_chain_len);
    }
    free(pdh);
    free(chain);
  }
  printf("}");
}

static void section_probe(int fd) {
  int err, r;
  uint32_t fw;
  printf("\"probe\":{");

  /* A write command on a read-only fd: EPERM, firmware not called, error untouched. */
  int ro = open(device_path(), O_RDONLY | O_CLOEXEC);
  if (ro >= 0) {
    r = issue(ro, SEV_PEK_GEN, NULL, &err, &fw);
    print_result("readonly_pek_gen", r, err, fw);
    struct sev_user_data_status st;
    r = issue(ro, SEV_PLATFORM_STATUS, &st, &err, &fw);
    printf(",");
    print_result("readonly_status", r, err, fw);
    close(ro);
  } else {
    printf("\"readonly_open_errno\":%d", errno);
  }

  /* cmd == SEV_MAX and far beyond it: EINVAL. */
  r = issue(fd, SEV_MAX, NULL, &err, &fw);
  printf(",");
  print_result("cmd_sev_max", r, err, fw);
  r = issue(fd, 0x7fffffff, NULL, &err, &fw);
  printf(",");
  print_result("cmd_unknown", r, err, fw);

  /* An ioctl number other than SEV_ISSUE_CMD: EINVAL. */
  errno = 0;
  r = ioctl(fd, _IOWR('S', 0x1, struct sev_issue_cmd), NULL);
  printf(",");
  print_result("bad_ioctl", r, r < 0 ? errno : 0, 0);

  /* Bad pointers: the argument itself, and the command's data. */
  errno = 0;
  r = ioctl(fd, SEV_ISSUE_CMD, (void *)8);
  printf(",");
  print_result("bad_arg_pointer", r, r < 0 ? errno : 0, 0);
  r = issue(fd, SEV_PLATFORM_STATUS, (void *)8, &err, &fw);
  printf(",");
  print_result("bad_data_pointer", r, err, fw);

  /* PEK_CSR length query: INVALID_LEN (4) with the length written back. */
  struct sev_user_data_pek_csr csr;
  memset(&csr, 0, sizeof csr);
  r = issue(fd, SEV_PEK_CSR, &csr, &err, &fw);
  printf(",");
  print_result("pek_csr_query", r, err, fw);
  printf(",\"pek_csr_length\":%u", csr.length);

  /* A PDH buffer length beyond SEV_FW_BLOB_MAX_SIZE: EFAULT from the kernel. */
  static uint8_t big[16];
  struct sev_user_data_pdh_cert_export e;
  e.pdh_cert_address = (uint64_t)(uintptr_t)big;
  e.pdh_cert_len = 0x4001;
  e.cert_chain_address = (uint64_t)(uintptr_t)big;
  e.cert_chain_len = 16;
  r = issue(fd, SEV_PDH_CERT_EXPORT, &e, &err, &fw);
  printf(",");
  print_result("pdh_export_too_long", r, err, fw);
  printf("}");
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "all";
  int all = strcmp(what, "all") == 0;
  if (!all && strcmp(what, "status") && strcmp(what, "id") && strcmp(what, "pdh") &&
      strcmp(what, "probe")) {
    fprintf(stderr, "usage: %s [status|id|pdh|probe|all]\n", argv[0]);
    return 2;
  }
  int fd = open(device_path(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    printf("{\"open_errno\":%d}\n", errno);
    return 2;
  }
  int first = 1;
  printf("{");
#define SECTION(name, fn)         \
  if (all || !strcmp(what, name)) { \
    if (!first) printf(",");      \
    first = 0;                    \
    fn(fd);                       \
  }
  SECTION("status", section_status)
  SECTION("id", section_id)
  SECTION("pdh", section_pdh)
  SECTION("probe", section_probe)
  printf("}\n");
  close(fd);
  return 0;
}
