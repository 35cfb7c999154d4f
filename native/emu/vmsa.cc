#include "vmsa.h"

#include <cerrno>
#include <cpuid.h>
#include <cstring>
#include <linux/kvm.h>

#include "real_libc.h"
#include "uapi/kvm_flex.h"

namespace sevemu {
namespace {

// Offsets in struct sev_es_save_area.
enum : size_t {
  kEs = 0x00, kCs = 0x10, kSs = 0x20, kDs = 0x30, kFs = 0x40, kGs = 0x50,
  kGdtr = 0x60, kLdtr = 0x70, kIdtr = 0x80, kTr = 0x90,
  kCpl = 0xCB, kEfer = 0xD0, kXss = 0x140, kCr4 = 0x148, kCr3 = 0x150, kCr0 = 0x158,
  kDr7 = 0x160, kDr6 = 0x168, kRflags = 0x170, kRip = 0x178, kRsp = 0x1D8, kRax = 0x1F8,
  kStar = 0x200, kLstar = 0x208, kCstar = 0x210, kSfmask = 0x218, kKernelGsBase = 0x220,
  kSysenterCs = 0x228, kSysenterEsp = 0x230, kSysenterEip = 0x238, kCr2 = 0x240,
  kGPat = 0x268, kDbgctl = 0x270, kPkru = 0x2E8, kRcx = 0x308, kRdx = 0x310, kRbx = 0x318,
  kRbp = 0x328, kRsi = 0x330, kRdi = 0x338, kR8 = 0x340, kSevFeatures = 0x3B0,
  kXcr0 = 0x3E8, kX87Dp = 0x400, kMxcsr = 0x408, kX87Ftw = 0x40C, kX87Fsw = 0x40E,
  kX87Fcw = 0x410, kX87Fop = 0x412, kX87Rip = 0x418, kFpregX87 = 0x420, kFpregXmm = 0x470,
  kFpregYmm = 0x570,
};

constexpr uint64_t kDr7Fixed1 = 0x400;
constexpr size_t kXsaveSize = 4096;
constexpr uint64_t kCr0Cd = 1ull << 30, kCr0Nw = 1ull << 29;
constexpr uint64_t kCr4Mce = 1ull << 6;
constexpr uint64_t kEferSvme = 1ull << 12;

template <typename T>
void put(uint8_t* page, size_t off, T v) {
  memcpy(page + off, &v, sizeof v);
}

// svm_set_segment: the VMCB's 12-bit attribute from a kvm_segment.
void put_segment(uint8_t* page, size_t off, const kvm_segment& s) {
  uint16_t attrib = uint16_t((s.type & 0xf) | (s.s & 1) << 4 | (s.dpl & 3) << 5 |
                             ((s.present & 1) && !s.unusable) << 7 | (s.avl & 1) << 8 |
                             (s.l & 1) << 9 | (s.db & 1) << 10 | (s.g & 1) << 11);
  put<uint16_t>(page, off, s.selector);
  put<uint16_t>(page, off + 2, attrib);
  put<uint32_t>(page, off + 4, s.limit);
  put<uint64_t>(page, off + 8, s.base);
}

// svm_set_gdt / svm_set_idt: base and limit only (selector and attributes stay 0).
void put_dtable(uint8_t* page, size_t off, const kvm_dtable& d) {
  put<uint32_t>(page, off + 4, d.limit);
  put<uint64_t>(page, off + 8, d.base);
}

// One MSR through KVM_GET_MSRS; 0 when KVM does not report it. (The C ioctl number and
// header size: see uapi/kvm_flex.h for why <linux/kvm.h>'s are wrong in C++.)
uint64_t get_msr(const VcpuIoctl& vcpu, uint32_t index) {
  alignas(8) uint8_t buf[sizeof(uapi::kvm_msrs_header) + sizeof(kvm_msr_entry)] = {};
  auto* hdr = reinterpret_cast<uapi::kvm_msrs_header*>(buf);
  auto* entry = reinterpret_cast<kvm_msr_entry*>(buf + sizeof(uapi::kvm_msrs_header));
  hdr->nmsrs = 1;
  entry->index = index;
  return vcpu(uapi::KVMIO_GET_MSRS, buf) == 1 ? entry->data : 0;
}

int ioctl_or_errno(const VcpuIoctl& vcpu, unsigned long req, void* arg) {
  long r = vcpu(req, arg);
  return r < 0 ? int(r) : 0;
}

// The standard-format XSAVE offset of state component `i` (CPUID 0xD sub-leaf i, EBX).
uint32_t xsave_offset(unsigned i) {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(0xD, i, &a, &b, &c, &d)) return 0;
  return b;
}

void put_fpu(uint8_t* page, const uint8_t* xs) {
  // struct fxregs_state: cwd@0 swd@2 twd@4 fop@6 rip@8 rdp@16 mxcsr@24 st_space@32 xmm@160.
  uint16_t cwd, swd, twd, fop;
  uint32_t mxcsr;
  uint64_t rip, rdp;
  memcpy(&cwd, xs, 2);
  memcpy(&swd, xs + 2, 2);
  memcpy(&twd, xs + 4, 2);
  memcpy(&fop, xs + 6, 2);
  memcpy(&rip, xs + 8, 8);
  memcpy(&rdp, xs + 16, 8);
  memcpy(&mxcsr, xs + 24, 4);
  put(page, kX87Dp, rdp);
  put(page, kMxcsr, mxcsr);
  put(page, kX87Ftw, twd);
  put(page, kX87Fsw, swd);
  put(page, kX87Fcw, cwd);
  put(page, kX87Fop, fop);
  put(page, kX87Rip, rip);  // x87_ds / x87_cs stay 0
  // 8 x 8 bytes (bytes 0-7 of each register), then 8 x 2 bytes (bytes 8-9).
  for (int i = 0; i < 8; i++) {
    const uint8_t* s = xs + 32 + i * 16;
    memcpy(page + kFpregX87 + i * 8, s, 8);
    page[kFpregX87 + 64 + i * 2] = s[8];
    page[kFpregX87 + 64 + i * 2 + 1] = s[9];
  }
  memcpy(page + kFpregXmm, xs + 160, 256);
  // get_xsave_addr(XFEATURE_YMM): absent (all zero) unless XSTATE_BV has it.
  uint64_t xstate_bv;
  memcpy(&xstate_bv, xs + 512, 8);
  uint32_t ymm = xsave_offset(2);
  if ((xstate_bv & (1u << 2)) && ymm && ymm + 256 <= kXsaveSize)
    memcpy(page + kFpregYmm, xs + ymm, 256);
}

}  // namespace

