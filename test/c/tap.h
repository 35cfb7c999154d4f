/* TAP-style checks for the C test programs: one "ok - ..." or "not ok - ..." line per check,
 * `failures` counts the misses (the program's exit status). */
#ifndef SEV_TEST_TAP_H
#define SEV_TEST_TAP_H

#include <stdio.h>

static int failures;
#define CHECK(cond, ...)    \
  do {                      \
    if (cond) {             \
      printf("ok - ");      \
    } else {                \
      printf("not ok - ");  \
      failures++;           \
    }                       \
    printf(__VA_ARGS__);    \
    printf("\n");           \
  } while (0)

#endif
