/*
 * sev_stress: concurrency and robustness of the emulated /dev/sev.
 *   sev_stress [threads] [iterations] [processes]
 * Each process runs `threads` threads; each thread interleaves well-formed commands
 * (checked for success and consistent results) with fuzzed ones: random command numbers,
 * random struct contents, NULL/small/unmapped/read-only/misaligned pointers, huge
 * lengths. A fuzzed call may fail, but only with an errno the kernel can return, and it
 * must never crash the process. Exit 0 when all checks pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/psp-sev.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CERT 2084
static int iterations = 200;
static uint8_t *unmapped, *readonly;
static volatile int failures;

static void fail(const char *what, int e, unsigned err) {
  __sync_fetch_and_add(&failures, 1);
  fprintf(stderr, "FAIL %s: errno %d error %u\n", what, e, err);
}

static int allowed_errno(int e) {
  return e == EINVAL || e == EFAULT || e == EIO || e == EPERM || e == ENODEV || e == ENOMEM ||
         e == EBUSY || e == 524;
}

static uint64_t rnd(unsigned *seed) {
  return ((uint64_t)rand_r(seed) << 33) ^ ((uint64_t)rand_r(seed) << 11) ^ (uint64_t)rand_r(seed);
}

static uint64_t fuzz_pointer(unsigned *seed, uint8_t *buf, size_t size) {
  switch (rand_r(seed) % 8) {
    case 0: return 0;
    case 1: return rand_r(seed) % 4096;
    case 2: return (uint64_t)(uintptr_t)unmapped + rand_r(seed) % 4096;
    case 3: return (uint64_t)(uintptr_t)readonly + rand_r(seed) % 4096;
    case 4: return rnd(seed);
    case 5: return (uint64_t)(uintptr_t)buf + size - 1 - rand_r(seed) % 8; /* runs off the end */
    default: return (uint64_t)(uintptr_t)buf + rand_r(seed) % 64;
  }
}

static uint32_t fuzz_len(unsigned *seed) {
  switch (rand_r(seed) % 6) {
    case 0: return 0;
    case 1: return CERT;
    case 2: return 3 * CERT;
    case 3: return 0x4000 + rand_r(seed) % 3 - 1;
    case 4: return (uint32_t)rnd(seed);
    default: return rand_r(seed) % 8192;
  }
}

static void *worker(void *p) {
  unsigned seed = (unsigned)(uintptr_t)p ^ (unsigned)getpid() * 2654435761u;
  int fd = open("/dev/sev", rand_r(&seed) % 2 ? O_RDWR : O_RDONLY);
  int rw = open("/dev/sev", O_RDWR);
  static __thread uint8_t buf[32768], pdh[CERT], chain[3 * CERT];
  if (fd < 0 || rw < 0) {
    fail("open", errno, 0);
    return NULL;
  }
  for (int i = 0; i < iterations; i++) {
    struct sev_issue_cmd a;
    /* A well-formed status + export on the rw fd must always succeed. */
    struct sev_user_data_status st;
    a.cmd = SEV_PLATFORM_STATUS;
    a.data = (uintptr_t)&st;
    a.error = 0;
    if (ioctl(rw, SEV_ISSUE_CMD, &a) != 0 || st.state > 2) fail("status", errno, a.error);
    struct sev_user_data_pdh_cert_export e = {(uintptr_t)pdh, CERT, (uintptr_t)chain, 3 * CERT};
    a.cmd = SEV_PDH_CERT_EXPORT;
    a.data = (uintptr_t)&e;
    if (ioctl(rw, SEV_ISSUE_CMD, &a) != 0 || e.pdh_cert_len != CERT ||
        pdh[8] != 0x03 || pdh[9] != 0x10 || chain[2 * CERT + 8] != 0x04)
      fail("export", errno, a.error);
    if (i % 16 == 0) {
      a.cmd = SEV_PDH_GEN;
      a.data = 0;
      if (ioctl(rw, SEV_ISSUE_CMD, &a) != 0) fail("pdh_gen", errno, a.error);
    }
    /* Fuzz: random command, random struct, random pointers. */
    for (size_t k = 0; k < 64; k++) buf[k] = (uint8_t)rand_r(&seed);
    uint32_t cmd = rand_r(&seed) % 16;
    if (cmd == SEV_FACTORY_RESET && rand_r(&seed) % 8) cmd = SEV_PLATFORM_STATUS;
    if (rand_r(&seed) % 10 == 0) cmd = (uint32_t)rnd(&seed);
    uint64_t *words = (uint64_t *)buf;
    if (rand_r(&seed) % 2) {  /* plausible address/length pairs */
      uint64_t a0 = fuzz_pointer(&seed, buf + 4096, 8192), a1 = fuzz_pointer(&seed, buf + 16384, 8192);
      uint32_t l0 = fuzz_len(&seed), l1 = fuzz_len(&seed);
      memcpy(buf, &a0, 8); memcpy(buf + 8, &l0, 4); memcpy(buf + 12, &a1, 8); memcpy(buf + 20, &l1, 4);
    }
    (void)words;
    a.cmd = cmd;
    a.data = rand_r(&seed) % 5 ? (uintptr_t)buf : fuzz_pointer(&seed, buf, 64);
    a.error = 0;
    void *arg = &a;
    if (rand_r(&seed) % 20 == 0) arg = (void *)(uintptr_t)fuzz_pointer(&seed, buf, 16);
    errno = 0;
    int r = ioctl(fd, SEV_ISSUE_CMD, arg);
    if (r < 0 && !allowed_errno(errno)) fail("fuzz errno", errno, a.error);
    if (r > 0) fail("fuzz positive return", r, a.error);
  }
  close(fd);
  close(rw);
  return NULL;
}

static int run(int threads) {
  pthread_t t[64];
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  return failures;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  iterations = argc > 2 ? atoi(argv[2]) : 200;
  int procs = argc > 3 ? atoi(argv[3]) : 1;
  if (threads < 1 || threads > 64) threads = 4;
  unmapped = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(unmapped, 4096);
  readonly = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int bad = 0;
  for (int p = 1; p < procs; p++)
    if (fork() == 0) _exit(run(threads) ? 1 : 0);
  bad += run(threads) ? 1 : 0;
  for (int p = 1; p < procs; p++) {
    int status;
    wait(&status);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) bad++;
  }
  if (bad) fprintf(stderr, "sev_stress: failures in %d process(es)\n", bad);
  else printf("sev_stress: %d process(es) x %d thread(s) x %d iterations ok\n", procs, threads, iterations);
  return bad ? 1 : 0;
}