int build_vmsa(const VcpuIoctl& fd, uint64_t sev_features, bool with_fpu, uint8_t page[kVmsaSize]) {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_debugregs dbg{};
  int r;
  if ((r = ioctl_or_errno(fd, KVM_GET_REGS, &regs)) || (r = ioctl_or_errno(fd, KVM_GET_SREGS, &sregs)) ||
      (r = ioctl_or_errno(fd, KVM_GET_DEBUGREGS, &dbg)))
    return r;
  // "Check some debug related fields before encrypting the VMSA".
  if (dbg.dr7 & ~kDr7Fixed1) return -EINVAL;

  memset(page, 0, kVmsaSize);
  // The VMCB save area (memcpy(save, &svm->vmcb->save, ...)).
  put_segment(page, kEs, sregs.es);
  put_segment(page, kCs, sregs.cs);
  put_segment(page, kSs, sregs.ss);
  put_segment(page, kDs, sregs.ds);
  put_segment(page, kFs, sregs.fs);
  put_segment(page, kGs, sregs.gs);
  put_dtable(page, kGdtr, sregs.gdt);
  put_segment(page, kLdtr, sregs.ldt);
  put_dtable(page, kIdtr, sregs.idt);
  put_segment(page, kTr, sregs.tr);
  page[kCpl] = uint8_t(sregs.ss.dpl & 3);                   // svm_set_segment(SS)
  put<uint64_t>(page, kEfer, sregs.efer | kEferSvme);         // svm_set_efer
  put<uint64_t>(page, kCr4, sregs.cr4 | kCr4Mce);             // svm_set_cr4: host CR4.MCE
  put<uint64_t>(page, kCr3, sregs.cr3);                       // NPT: the guest's CR3
  put<uint64_t>(page, kCr0, sregs.cr0 & ~(kCr0Cd | kCr0Nw));  // KVM_X86_QUIRK_CD_NW_CLEARED
  put<uint64_t>(page, kDr7, dbg.dr7);
  put<uint64_t>(page, kRflags, regs.rflags);
  put<uint64_t>(page, kStar, get_msr(fd, 0xC0000081));
  put<uint64_t>(page, kLstar, get_msr(fd, 0xC0000082));
  put<uint64_t>(page, kCstar, get_msr(fd, 0xC0000083));
  put<uint64_t>(page, kSfmask, get_msr(fd, 0xC0000084));
  put<uint64_t>(page, kKernelGsBase, get_msr(fd, 0xC0000102));
  put<uint64_t>(page, kSysenterCs, get_msr(fd, 0x174));
  put<uint64_t>(page, kSysenterEsp, get_msr(fd, 0x175));
  put<uint64_t>(page, kSysenterEip, get_msr(fd, 0x176));
  // VMCB CR2 is loaded from vcpu->arch.cr2 only on VMRUN: 0 before the first run.
  put<uint64_t>(page, kGPat, get_msr(fd, 0x277));
  put<uint64_t>(page, kDbgctl, get_msr(fd, 0x1D9));

  // "Sync registers".
  put<uint64_t>(page, kRax, regs.rax);
  put<uint64_t>(page, kRbx, regs.rbx);
  put<uint64_t>(page, kRcx, regs.rcx);
  put<uint64_t>(page, kRdx, regs.rdx);
  put<uint64_t>(page, kRsp, regs.rsp);
  put<uint64_t>(page, kRbp, regs.rbp);
  put<uint64_t>(page, kRsi, regs.rsi);
  put<uint64_t>(page, kRdi, regs.rdi);
  const uint64_t hi[8] = {regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15};
  for (int i = 0; i < 8; i++) put<uint64_t>(page, kR8 + 8 * i, hi[i]);
  put<uint64_t>(page, kRip, regs.rip);

  // "Sync some non-GPR registers": XCR0, PKRU, XSS, DR6, then sev_features.
  kvm_xcrs xcrs{};
  uint64_t xcr0 = 1;  // x87 only, the reset value
  if (fd(KVM_GET_XCRS, &xcrs) == 0)
    for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
      if (xcrs.xcrs[i].xcr == 0) xcr0 = xcrs.xcrs[i].value;
  put<uint64_t>(page, kXcr0, xcr0);
  put<uint64_t>(page, kXss, get_msr(fd, 0xDA0));
  put<uint64_t>(page, kDr6, dbg.dr6);
  put<uint64_t>(page, kSevFeatures, sev_features);

  // KVM_GET_XSAVE fills the legacy 4096-byte struct kvm_xsave (standard format).
  alignas(64) static thread_local uint8_t xs[kXsaveSize];
  memset(xs, 0, sizeof xs);
  bool have_xsave = fd(uapi::KVMIO_GET_XSAVE, xs) == 0;
  uint64_t xstate_bv = 0;
  memcpy(&xstate_bv, xs + 512, 8);
  uint32_t pkru_off = xsave_offset(9);
  if (have_xsave && (xstate_bv & (1u << 9)) && pkru_off && pkru_off + 4 <= kXsaveSize)
    memcpy(page + kPkru, xs + pkru_off, 4);
  // "Skip FPU and AVX setup with KVM_SEV_ES_INIT to avoid breaking older measurements."
  if (with_fpu && have_xsave) put_fpu(page, xs);
  return 0;
}

}  // namespace sevemu
