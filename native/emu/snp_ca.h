// The emulated AMD SEV-SNP key hierarchy of one state directory, in the X.509 formats AMD's key
// distribution service (KDS) serves: ARK (self-signed) → ASK → VCEK, RSASSA-PSS SHA-384 links,
// the VCEK an ECDSA P-384 key with AMD's extensions (struct version, product name, the SPL of
// each TCB component, hwID), and the ARK's CRL. The ARK and ASK keys are the emulator's SEV
// ARK/ASK (ark.pem/ask.pem): AMD uses one root key per generation for SEV and SNP too.
//
// The VCEK is derived, as on real parts, from a chip-unique secret and the TCB it is for, so
// the firmware (signing reports) and the KDS (issuing certificates for any TCB) agree without
// storing a key per TCB. State files: chip_secret.bin (0600), snp_ark.der, snp_ask.der,
// snp_crl.der, and vcek_<tcb>.der (issued once per TCB, so a re-fetch gets the same bytes).
#pragma once

#include "common.h"
#include "crypto.h"
#include "firmware_state.h"

namespace sevemu::snp_ca {

// KDS product name of the generation ("Milan", "Genoa", "Turin"); null before Milan.
const char* product(const Generation& gen);
// The VCEK's productName extension ("Milan-B0", "Genoa-B1", "Turin-C1").
const char* product_with_stepping(const Generation& gen);

// The chip id KDS indexes VCEKs by: GET_ID's first 64 bytes, the first 8 on Turin.
Bytes hwid(NvSession& nv);

// Certificates (DER), created on first use and kept in the state directory.
const Bytes& ark_der(NvSession& nv);
const Bytes& ask_der(NvSession& nv);
const Bytes& crl_der(NvSession& nv);
Bytes vcek_der(NvSession& nv, uint64_t tcb);

// The VCEK private key for a TCB (TCB_VERSION as the firmware encodes it).
crypto::Pkey vcek_key(NvSession& nv, uint64_t tcb);

// A chip-unique secret mixed with `label` and `data` (HMAC-SHA-384): the root of the derived
// keys the firmware hands to guests (MSG_KEY_REQ) and of per-guest identifiers.
Bytes chip_derive(NvSession& nv, const char* label, const Bytes& data);

}  // namespace sevemu::snp_ca
