/* /dev/sev checks (drivers/crypto/ccp/sev-dev.c). */
#include "conformance.h"

void platform_checks(void) {}
