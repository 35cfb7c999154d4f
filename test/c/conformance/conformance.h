/* The kernel-conformance suite: a client written against the system's kernel headers (plus
 * new_uapi.h for what 6.1's headers lack), checking that what /dev/sev and KVM answer is what
 * Linux 7.2 answers. Each check names its behaviour id (the "test" column of the table in
 * native/emu/README.md) and the kernel function it follows; output is TAP:
 *   ok - platform.pdh-export.query-chain-len-0 (sev_ioctl_do_pdh_export): detail
 * Runs under `sev-emu run` on every KVM backend (test/platform/conformance.test.ts). */
#ifndef SEV_CONFORMANCE_H
#define SEV_CONFORMANCE_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

extern int conformance_failures;

/* EXPECT("area.behaviour", "kernel_function", condition, "printf format", args...) */
#define EXPECT(id, fn, cond, ...)                        \
  do {                                                   \
    if (cond) {                                          \
      printf("ok - %s (%s): ", id, fn);                  \
    } else {                                             \
      printf("not ok - %s (%s): ", id, fn);              \
      conformance_failures++;                            \
    }                                                    \
    printf(__VA_ARGS__);                                 \
    printf("\n");                                        \
    fflush(stdout);                                      \
  } while (0)

/* A call that must fail with `err` (ret -1, errno err): says what it got otherwise. */
#define EXPECT_ERRNO(id, fn, ret, err, what)                                             \
  do {                                                                                   \
    int r_ = (ret), e_ = errno;                                                          \
    EXPECT(id, fn, r_ == -1 && e_ == (err), "%s -> %d %s (want -1 %s)", what, r_,         \
           r_ == -1 ? strerror(e_) : "", strerror(err));                                 \
  } while (0)

/* Areas, one file each; `skip` explains a missing prerequisite (it counts as a failure). */
void platform_checks(void);
void kvm_caps_checks(void);
void kvm_sev_checks(void);
void kvm_mem_checks(void);
void sev_guest_checks(void);

#endif
