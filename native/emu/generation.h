// Per-generation facts of the emulated EPYC: features, default firmware, CPUID leaf
// 0x8000001F, CA key size. Values marked "real" come from dumps of real machines; the
// others are plausible and documented as such in the table in generation.cc.
#pragma once

#include <cstdint>
#include <string>

namespace sevemu {

struct Generation {
  const char* name;     // naples | rome | milan | genoa | turin
  bool es;              // SEV-ES (Rome and later)
  bool snp;             // SEV-SNP (Milan and later)
  uint8_t api_major, api_minor, build;  // default firmware
  unsigned ca_rsa_bits;                 // ARK/ASK modulus: 2048 on Naples, else 4096
  uint32_t cpuid_8000001f[4];           // EAX, EBX, ECX, EDX
  uint64_t snp_tcb;                     // current TCB (SNP generations)
};

// Null for an unknown name.
const Generation* find_generation(const std::string& name);
const Generation& default_generation();  // milan

}  // namespace sevemu
