// What AMD's key distribution service knows about the emulated platform, as read-only files
// under /dev/sev-emu/kds/ for the emulated KDS server (`sev-emu kds`, which runs with the
// emulator preloaded and SEV_EMU_KDS_BACKEND=1; no other process sees these paths):
//   info                               "generation=milan\nproduct=Milan\n"
//   vcek/<Product>/<hwid hex>/<tcb hex> the VCEK (DER) for that TCB_VERSION (u64, hex)
//   cert_chain/<Product>               ASK then ARK, PEM
//   crl/<Product>                      the ARK's CRL, DER
//   ask_ark                            the SEV ASK ‖ ARK in AMD's format (ask_ark_<gen>.cert)
//   cek/<chip id hex>                  the chip's ASK-signed CEK (SEV format)
// An unknown product or chip is ENOENT, as KDS answers 404 for them.
#pragma once

#include "common.h"

namespace sevemu {

bool is_kds_path(const char* path);
// The file's contents; 0 or -errno.
int kds_file(const char* path, Bytes& out);

}  // namespace sevemu
