/* conformance [AREA...]: runs the kernel-conformance checks (all areas by default) and exits
 * with the number of failed checks. */
#include <stdlib.h>

#include "conformance.h"

int conformance_failures;

static const struct {
  const char* name;
  void (*run)(void);
} areas[] = {
    {"platform", platform_checks},
    {"kvm-caps", kvm_caps_checks},
    {"kvm-sev", kvm_sev_checks},
    {"kvm-mem", kvm_mem_checks},
    {"sev-guest", sev_guest_checks},  /* needs `sev-emu run --guest` */
};

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
    int wanted = argc < 2 && areas[i].run != sev_guest_checks;
    for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], areas[i].name) == 0;
    if (wanted) areas[i].run();
  }
  printf("# %d failed\n", conformance_failures);
  return conformance_failures > 255 ? 255 : conformance_failures;
}
