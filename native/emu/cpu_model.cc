// The emulated EPYC's CPUID and /proc/cpuinfo, per generation.
//
// Where the values come from. Each table is the CPUID of logical CPU 0 of a real machine,
// taken from the CPUID dumps that libcpuid keeps as test data (github.com/anrieff/libcpuid,
// tests/amd/zen*/amd-epyc-*.test; raw register values, AIDA64 format except Naples'), and
// written out here as facts. Where a value is not from the dump it says so ("recon."):
//   naples  EPYC 7551P 32-Core (family 17h model 01h stepping 2, 0x00800F12)
//           dump: tests/amd/zen/amd-epyc-7551p-32-core-processor.test — leaves 0, 1, 5, 6,
//           7.0, 0xD.0, 0x80000000-0x8000001E (0x8000001D sub-leaf 0 only). The result was
//           checked against the /proc/cpuinfo of a real EPYC 7601 on a 6.x kernel (posted to
//           LKML): flags, bugs, TLB size, address sizes and power management agree.
//   rome    EPYC 7742 64-Core (17h/31h stepping 0, 0x00830F10)
//           dump: tests/amd/zen2/amd-epyc-7742-64-core-processor-dual.test
//   milan   EPYC 7763 64-Core (19h/01h stepping 1, 0x00A00F11)
//           dump: tests/amd/zen3/amd-epyc-7763-64-core-processor-dual.test
//   genoa   EPYC 9654 96-Core (19h/11h stepping 1, 0x00A10F11)
//           dump: tests/amd/zen4/amd-epyc-9654-96-core-processor-dual.test
//   turin   EPYC 9655 96-Core (1Ah/02h stepping 1, 0x00B00F21)
//           dump: tests/amd/zen5/amd-epyc-9655-96-core-processor.test. That machine ran with
//           64 cores and SMT off, so the topology fields are recon. for the full 96-core,
//           2-thread part, laid out like the 9654 dump (also 12 CCDs x 8 cores).
// The brand strings are the dumped parts' (7551P and 9655 rather than the better-known 7601
// and 9755, for which no dump was at hand).
// Common changes: CPUID 7.0 ECX bit 4 (OSPKE) is set where PKU exists — it mirrors CR4.PKE,
// which Linux sets and the OS the dumps were taken on did not. Leaf 0x8000001F is never from a
// dump: it is Generation::cpuid_8000001f (generation.cc), so there is one source for it.
//
// /proc/cpuinfo follows arch/x86/kernel/cpu/proc.c (field order and format), the flag names of
// arch/x86/include/asm/cpufeatures.h (Linux ~6.12), scattered.c and amd.c for the bits Linux
// collects from other leaves or synthesises, and amd.c's early_detect_mem_encrypt for the
// memory-encryption flags and the physical-address reduction.
#include "cpu_model.h"

#include <algorithm>
#include <bitset>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

