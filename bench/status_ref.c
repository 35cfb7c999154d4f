/*
 * The reference client for the call-overhead benchmark: PLATFORM_STATUS through SEV_ISSUE_CMD
 * in a plain C loop, with the system's <linux/psp-sev.h>. Timed like the Node side: batches of
 * BATCH calls between two clock readings; prints the median per-call time over the batches.
 *
 * usage: status_ref CALLS  → one JSON line {calls, p50Ns}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/psp-sev.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BATCH 10

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void status(int fd) {
  struct sev_user_data_status s;
  struct sev_issue_cmd cmd = {.cmd = SEV_PLATFORM_STATUS, .data = (uint64_t)(uintptr_t)&s};
  if (ioctl(fd, SEV_ISSUE_CMD, &cmd) < 0) {
    fprintf(stderr, "status_ref: PLATFORM_STATUS: %s (fw error %u)\n", strerror(errno), cmd.error);
    exit(1);
  }
}

int main(int argc, char **argv) {
  long calls = argc > 1 ? strtol(argv[1], NULL, 0) : 10000;
  int fd = open("/dev/sev", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "status_ref: open /dev/sev: %s\n", strerror(errno));
    return 1;
  }
  for (int i = 0; i < 1000; i++) status(fd); /* warm up, as the Node side does */
  long batches = calls / BATCH;
  double *per = malloc(sizeof(double) * batches);
  for (long b = 0; b < batches; b++) {
    double t0 = now_ns();
    for (int i = 0; i < BATCH; i++) status(fd);
    per[b] = (now_ns() - t0) / BATCH;
  }
  qsort(per, batches, sizeof(double), cmp);
  printf("{\"calls\":%ld,\"p50Ns\":%.1f}\n", batches * BATCH, per[batches / 2]);
  return 0;
}
