// Inside an emulated SEV-SNP guest (`sev-emu run --guest`): the guest kernel's sev-guest driver
// (/dev/sev-guest, drivers/virt/coco/sev-guest/sev-guest.c) and the firmware's answers to the
// guest messages it sends (MSG_REPORT_REQ, MSG_KEY_REQ; SNP ABI spec 56860, "Guest Messages").
// Reports are signed by the platform's VCEK for the reported TCB (snp_ca.h), so they verify
// against the state directory's emulated ARK. The guest itself is described by environment
// variables set by `sev-emu run --guest-*` (measurement, policy, host data, ...).
#pragma once

#include "common.h"
#include "fd_table.h"

namespace sevemu {

// Whether this process runs "inside an SNP guest" (SEV_EMU_GUEST=1).
bool snp_guest_enabled();

class SevGuestFile : public FdObject {
 public:
  const char* kind() const override { return "sev-guest"; }
  long ioctl(int fd, unsigned long req, unsigned long arg) override;
};

// What configfs-tsm's report_new gets from the driver (sev_report_new): the report for
// `user_data` at `vmpl` and the certificate table the host supplied. Returns 0 or -errno.
int snp_guest_tsm_report(const uint8_t user_data[64], uint32_t vmpl, Bytes& report, Bytes& certs);

}  // namespace sevemu