namespace sevemu {
namespace {

constexpr uint32_t I = kCpuidFlagSignificantIndex;

// Brand strings, as CPUID 0x80000002-4 return them (12 little-endian dwords each).
#define SEVEMU_BRAND_TAIL                                                             \
  {0x80000003, 0, 0, 0x726f432d, 0x72502065, 0x7365636f, 0x20726f73}, /* -Core Processor */ \
      {0x80000004, 0, 0, 0x20202020, 0x20202020, 0x20202020, 0x00202020}

const CpuidLeaf kNaples[] = {
    {0x00000000, 0, 0, 0x0000000d, 0x68747541, 0x444d4163, 0x69746e65},  // AuthenticAMD
    {0x00000001, 0, 0, 0x00800f12, 0x00400800, 0x7ed8320b, 0x178bfbff},
    {0x00000005, 0, 0, 0x00000040, 0x00000040, 0x00000003, 0x00000011},
    {0x00000006, 0, 0, 0x00000004, 0x00000000, 0x00000001, 0x00000000},
    {0x00000007, 0, I, 0x00000000, 0x209c01a9, 0x00000000, 0x00000000},
    {0x0000000d, 0, I, 0x00000007, 0x00000340, 0x00000340, 0x00000000},
    // recon.: XSAVEOPT/XSAVEC/XGETBV1/XSAVES (a 7601's cpuinfo lists all four), sizes as Rome.
    {0x0000000d, 1, I, 0x0000000f, 0x00000340, 0x00000000, 0x00000000},
    {0x0000000d, 2, I, 0x00000100, 0x00000240, 0x00000000, 0x00000000},  // recon.: AVX, 256 @ 576
    {0x80000000, 0, 0, 0x8000001f, 0x68747541, 0x444d4163, 0x69746e65},
    {0x80000001, 0, 0, 0x00800f12, 0x40000000, 0x35c233ff, 0x2fd3fbff},
    {0x80000002, 0, 0, 0x20444d41, 0x43595045, 0x35353720, 0x33205031},  // AMD EPYC 7551P 3
    {0x80000003, 0, 0, 0x6f432d32, 0x50206572, 0x65636f72, 0x726f7373},  // 2-Core Processor
    {0x80000004, 0, 0, 0x20202020, 0x20202020, 0x20202020, 0x00202020},
    {0x80000005, 0, 0, 0xff40ff40, 0xff40ff40, 0x20080140, 0x40040140},
    {0x80000006, 0, 0, 0x36006400, 0x56006400, 0x02006140, 0x0200c140},
    {0x80000007, 0, 0, 0x00000000, 0x0000001b, 0x00000000, 0x00006799},
    // EBX: dump 0x7; recon. bit 12 (IBPB), which microcode since 2018 adds (a 7601 shows ibpb).
    {0x80000008, 0, 0, 0x00003030, 0x00001007, 0x0000603f, 0x00000000},
    {0x8000000a, 0, 0, 0x00000001, 0x00008000, 0x00000000, 0x0001bcff},
    {0x80000019, 0, 0, 0xf040f040, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001a, 0, 0, 0x00000003, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001b, 0, 0, 0x000003ff, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001d, 0, I, 0x00004121, 0x01c0003f, 0x0000003f, 0x00000000},  // L1D 32K 8-way
    // recon. from Zen's cache geometry: L1I 64K 4-way, L2 512K 8-way, L3 8M 16-way per CCX.
    {0x8000001d, 1, I, 0x00004122, 0x00c0003f, 0x000000ff, 0x00000000},
    {0x8000001d, 2, I, 0x00004143, 0x01c0003f, 0x000003ff, 0x00000002},
    {0x8000001d, 3, I, 0x0001c163, 0x03c0003f, 0x00001fff, 0x00000001},
    {0x8000001e, 0, 0, 0x00000000, 0x00000100, 0x00000300, 0x00000000},  // 4 nodes (dies)
};

const CpuidLeaf kRome[] = {
    {0x00000000, 0, 0, 0x00000010, 0x68747541, 0x444d4163, 0x69746e65},
    {0x00000001, 0, 0, 0x00830f10, 0x00800800, 0x7ef8320b, 0x178bfbff},
    {0x00000005, 0, 0, 0x00000040, 0x00000040, 0x00000003, 0x00000011},
    {0x00000006, 0, 0, 0x00000004, 0x00000000, 0x00000001, 0x00000000},
    {0x00000007, 0, I, 0x00000000, 0x219c91a9, 0x00400004, 0x00000000},
    {0x0000000b, 0, I, 0x00000001, 0x00000002, 0x00000100, 0x00000000},
    {0x0000000b, 1, I, 0x00000007, 0x00000080, 0x00000201, 0x00000000},
    {0x0000000d, 0, I, 0x00000207, 0x00000340, 0x00000380, 0x00000000},
    {0x0000000d, 1, I, 0x0000000f, 0x00000340, 0x00000000, 0x00000000},
    {0x0000000d, 2, I, 0x00000100, 0x00000240, 0x00000000, 0x00000000},
    {0x0000000d, 9, I, 0x00000040, 0x00000340, 0x00000000, 0x00000000},  // as dumped
    {0x0000000f, 0, I, 0x00000000, 0x000000ff, 0x00000000, 0x00000002},
    {0x0000000f, 1, I, 0x00000000, 0x00000040, 0x000000ff, 0x00000007},
    {0x00000010, 0, I, 0x00000000, 0x00000002, 0x00000000, 0x00000000},
    {0x00000010, 1, I, 0x0000000f, 0x00000000, 0x00000004, 0x0000000f},
    {0x80000000, 0, 0, 0x80000020, 0x68747541, 0x444d4163, 0x69746e65},
    {0x80000001, 0, 0, 0x00830f10, 0x40000000, 0x75c237ff, 0x2fd3fbff},
    {0x80000002, 0, 0, 0x20444d41, 0x43595045, 0x34373720, 0x34362032},  // AMD EPYC 7742 64
    SEVEMU_BRAND_TAIL,
    {0x80000005, 0, 0, 0xff40ff40, 0xff40ff40, 0x20080140, 0x20080140},
    {0x80000006, 0, 0, 0x48006400, 0x68006400, 0x02006140, 0x08009140},
    {0x80000007, 0, 0, 0x00000000, 0x0000001b, 0x00000000, 0x00006799},
    {0x80000008, 0, 0, 0x00003030, 0x018ef757, 0x0000707f, 0x00010000},
    {0x8000000a, 0, 0, 0x00000001, 0x00008000, 0x00000000, 0x0013bcff},
    {0x80000019, 0, 0, 0xf040f040, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001a, 0, 0, 0x00000006, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001b, 0, 0, 0x000003ff, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001d, 0, I, 0x00004121, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 1, I, 0x00004122, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 2, I, 0x00004143, 0x01c0003f, 0x000003ff, 0x00000002},
    {0x8000001d, 3, I, 0x0001c163, 0x03c0003f, 0x00003fff, 0x00000001},
    {0x8000001e, 0, 0, 0x00000000, 0x00000100, 0x00000000, 0x00000000},
    {0x80000020, 0, I, 0x00000000, 0x00000002, 0x00000000, 0x00000000},
};

const CpuidLeaf kMilan[] = {
    {0x00000000, 0, 0, 0x00000010, 0x68747541, 0x444d4163, 0x69746e65},
    {0x00000001, 0, 0, 0x00a00f11, 0x00800800, 0x7efa320b, 0x178bfbff},
    {0x00000005, 0, 0, 0x00000040, 0x00000040, 0x00000003, 0x00000011},
    {0x00000006, 0, 0, 0x00000004, 0x00000000, 0x00000001, 0x00000000},
    {0x00000007, 0, I, 0x00000000, 0x219c97a9, 0x0040069c, 0x00000010},  // ECX: +OSPKE
    {0x0000000b, 0, I, 0x00000001, 0x00000002, 0x00000100, 0x00000000},
    {0x0000000b, 1, I, 0x00000007, 0x00000080, 0x00000201, 0x00000000},
    {0x0000000d, 0, I, 0x00000207, 0x00000340, 0x00000988, 0x00000000},
    {0x0000000d, 1, I, 0x0000000f, 0x00000350, 0x00001800, 0x00000000},
    {0x0000000d, 2, I, 0x00000100, 0x00000240, 0x00000000, 0x00000000},
    {0x0000000d, 9, I, 0x00000008, 0x00000980, 0x00000000, 0x00000000},
    {0x0000000d, 11, I, 0x00000010, 0x00000000, 0x00000001, 0x00000000},
    {0x0000000d, 12, I, 0x00000018, 0x00000000, 0x00000001, 0x00000000},
    {0x0000000f, 0, I, 0x00000000, 0x000000ff, 0x00000000, 0x00000002},
    {0x0000000f, 1, I, 0x00000000, 0x00000040, 0x000000ff, 0x00000007},
    {0x00000010, 0, I, 0x00000000, 0x00000002, 0x00000000, 0x00000000},
    {0x00000010, 1, I, 0x0000000f, 0x00000000, 0x00000004, 0x0000000f},
    {0x80000000, 0, 0, 0x80000023, 0x68747541, 0x444d4163, 0x69746e65},
    {0x80000001, 0, 0, 0x00a00f11, 0x40000000, 0x75c237ff, 0x2fd3fbff},
    {0x80000002, 0, 0, 0x20444d41, 0x43595045, 0x36373720, 0x34362033},  // AMD EPYC 7763 64
    SEVEMU_BRAND_TAIL,
    {0x80000005, 0, 0, 0xff40ff40, 0xff40ff40, 0x20080140, 0x20080140},
    {0x80000006, 0, 0, 0x48002200, 0x68004200, 0x02006140, 0x08009140},
    {0x80000007, 0, 0, 0x00000000, 0x0000003b, 0x00000000, 0x00006799},
    {0x80000008, 0, 0, 0x00003030, 0x91bef75f, 0x0000707f, 0x00010007},
    {0x8000000a, 0, 0, 0x00000001, 0x00008000, 0x00000000, 0x119b9cff},
    {0x80000019, 0, 0, 0xf040f040, 0xf0400000, 0x00000000, 0x00000000},
    {0x8000001a, 0, 0, 0x00000006, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001b, 0, 0, 0x000003ff, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001d, 0, I, 0x00004121, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 1, I, 0x00004122, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 2, I, 0x00004143, 0x01c0003f, 0x000003ff, 0x00000002},
    {0x8000001d, 3, I, 0x0003c163, 0x03c0003f, 0x00007fff, 0x00000001},
    {0x8000001e, 0, 0, 0x00000000, 0x00000100, 0x00000000, 0x00000000},
    {0x80000020, 0, I, 0x00000000, 0x00000002, 0x00000000, 0x00000000},
    {0x80000021, 0, 0, 0x0000204d, 0x00000000, 0x00000000, 0x00000000},
};

const CpuidLeaf kGenoa[] = {
    {0x00000000, 0, 0, 0x00000010, 0x68747541, 0x444d4163, 0x69746e65},
    {0x00000001, 0, 0, 0x00a10f11, 0x00c00800, 0x7efa320b, 0x178bfbff},
    {0x00000005, 0, 0, 0x00000040, 0x00000040, 0x00000003, 0x00000011},
    {0x00000006, 0, 0, 0x00000004, 0x00000000, 0x00000001, 0x00000000},
    {0x00000007, 0, I, 0x00000001, 0xf1bf97a9, 0x00415fde, 0x10000010},  // ECX: +OSPKE
    {0x00000007, 1, I, 0x00000020, 0x00000000, 0x00000000, 0x00000000},
    {0x0000000b, 0, I, 0x00000001, 0x00000002, 0x00000100, 0x00000000},
    {0x0000000b, 1, I, 0x00000008, 0x000000c0, 0x00000201, 0x00000000},
    {0x0000000d, 0, I, 0x000002e7, 0x00000980, 0x00000988, 0x00000000},
    {0x0000000d, 1, I, 0x0000000f, 0x00000990, 0x00001800, 0x00000000},
    {0x0000000d, 2, I, 0x00000100, 0x00000240, 0x00000000, 0x00000000},
    {0x0000000d, 5, I, 0x00000040, 0x00000340, 0x00000000, 0x00000000},
    {0x0000000d, 6, I, 0x00000200, 0x00000380, 0x00000000, 0x00000000},
    {0x0000000d, 7, I, 0x00000400, 0x00000580, 0x00000000, 0x00000000},
    {0x0000000d, 9, I, 0x00000008, 0x00000980, 0x00000000, 0x00000000},
    {0x0000000d, 11, I, 0x00000010, 0x00000000, 0x00000001, 0x00000000},
    {0x0000000d, 12, I, 0x00000018, 0x00000000, 0x00000001, 0x00000000},
    {0x0000000f, 0, I, 0x00000000, 0x000000ff, 0x00000000, 0x00000002},
    {0x0000000f, 1, I, 0x00000014, 0x00000040, 0x000000ff, 0x00000007},
    {0x00000010, 0, I, 0x00000000, 0x00000002, 0x00000000, 0x00000000},
    {0x00000010, 1, I, 0x0000000f, 0x00000000, 0x00000004, 0x0000000f},
    {0x80000000, 0, 0, 0x80000028, 0x68747541, 0x444d4163, 0x69746e65},
    {0x80000001, 0, 0, 0x00a10f11, 0x40000000, 0x75c237ff, 0x2fd3fbff},
    {0x80000002, 0, 0, 0x20444d41, 0x43595045, 0x35363920, 0x36392034},  // AMD EPYC 9654 96
    SEVEMU_BRAND_TAIL,
    {0x80000005, 0, 0, 0xff48ff40, 0xff48ff40, 0x20080140, 0x20080140},
    {0x80000006, 0, 0, 0x5c002200, 0x6c004200, 0x04006140, 0x0c009140},
    {0x80000007, 0, 0, 0x00000000, 0x0000003b, 0x00000000, 0x00006799},
    {0x80000008, 0, 0, 0x00003934, 0x79bef25f, 0x000080bf, 0x00010007},
    {0x8000000a, 0, 0, 0x00000001, 0x00008000, 0x00000000, 0x1fbfbcff},
    {0x80000019, 0, 0, 0xf048f040, 0xf0400000, 0x00000000, 0x00000000},
    {0x8000001a, 0, 0, 0x00000006, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001b, 0, 0, 0x00000bff, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001d, 0, I, 0x00004121, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 1, I, 0x00004122, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 2, I, 0x00004143, 0x01c0003f, 0x000007ff, 0x00000002},
    {0x8000001d, 3, I, 0x0003c163, 0x03c0003f, 0x00007fff, 0x00000001},
    {0x8000001e, 0, 0, 0x00000000, 0x00000100, 0x00000000, 0x00000000},
    {0x80000020, 0, I, 0x00000000, 0x0000001e, 0x00000000, 0x00000000},
    {0x80000020, 1, I, 0x0000000b, 0x00000000, 0x00000000, 0x0000000f},
    {0x80000020, 2, I, 0x0000000b, 0x00000000, 0x00000000, 0x0000000f},
    {0x80000020, 3, I, 0x00000000, 0x00000002, 0x0000007f, 0x00000000},
    {0x80000021, 0, 0, 0x00062fcf, 0x0000015c, 0x00000000, 0x00000000},
    {0x80000022, 0, 0, 0x00000007, 0x00304106, 0x00000fff, 0x00000000},
    {0x80000023, 0, 0, 0x00000001, 0x0000003f, 0x00000000, 0x00000000},
    {0x80000026, 0, I, 0x00000001, 0x00000002, 0x00000100, 0x00000000},
    {0x80000026, 1, I, 0x00000004, 0x00000010, 0x00000201, 0x00000000},
    {0x80000026, 2, I, 0x00000004, 0x00000010, 0x00000302, 0x00000000},
    {0x80000026, 3, I, 0x00000008, 0x000000c0, 0x00000403, 0x00000000},
};

const CpuidLeaf kTurin[] = {
    {0x00000000, 0, 0, 0x00000010, 0x68747541, 0x444d4163, 0x69746e65},
    {0x00000001, 0, 0, 0x00b00f21, 0x00c00800, 0x7efa320b, 0x178bfbff},  // EBX recon.: 192
    {0x00000005, 0, 0, 0x00000040, 0x00000040, 0x00000003, 0x00000021},
    {0x00000006, 0, 0, 0x00000004, 0x00000000, 0x00000001, 0x00000000},
    {0x00000007, 0, I, 0x00000001, 0xf1bf97ab, 0x19415fde, 0x10000110},  // ECX: +OSPKE
    {0x00000007, 1, I, 0x00000030, 0x00000000, 0x00000000, 0x00000000},
    {0x0000000b, 0, I, 0x00000001, 0x00000002, 0x00000100, 0x00000000},  // recon.: SMT
    {0x0000000b, 1, I, 0x00000008, 0x000000c0, 0x00000201, 0x00000000},  // recon.: 192
    {0x0000000d, 0, I, 0x000002e7, 0x00000980, 0x00000988, 0x00000000},
    {0x0000000d, 1, I, 0x0000000f, 0x00000990, 0x00001800, 0x00000000},
    {0x0000000d, 2, I, 0x00000100, 0x00000240, 0x00000000, 0x00000000},
    {0x0000000d, 5, I, 0x00000040, 0x00000340, 0x00000000, 0x00000000},
    {0x0000000d, 6, I, 0x00000200, 0x00000380, 0x00000000, 0x00000000},
    {0x0000000d, 7, I, 0x00000400, 0x00000580, 0x00000000, 0x00000000},
    {0x0000000d, 9, I, 0x00000008, 0x00000980, 0x00000000, 0x00000000},
    {0x0000000d, 11, I, 0x00000010, 0x00000000, 0x00000001, 0x00000000},
    {0x0000000d, 12, I, 0x00000018, 0x00000000, 0x00000001, 0x00000000},
    {0x0000000f, 0, I, 0x00000000, 0x00000fff, 0x00000000, 0x00000002},
    {0x0000000f, 1, I, 0x00000014, 0x00000040, 0x00000fff, 0x00000007},
    {0x00000010, 0, I, 0x00000000, 0x00000002, 0x00000000, 0x00000000},
    {0x00000010, 1, I, 0x0000000f, 0x00000000, 0x00000004, 0x0000000f},
    {0x80000000, 0, 0, 0x80000028, 0x68747541, 0x444d4163, 0x69746e65},
    {0x80000001, 0, 0, 0x00b00f21, 0x40000000, 0x75c237ff, 0x2fd3fbff},
    {0x80000002, 0, 0, 0x20444d41, 0x43595045, 0x35363920, 0x36392035},  // AMD EPYC 9655 96
    SEVEMU_BRAND_TAIL,
    {0x80000005, 0, 0, 0xff60ff40, 0xff60ff40, 0x300c0140, 0x20080140},
    {0x80000006, 0, 0, 0x40802040, 0x60804040, 0x04008140, 0x08009140},
    {0x80000007, 0, 0, 0x00000000, 0x0000003b, 0x00000000, 0x00006799},
    {0x80000008, 0, 0, 0x00003934, 0x79bef25f, 0x000080bf, 0x00010007},  // ECX recon.: 192
    {0x8000000a, 0, 0, 0x00000001, 0x00008000, 0x00000000, 0xffbfbdff},
    {0x80000019, 0, 0, 0xf060f040, 0x40200000, 0x00000000, 0x00000000},
    {0x8000001a, 0, 0, 0x0000000a, 0x00000000, 0x00000000, 0x00000000},
    {0x8000001b, 0, 0, 0x00081bff, 0x00000000, 0x00000000, 0x00000000},
    // EAX[25:14] recon.: each L1/L2 shared by 2 threads, the L3 by 16 (8 cores x 2).
    {0x8000001d, 0, I, 0x00004121, 0x02c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 1, I, 0x00004122, 0x01c0003f, 0x0000003f, 0x00000000},
    {0x8000001d, 2, I, 0x00004143, 0x03c0003f, 0x000003ff, 0x00000002},
    {0x8000001d, 3, I, 0x0003c163, 0x03c0003f, 0x00007fff, 0x00000001},
    {0x8000001e, 0, 0, 0x00000000, 0x00000100, 0x00000000, 0x00000000},  // recon.: 2 threads
    {0x80000020, 0, I, 0x00000000, 0x0000007e, 0x00000000, 0x00000000},
    {0x80000020, 1, I, 0x0000000c, 0x00000000, 0x00000000, 0x0000000f},
    {0x80000020, 2, I, 0x0000000c, 0x00000000, 0x00000000, 0x0000000f},
    {0x80000020, 3, I, 0x00000000, 0x00000002, 0x0000007f, 0x00000000},
    {0x80000020, 5, I, 0x00000014, 0x0000001f, 0x00000001, 0x00000000},
    {0x80000021, 0, 0, 0xd93fffcf, 0x00080382, 0x00000000, 0x00000000},
    {0x80000022, 0, 0, 0x00000007, 0x00304106, 0x00000fff, 0x00000000},
    {0x80000023, 0, 0, 0x00000001, 0x0000003f, 0x00000000, 0x00000000},
    {0x80000025, 0, 0, 0x00000aa4, 0x00000410, 0x00000000, 0x00000000},
    // recon.: levels SMT / CCX / CCD / socket as the 9654's (2, 16, 16, 192 threads).
    {0x80000026, 0, I, 0x00000001, 0x00000002, 0x00000100, 0x00000000},
    {0x80000026, 1, I, 0x00000004, 0x00000010, 0x00000201, 0x00000000},
    {0x80000026, 2, I, 0x00000004, 0x00000010, 0x00000302, 0x00000000},
    {0x80000026, 3, I, 0x00000008, 0x000000c0, 0x00000403, 0x00000000},
    {0x80000027, 0, 0, 0x00000003, 0x00000000, 0x00000000, 0x00000000},
};

#undef SEVEMU_BRAND_TAIL

// What /proc/cpuinfo needs beyond CPUID.
struct Model {
  const char* generation;
  const CpuidLeaf* leaves;
  size_t count;
  unsigned cores;      // per socket, 2 threads each
  unsigned mhz;        // base clock: "cpu MHz", and bogomips = 2 x the TSC in MHz
  uint32_t microcode;  // patch level; SNP generations take the low byte from the TCB (below)
  const char* bugs;    // "bugs" line, Linux ~6.12
};

template <size_t N>
constexpr size_t count_of(const CpuidLeaf (&)[N]) {
  return N;
}

// Microcode: Naples 0x0800126e as a 6.x EPYC 7601 shows it; Rome's is a recent patch level
// (recon.). For Milan/Genoa/Turin the low byte is the microcode SVN of Generation::snp_tcb
// (byte 7), as AMD numbers them (e.g. Milan patch 0x0a0011d5 has SVN 0xd5).
// Bugs: Naples is the 6.x 7601's line; the others are what the same kernel reports for the
// family (recon.): Zen 2 keeps retbleed and smt_rsb, Zen 3 and later only srso of the AMD ones.
const Model kModels[] = {
    {"naples", kNaples, count_of(kNaples), 32, 2000, 0x0800126e,
     "sysret_ss_attrs null_seg spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb srso div0"},
    {"rome", kRome, count_of(kRome), 64, 2250, 0x0830107c,
     "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb srso"},
    {"milan", kMilan, count_of(kMilan), 64, 2450, 0x0a001100,
     "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass srso"},
    {"genoa", kGenoa, count_of(kGenoa), 96, 2400, 0x0a101100,
     "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass srso"},
    {"turin", kTurin, count_of(kTurin), 96, 2600, 0x0b002100,
     "sysret_ss_attrs spectre_v1 spectre_v2 spec_store_bypass srso"},
};

const Model* find_model(const Generation& g) {
  for (const auto& m : kModels)
    if (strcmp(m.generation, g.name) == 0) return &m;
  return nullptr;
}

// ---- /proc/cpuinfo flags ---------------------------------------------------------------

// Linux capability words (enum cpuid_leafs / cpufeatures.h) this model fills.
enum Word {
  W_1_EDX = 0, W_8001_EDX = 1, W_LNX_1 = 3, W_1_ECX = 4, W_8001_ECX = 6, W_LNX_2 = 7,
  W_LNX_3 = 8, W_7_0_EBX = 9, W_D_1_EAX = 10, W_LNX_4 = 11, W_7_1_EAX = 12,
  W_8008_EBX = 13, W_6_EAX = 14, W_800A_EDX = 15, W_7_ECX = 16, W_8007_EBX = 17,
  W_7_EDX = 18, W_801F_EAX = 19, W_8021_EAX = 20, W_LNX_5 = 21, kWords = 22
};

constexpr unsigned F(unsigned word, unsigned bit) { return word * 32 + bit; }

// The names /proc/cpuinfo prints (the quoted ones of cpufeatures.h), for the words above.
struct FlagName {
  unsigned bit;
  const char* name;
};
const FlagName kFlagNames[] = {
    {F(0, 0), "fpu"}, {F(0, 1), "vme"}, {F(0, 2), "de"}, {F(0, 3), "pse"}, {F(0, 4), "tsc"},
    {F(0, 5), "msr"}, {F(0, 6), "pae"}, {F(0, 7), "mce"}, {F(0, 8), "cx8"}, {F(0, 9), "apic"},
    {F(0, 11), "sep"}, {F(0, 12), "mtrr"}, {F(0, 13), "pge"}, {F(0, 14), "mca"},
    {F(0, 15), "cmov"}, {F(0, 16), "pat"}, {F(0, 17), "pse36"}, {F(0, 18), "pn"},
    {F(0, 19), "clflush"}, {F(0, 21), "dts"}, {F(0, 22), "acpi"}, {F(0, 23), "mmx"},
    {F(0, 24), "fxsr"}, {F(0, 25), "sse"}, {F(0, 26), "sse2"}, {F(0, 27), "ss"},
    {F(0, 28), "ht"}, {F(0, 29), "tm"}, {F(0, 30), "ia64"}, {F(0, 31), "pbe"},
    {F(1, 11), "syscall"}, {F(1, 19), "mp"}, {F(1, 20), "nx"}, {F(1, 22), "mmxext"},
    {F(1, 25), "fxsr_opt"}, {F(1, 26), "pdpe1gb"}, {F(1, 27), "rdtscp"}, {F(1, 29), "lm"},
    {F(1, 30), "3dnowext"}, {F(1, 31), "3dnow"},
    {F(3, 8), "constant_tsc"}, {F(3, 16), "rep_good"}, {F(3, 17), "amd_lbr_v2"},
    {F(3, 19), "acc_power"}, {F(3, 20), "nopl"}, {F(3, 22), "xtopology"},
    {F(3, 24), "nonstop_tsc"}, {F(3, 25), "cpuid"}, {F(3, 26), "extd_apicid"},
    {F(3, 27), "amd_dcm"}, {F(3, 28), "aperfmperf"}, {F(3, 29), "rapl"},
    {F(4, 0), "pni"}, {F(4, 1), "pclmulqdq"}, {F(4, 2), "dtes64"}, {F(4, 3), "monitor"},
    {F(4, 4), "ds_cpl"}, {F(4, 5), "vmx"}, {F(4, 6), "smx"}, {F(4, 7), "est"},
    {F(4, 8), "tm2"}, {F(4, 9), "ssse3"}, {F(4, 10), "cid"}, {F(4, 11), "sdbg"},
    {F(4, 12), "fma"}, {F(4, 13), "cx16"}, {F(4, 14), "xtpr"}, {F(4, 15), "pdcm"},
    {F(4, 17), "pcid"}, {F(4, 18), "dca"}, {F(4, 19), "sse4_1"}, {F(4, 20), "sse4_2"},
    {F(4, 21), "x2apic"}, {F(4, 22), "movbe"}, {F(4, 23), "popcnt"},
    {F(4, 24), "tsc_deadline_timer"}, {F(4, 25), "aes"}, {F(4, 26), "xsave"},
    {F(4, 28), "avx"}, {F(4, 29), "f16c"}, {F(4, 30), "rdrand"}, {F(4, 31), "hypervisor"},
    {F(6, 0), "lahf_lm"}, {F(6, 1), "cmp_legacy"}, {F(6, 2), "svm"}, {F(6, 3), "extapic"},
    {F(6, 4), "cr8_legacy"}, {F(6, 5), "abm"}, {F(6, 6), "sse4a"}, {F(6, 7), "misalignsse"},
    {F(6, 8), "3dnowprefetch"}, {F(6, 9), "osvw"}, {F(6, 10), "ibs"}, {F(6, 11), "xop"},
    {F(6, 12), "skinit"}, {F(6, 13), "wdt"}, {F(6, 15), "lwp"}, {F(6, 16), "fma4"},
    {F(6, 17), "tce"}, {F(6, 19), "nodeid_msr"}, {F(6, 21), "tbm"}, {F(6, 22), "topoext"},
    {F(6, 23), "perfctr_core"}, {F(6, 24), "perfctr_nb"}, {F(6, 26), "bpext"},
    {F(6, 27), "ptsc"}, {F(6, 28), "perfctr_llc"}, {F(6, 29), "mwaitx"},
    {F(7, 2), "cpb"}, {F(7, 4), "cat_l3"}, {F(7, 6), "cdp_l3"}, {F(7, 8), "hw_pstate"},
    {F(7, 9), "proc_feedback"}, {F(7, 17), "ssbd"}, {F(7, 18), "mba"},
    {F(7, 20), "perfmon_v2"}, {F(7, 25), "ibrs"}, {F(7, 26), "ibpb"}, {F(7, 27), "stibp"},
    {F(8, 15), "vmmcall"},
    {F(9, 0), "fsgsbase"}, {F(9, 1), "tsc_adjust"}, {F(9, 2), "sgx"}, {F(9, 3), "bmi1"},
    {F(9, 4), "hle"}, {F(9, 5), "avx2"}, {F(9, 7), "smep"}, {F(9, 8), "bmi2"},
    {F(9, 9), "erms"}, {F(9, 10), "invpcid"}, {F(9, 11), "rtm"}, {F(9, 12), "cqm"},
    {F(9, 14), "mpx"}, {F(9, 15), "rdt_a"}, {F(9, 16), "avx512f"}, {F(9, 17), "avx512dq"},
    {F(9, 18), "rdseed"}, {F(9, 19), "adx"}, {F(9, 20), "smap"}, {F(9, 21), "avx512ifma"},
    {F(9, 23), "clflushopt"}, {F(9, 24), "clwb"}, {F(9, 25), "intel_pt"},
    {F(9, 26), "avx512pf"}, {F(9, 27), "avx512er"}, {F(9, 28), "avx512cd"},
    {F(9, 29), "sha_ni"}, {F(9, 30), "avx512bw"}, {F(9, 31), "avx512vl"},
    {F(10, 0), "xsaveopt"}, {F(10, 1), "xsavec"}, {F(10, 2), "xgetbv1"}, {F(10, 3), "xsaves"},
    {F(11, 0), "cqm_llc"}, {F(11, 1), "cqm_occup_llc"}, {F(11, 2), "cqm_mbm_total"},
    {F(11, 3), "cqm_mbm_local"}, {F(11, 23), "user_shstk"},
    {F(12, 4), "avx_vnni"}, {F(12, 5), "avx512_bf16"}, {F(12, 17), "fred"}, {F(12, 26), "lam"},
    {F(13, 0), "clzero"}, {F(13, 1), "irperf"}, {F(13, 2), "xsaveerptr"}, {F(13, 4), "rdpru"},
    {F(13, 9), "wbnoinvd"}, {F(13, 23), "amd_ppin"}, {F(13, 25), "virt_ssbd"},
    {F(13, 27), "cppc"}, {F(13, 31), "brs"},
    {F(14, 0), "dtherm"}, {F(14, 1), "ida"}, {F(14, 2), "arat"}, {F(14, 4), "pln"},
    {F(14, 6), "pts"}, {F(14, 7), "hwp"}, {F(14, 8), "hwp_notify"},
    {F(14, 9), "hwp_act_window"}, {F(14, 10), "hwp_epp"}, {F(14, 11), "hwp_pkg_req"},
    {F(14, 19), "hfi"},
    {F(15, 0), "npt"}, {F(15, 1), "lbrv"}, {F(15, 2), "svm_lock"}, {F(15, 3), "nrip_save"},
    {F(15, 4), "tsc_scale"}, {F(15, 5), "vmcb_clean"}, {F(15, 6), "flushbyasid"},
    {F(15, 7), "decodeassists"}, {F(15, 10), "pausefilter"}, {F(15, 12), "pfthreshold"},
    {F(15, 13), "avic"}, {F(15, 15), "v_vmsave_vmload"}, {F(15, 16), "vgif"},
    {F(15, 18), "x2avic"}, {F(15, 20), "v_spec_ctrl"}, {F(15, 25), "vnmi"},
    {F(16, 1), "avx512vbmi"}, {F(16, 2), "umip"}, {F(16, 3), "pku"}, {F(16, 4), "ospke"},
    {F(16, 5), "waitpkg"}, {F(16, 6), "avx512_vbmi2"}, {F(16, 8), "gfni"}, {F(16, 9), "vaes"},
    {F(16, 10), "vpclmulqdq"}, {F(16, 11), "avx512_vnni"}, {F(16, 12), "avx512_bitalg"},
    {F(16, 13), "tme"}, {F(16, 14), "avx512_vpopcntdq"}, {F(16, 16), "la57"},
    {F(16, 22), "rdpid"}, {F(16, 24), "bus_lock_detect"}, {F(16, 25), "cldemote"},
    {F(16, 27), "movdiri"}, {F(16, 28), "movdir64b"}, {F(16, 29), "enqcmd"},
    {F(16, 30), "sgx_lc"},
    {F(17, 0), "overflow_recov"}, {F(17, 1), "succor"}, {F(17, 3), "smca"},
    {F(18, 2), "avx512_4vnniw"}, {F(18, 3), "avx512_4fmaps"}, {F(18, 4), "fsrm"},
    {F(18, 8), "avx512_vp2intersect"}, {F(18, 10), "md_clear"}, {F(18, 14), "serialize"},
    {F(18, 16), "tsxldtrk"}, {F(18, 18), "pconfig"}, {F(18, 19), "arch_lbr"},
    {F(18, 20), "ibt"}, {F(18, 22), "amx_bf16"}, {F(18, 23), "avx512_fp16"},
    {F(18, 24), "amx_tile"}, {F(18, 25), "amx_int8"}, {F(18, 28), "flush_l1d"},
    {F(18, 29), "arch_capabilities"},
    {F(19, 0), "sme"}, {F(19, 1), "sev"}, {F(19, 3), "sev_es"}, {F(19, 4), "sev_snp"},
    {F(19, 14), "debug_swap"}, {F(19, 28), "svsm"},
    {F(21, 0), "amd_lbr_pmc_freeze"},
};

// x86_power_flags[] (powerflags.c): CPUID 0x80000007 EDX; bit 8 (invariant TSC) prints nothing.
const char* const kPowerFlags[] = {
    "ts", "fid", "vid", "ttp", "tm", "stc", "100mhzsteps", "hwpstate", "", "cpb", "eff_freq_ro",
    "proc_feedback", "acc_power"};

struct Regs {
  uint32_t a, b, c, d;
};

class Cpu {
 public:
  explicit Cpu(const Generation& g) : g_(g) {}
  Regs operator()(uint32_t leaf, uint32_t sub = 0) const {
    uint32_t r[4];
    cpu_model_cpuid(g_, leaf, sub, r);
    return {r[0], r[1], r[2], r[3]};
  }

 private:
  const Generation& g_;
};

std::bitset<kWords * 32> capabilities(const Generation& g, bool host_snp, const Cpu& cpu) {
  std::bitset<kWords * 32> caps;
  auto word = [&](unsigned w, uint32_t v) {
    for (unsigned b = 0; b < 32; b++)
      if (v & (1u << b)) caps.set(F(w, b));
  };
  auto bit = [](uint32_t v, unsigned b) { return (v >> b) & 1; };
  const Regs l1 = cpu(1), l6 = cpu(6), l7 = cpu(7, 0), l7s1 = cpu(7, 1), ld1 = cpu(0xd, 1);
  const Regs e1 = cpu(0x80000001), e7 = cpu(0x80000007), e8 = cpu(0x80000008);
  const Regs ea = cpu(0x8000000a), e1e = cpu(0x8000001e), e1f = cpu(0x8000001f);
  const Regs e21 = cpu(0x80000021), e22 = cpu(0x80000022);
  const unsigned base_family = (l1.a >> 8) & 0xf;
  const unsigned family = base_family + (base_family == 0xf ? (l1.a >> 20) & 0xff : 0);

  // The words that are CPUID registers as they are (get_cpu_cap).
  word(W_1_EDX, l1.d);
  word(W_8001_EDX, e1.d);
  word(W_1_ECX, l1.c);
  word(W_8001_ECX, e1.c);
  word(W_7_0_EBX, l7.b);
  word(W_D_1_EAX, ld1.a);
  word(W_7_1_EAX, l7s1.a);
  word(W_8008_EBX, e8.b);
  word(W_6_EAX, l6.a);
  word(W_800A_EDX, ea.d);
  word(W_7_ECX, l7.c);
  word(W_8007_EBX, e7.b);
  word(W_7_EDX, l7.d);
  word(W_801F_EAX, e1f.a);
  word(W_8021_EAX, e21.a);

  // Linux-defined bits (word 3) set by early_init_amd / init_amd / the topology code.
  if (bit(e7.d, 8)) caps.set(F(W_LNX_1, 8)).set(F(W_LNX_1, 24));  // constant_tsc, nonstop_tsc
  caps.set(F(W_LNX_1, 16));                                        // rep_good: family >= 10h
  if (bit(e22.a, 1)) caps.set(F(W_LNX_1, 17));                     // amd_lbr_v2
  if (bit(e7.d, 12)) caps.set(F(W_LNX_1, 19));                     // acc_power
  caps.set(F(W_LNX_1, 20));                                        // nopl (64-bit)
  if (cpu(0xb, 0).b != 0) caps.set(F(W_LNX_1, 22));                // xtopology: leaf 0xB parsed
  caps.set(F(W_LNX_1, 25)).set(F(W_LNX_1, 26));                    // cpuid, extd_apicid
  if (((e1e.c >> 8) & 7) > 0) caps.set(F(W_LNX_1, 27));            // amd_dcm: > 1 node
  if (bit(l6.c, 0)) caps.set(F(W_LNX_1, 28));                      // aperfmperf
  if (bit(e7.d, 14)) caps.set(F(W_LNX_1, 29));                     // rapl

  // Word 7: scattered.c and init_speculation_control.
  const Regs l10 = cpu(0x10, 0), l10s1 = cpu(0x10, 1);
  if (bit(e7.d, 9)) caps.set(F(W_LNX_2, 2));                       // cpb
  if (bit(l10.b, 1)) caps.set(F(W_LNX_2, 4));                      // cat_l3
  if (bit(l10s1.c, 2)) caps.set(F(W_LNX_2, 6));                    // cdp_l3
  if (bit(e7.d, 7)) caps.set(F(W_LNX_2, 8));                       // hw_pstate
  if (bit(e7.d, 11)) caps.set(F(W_LNX_2, 9));                      // proc_feedback
  const bool amd_ssbd = bit(e8.b, 24), virt_ssbd = bit(e8.b, 25);
  // ssbd: the SSBD MSR, the virtual one, or (families 15h-17h) the LS_CFG MSR (bsp_init_amd).
  if (amd_ssbd || virt_ssbd || (family >= 0x15 && family <= 0x17)) caps.set(F(W_LNX_2, 17));
  if (amd_ssbd) caps.reset(F(W_8008_EBX, 25));                     // virt_ssbd dropped
  if (bit(e8.b, 6) || bit(l10.b, 3)) caps.set(F(W_LNX_2, 18));     // mba
  if (bit(e22.a, 0)) caps.set(F(W_LNX_2, 20));                     // perfmon_v2
  if (bit(e8.b, 14)) caps.set(F(W_LNX_2, 25));                     // ibrs (AMD_IBRS)
  if (bit(e8.b, 12)) caps.set(F(W_LNX_2, 26));                     // ibpb (AMD_IBPB)
  if (bit(e8.b, 15)) caps.set(F(W_LNX_2, 27));                     // stibp (AMD_STIBP)
  caps.set(F(W_LNX_3, 15));                                        // vmmcall

  // Word 11: resctrl monitoring leaves, and user shadow stacks (SHSTK + XSAVES with CET_U).
  const Regs lf = cpu(0xf, 0), lfs1 = cpu(0xf, 1);
  if (bit(lf.d, 1)) caps.set(F(W_LNX_4, 0));
  if (bit(lfs1.d, 0)) caps.set(F(W_LNX_4, 1));
  if (bit(lfs1.d, 1)) caps.set(F(W_LNX_4, 2));
  if (bit(lfs1.d, 2)) caps.set(F(W_LNX_4, 3));
  if (bit(l7.c, 7) && bit(ld1.a, 3) && bit(ld1.c, 11)) caps.set(F(W_LNX_4, 23));
  if (bit(e22.a, 2)) caps.set(F(W_LNX_5, 0));                      // amd_lbr_pmc_freeze

  // Memory encryption (early_detect_mem_encrypt): the BIOS enabled it (SYSCFG.MemEncryptionModEn)
  // and the kernel runs with it active (mem_encrypt=on), so sme, sev and sev_es stay as CPUID
  // has them; sev_snp only where the host enabled SNP (bsp_determine_snp: an RMP table set up by
  // the BIOS), else the kernel clears it.
  if (!g.snp || !host_snp) caps.reset(F(W_801F_EAX, 4));
  return caps;
}

std::string flags_line(const Generation& g, bool host_snp, const Cpu& cpu) {
  const auto caps = capabilities(g, host_snp, cpu);
  std::string s;
  for (const auto& f : kFlagNames)  // kFlagNames is in bit order, as the kernel prints
    if (caps.test(f.bit)) {
      s += ' ';
      s += f.name;
    }
  return s;
}

std::string power_line(uint32_t edx) {
  std::string s;
  for (unsigned i = 0; i < 32; i++) {
    if (!(edx & (1u << i))) continue;
    if (i < sizeof kPowerFlags / sizeof kPowerFlags[0]) {
      if (*kPowerFlags[i]) s += std::string(" ") + kPowerFlags[i];
    } else {
      s += " [" + std::to_string(i) + "]";
    }
  }
  return s;
}

std::string brand(const Cpu& cpu) {
  char b[49] = {};
  for (uint32_t i = 0; i < 3; i++) {
    Regs r = cpu(0x80000002 + i);
    memcpy(b + 16 * i, &r.a, 4);
    memcpy(b + 16 * i + 4, &r.b, 4);
    memcpy(b + 16 * i + 8, &r.c, 4);
    memcpy(b + 16 * i + 12, &r.d, 4);
  }
  std::string s(b);
  size_t first = s.find_first_not_of(' '), last = s.find_last_not_of(' ');
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

}  // namespace

const std::vector<CpuidLeaf>& cpuid_leaves(const Generation& g) {
  static std::mutex mu;
  static std::map<const Generation*, std::vector<CpuidLeaf>> tables;
  std::lock_guard<std::mutex> lock(mu);
  auto it = tables.find(&g);
  if (it != tables.end()) return it->second;
  std::vector<CpuidLeaf> v;
  if (const Model* m = find_model(g)) {
    v.assign(m->leaves, m->leaves + m->count);
    v.push_back({0x8000001f, 0, 0, g.cpuid_8000001f[0], g.cpuid_8000001f[1], g.cpuid_8000001f[2],
                 g.cpuid_8000001f[3]});
    std::sort(v.begin(), v.end(), [](const CpuidLeaf& a, const CpuidLeaf& b) {
      return a.function != b.function ? a.function < b.function : a.index < b.index;
    });
  }
  return tables.emplace(&g, std::move(v)).first->second;
}

bool cpu_model_cpuid(const Generation& g, uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
  out[0] = out[1] = out[2] = out[3] = 0;
  const std::vector<CpuidLeaf>& leaves = cpuid_leaves(g);
  // The class's first leaf (0 or 0x80000000) holds its highest leaf in EAX.
  const uint32_t base = leaf & 0x80000000u;
  uint32_t max = 0;
  bool have_base = false;
  for (const auto& l : leaves)
    if (l.function == base) {
      max = l.eax;
      have_base = true;
      break;
    }
  if (!have_base || leaf > max) return false;
  for (const auto& l : leaves) {
    if (l.function != leaf) continue;
    if ((l.flags & kCpuidFlagSignificantIndex) && l.index != subleaf) continue;
    out[0] = l.eax;
    out[1] = l.ebx;
    out[2] = l.ecx;
    out[3] = l.edx;
    return true;
  }
  if (leaf == 0xb) out[2] = subleaf & 0xff;  // beyond the last level: type 0, ECX[7:0] = input
  return true;
}

std::string cpuinfo_text(const Generation& g, bool host_snp, unsigned ncpus) {
  const Model* m = find_model(g);
  if (!m) return "";
  if (ncpus == 0) ncpus = 1;
  const Cpu cpu(g);
  const Regs l0 = cpu(0), l1 = cpu(1), e6 = cpu(0x80000006), e7 = cpu(0x80000007);
  const Regs e8 = cpu(0x80000008);

  const unsigned base_family = (l1.a >> 8) & 0xf, base_model = (l1.a >> 4) & 0xf;
  const unsigned family = base_family + (base_family == 0xf ? (l1.a >> 20) & 0xff : 0);
  const unsigned model = base_model | (family >= 0xf ? ((l1.a >> 16) & 0xf) << 4 : 0);
  const unsigned stepping = l1.a & 0xf;
  const uint32_t microcode = g.snp ? m->microcode | uint32_t(g.snp_tcb >> 56) : m->microcode;
  const unsigned clflush = ((l1.b >> 8) & 0xff) * 8;
  const unsigned tlb = ((e6.b >> 16) & 0xfff) + (e6.b & 0xfff);  // cpu_detect_cache_sizes
  const unsigned l2_kb = e6.c >> 16;
  // x86_phys_bits minus the SME/SEV reduction (the BIOS enabled memory encryption).
  const unsigned reduction = (g.cpuid_8000001f[1] >> 6) & 0x3f;
  const unsigned phys = (e8.a & 0xff) - reduction, virt = (e8.a >> 8) & 0xff;
  unsigned apic_bits = (e8.c >> 12) & 0xf;
  if (apic_bits == 0)
    while ((1u << apic_bits) < 2 * m->cores) apic_bits++;

  const std::string name = brand(cpu), flags = flags_line(g, host_snp, cpu), power = power_line(e7.d);

  // Processors in the order Linux numbers them on EPYC (the MADT's): every core's first
  // thread, then the second threads, package by package. `ncpus` of them are online.
  const unsigned per_pkg = 2 * m->cores;
  std::string out;
  char buf[512];
  for (unsigned i = 0; i < ncpus; i++) {
    const unsigned pkg = i / per_pkg, j = i % per_pkg;
    const unsigned core = j % m->cores, thread = j / m->cores;
    const unsigned apicid = (pkg << apic_bits) | (core << 1) | thread;
    const unsigned in_pkg = std::min(per_pkg, ncpus - pkg * per_pkg);  // siblings
    const unsigned cores_in_pkg = std::min(m->cores, in_pkg);
    snprintf(buf, sizeof buf,
             "processor\t: %u\n"
             "vendor_id\t: AuthenticAMD\n"
             "cpu family\t: %u\n"
             "model\t\t: %u\n"
             "model name\t: %s\n"
             "stepping\t: %u\n"
             "microcode\t: 0x%x\n"
             "cpu MHz\t\t: %u.000\n"
             "cache size\t: %u KB\n"
             "physical id\t: %u\n"
             "siblings\t: %u\n"
             "core id\t\t: %u\n"
             "cpu cores\t: %u\n"
             "apicid\t\t: %u\n"
             "initial apicid\t: %u\n"
             "fpu\t\t: yes\n"
             "fpu_exception\t: yes\n"
             "cpuid level\t: %u\n"
             "wp\t\t: yes\n",
             i, family, model, name.c_str(), stepping, microcode, m->mhz, l2_kb, pkg, in_pkg,
             core, cores_in_pkg, apicid, apicid, l0.a);
    out += buf;
    out += "flags\t\t:" + flags + "\n";
    out += std::string("bugs\t\t: ") + m->bugs + "\n";
    snprintf(buf, sizeof buf,
             "bogomips\t: %u.00\n"
             "TLB size\t: %u 4K pages\n"
             "clflush size\t: %u\n"
             "cache_alignment\t: %u\n"
             "address sizes\t: %u bits physical, %u bits virtual\n",
             2 * m->mhz, tlb, clflush, clflush, phys, virt);
    out += buf;
    out += "power management:" + power + "\n\n";
  }
  return out;
}

}  // namespace sevemu
