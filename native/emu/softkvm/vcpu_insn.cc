// What the hypervisor does at an intercepted instruction (KVM's exit handlers: port I/O, MSRs,
// CPUID, HLT, hypercalls; SEV-ES's #VC), and exception delivery through the guest's IDT.
#include <x86intrin.h>

#include <cerrno>
#include <cstring>

#include "common.h"
#include "kvm_vm.h"
#include "uapi/kvm_run.h"
#include "vcpu.h"
#include "vm.h"

namespace sevemu::softkvm {

namespace {

// SVM exit codes (arch/x86/include/uapi/asm/svm.h): the error code of a #VC.
constexpr uint32_t kExitRdpmc = 0x6f, kExitCpuid = 0x72, kExitInvd = 0x76, kExitIoio = 0x7b,
                   kExitMsr = 0x7c, kExitVmmcall = 0x81, kExitWbinvd = 0x89, kExitMonitor = 0x8a,
                   kExitMwait = 0x8b;

constexpr uint64_t kRflagsTf = 1u << 8, kRflagsIf = 1u << 9, kRflagsDf = 1u << 10, kRflagsNt = 1u << 14,
                   kRflagsRf = 1u << 16, kRflagsVm = 1u << 17, kRflagsAc = 1u << 18;
constexpr uint64_t kEferSce = 1, kEferLma = 1u << 10;
constexpr int64_t kKvmEnosys = 1000, kKvmEperm = 1;
constexpr uint64_t kInsReadAhead = 1024;  // sizeof(struct read_cache.data) in KVM's emulator

enum class Kind { kOther, kIo, kStringIo, kHlt, kRdmsr, kWrmsr, kCpuid, kVmmcall, kSyscall, kInvd, kWbinvd,
                  kRdpmc, kMonitor, kMwait, kPvalidate };

Kind kind_of(const X86Insn& in) {
  if (in.vex) return Kind::kOther;
  if (in.map == 0) {
    const uint8_t o = in.opcode;
    if ((o >= 0xe4 && o <= 0xe7) || (o >= 0xec && o <= 0xef)) return Kind::kIo;
    if (o >= 0x6c && o <= 0x6f) return Kind::kStringIo;
    if (o == 0xf4) return Kind::kHlt;
    return Kind::kOther;
  }
  if (in.map != 1) return Kind::kOther;
  switch (in.opcode) {
    case 0x30: return Kind::kWrmsr;
    case 0x32: return Kind::kRdmsr;
    case 0xa2: return Kind::kCpuid;
    case 0x05: return Kind::kSyscall;
    case 0x08: return Kind::kInvd;
    case 0x09: return Kind::kWbinvd;
    case 0x33: return Kind::kRdpmc;
    case 0x01:
      if (in.modrm == 0xd9) return Kind::kVmmcall;
      if (in.modrm == 0xc8) return Kind::kMonitor;
      if (in.modrm == 0xc9) return Kind::kMwait;
      if (in.modrm == 0xff && in.rep == 0xf2) return Kind::kPvalidate;
      return Kind::kOther;
  }
  return Kind::kOther;
}

uint64_t address_mask(uint8_t size) { return size == 8 ? ~0ull : size == 4 ? 0xffffffffull : 0xffffull; }

// Writes `v` into the low `size` bytes of a register value as x86 does: 32-bit writes clear the
// upper half, 16-bit writes keep it.
uint64_t merge(uint64_t old, uint64_t v, uint8_t size) {
  if (size == 8) return v;
  if (size == 4) return v & 0xffffffffull;
  return (old & ~0xffffull) | (v & 0xffff);
}

SegmentCache descriptor_cache(uint16_t selector, uint64_t lo, uint64_t hi) {
  (void)hi;
  SegmentCache s;
  s.selector = selector;
  s.base = ((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24);
  uint32_t limit = uint32_t((lo & 0xffff) | ((lo >> 32) & 0xf0000));
  if (lo & (1ull << 55)) limit = (limit << 12) | 0xfff;
  s.limit = limit;
  s.flags = uint32_t(lo >> 32) & 0x00f0ff00u;
  return s;
}

}  // namespace

// STI, POPF, IRET: the instructions that can set RFLAGS.IF.
bool SoftVcpu::sets_if(const X86Insn& in) {
  return !in.vex && in.map == 0 && (in.opcode == 0xfb || in.opcode == 0x9d || in.opcode == 0xcf);
}

bool SoftVcpu::intercepted_always(const X86Insn& in) {
  switch (kind_of(in)) {
    case Kind::kIo: case Kind::kStringIo: case Kind::kHlt: case Kind::kRdmsr: case Kind::kWrmsr:
    case Kind::kCpuid: case Kind::kVmmcall: case Kind::kSyscall:
      return true;
    default:
      return false;
  }
}

// SEV-ES guests also take #VC for what KVM intercepts and cannot emulate on encrypted state.
bool SoftVcpu::intercepted(const X86Insn& in) const {
  if (intercepted_always(in)) return true;
  if (kind_of(in) == Kind::kPvalidate) return snp_guest();  // the CPU's RMP work: emulated here
  if (!(vm_->sev->active && vm_->sev->es_active)) return false;
  switch (kind_of(in)) {
    case Kind::kInvd: case Kind::kWbinvd: case Kind::kRdpmc: case Kind::kMonitor: case Kind::kMwait:
      return true;
    default:
      return false;
  }
}

void SoftVcpu::skip(const X86Insn& in) {
  const CodeMode m = code_mode();
  const uint64_t mask = m == CodeMode::k64 ? ~0ull : m == CodeMode::k32 ? 0xffffffffull : 0xffffull;
  set_reg(UC_X86_REG_RIP, (reg(UC_X86_REG_RIP) + in.length) & mask);
}

SoftVcpu::Next SoftVcpu::raise_vc(uint32_t exit_code) { return deliver(29, true, exit_code, false); }

SoftVcpu::Next SoftVcpu::emulate_at(uint64_t la) {
  uint8_t bytes[15];
  size_t avail = sizeof bytes;
  uint64_t pf_addr = 0, first_pf_addr = 0;
  uint32_t pf_err = 0, first_pf_err = 0;
  // The instruction may end before a page that is not mapped: read what there is.
  while (avail && !read_linear(la, bytes, avail, Access::kFetch, &pf_addr, &pf_err)) {
    if (avail == sizeof bytes) first_pf_addr = pf_addr, first_pf_err = pf_err;
    avail--;
  }
  X86Insn in;
  if (!avail || !decode_x86(bytes, avail, code_mode(), &in)) {
    if (avail < sizeof bytes && first_pf_err != ~0u) {  // cut short by a page the fetch faults on
      set_cr2(first_pf_addr);
      return deliver(14, true, first_pf_err, false);
    }
    return deliver(6, false, 0, false);  // an encoding the CPU refuses: #UD
  }
  if (!intercepted(in)) {
    // Not (or no longer) an instruction to intercept: let Unicorn run it.
    exits_.erase(la);
    cleared_exits_.insert(la);
    exits_changed_ = true;
    drop_translation(la, 1);
    return Next::kContinue;
  }
  const bool es = es_guest();
  const int cpl = paging_state().cpl;
  switch (kind_of(in)) {
    case Kind::kIo:
      return es ? raise_vc(kExitIoio) : emulate_io(in);
    case Kind::kStringIo:
      return es ? raise_vc(kExitIoio) : emulate_string_io(in);
    case Kind::kHlt:
      if (cpl) return deliver(13, true, 0, false);
      skip(in);
      run_->exit_reason = KVM_EXIT_HLT;
      return Next::kExit;
    case Kind::kRdmsr:
      return emulate_msr(in, false);
    case Kind::kWrmsr:
      return emulate_msr(in, true);
    case Kind::kCpuid:
      return es ? raise_vc(kExitCpuid) : emulate_cpuid(in);
    case Kind::kVmmcall:
      if (es) return in.rep == 0xf3 ? vmgexit(in) : raise_vc(kExitVmmcall);
      return emulate_hypercall(in);
    case Kind::kSyscall:
      return emulate_syscall(in);
    case Kind::kInvd: return raise_vc(kExitInvd);
    case Kind::kWbinvd: return raise_vc(kExitWbinvd);
    case Kind::kRdpmc: return raise_vc(kExitRdpmc);
    case Kind::kMonitor: return raise_vc(kExitMonitor);
    case Kind::kMwait: return raise_vc(kExitMwait);
    case Kind::kPvalidate: return emulate_pvalidate(in);
    case Kind::kOther: break;
  }
  return Next::kContinue;
}

// IN/OUT in protected mode above IOPL (or in virtual-8086 mode) consult the TSS I/O bitmap.
bool SoftVcpu::io_permitted(uint16_t port, unsigned size) {
  if (!(reg(UC_X86_REG_CR0) & 1)) return true;
  const uint64_t rflags = reg(UC_X86_REG_RFLAGS);
  const int iopl = int((rflags >> 12) & 3);
  if (!(rflags & kRflagsVm) && paging_state().cpl <= iopl) return true;
  uc_x86_mmr tr{};
  uc_.reg_read(uc, UC_X86_REG_TR, &tr);
  const unsigned type = (tr.flags >> kDescTypeShift) & 0xf;
  if (!(tr.flags & kDescP) || (type != 9 && type != 11) || tr.limit < 103) return false;
  uint16_t base = 0, bits = 0;
  uint64_t pa;
  uint32_t pe;
  if (!read_linear(tr.base + 0x66, &base, 2, Access::kRead, &pa, &pe, 0)) return false;
  const uint32_t off = base + port / 8;
  if (off + 1 > tr.limit) return false;
  if (!read_linear(tr.base + off, &bits, 2, Access::kRead, &pa, &pe, 0)) return false;
  const unsigned mask = ((1u << size) - 1) << (port & 7);
  return (bits & mask) == 0;
}

// IN/OUT: KVM_EXIT_IO with the data in the PIO page. RIP moves past the instruction when the
// VMM runs the vCPU again (complete_fast_pio_*), except for OUT to port 0x7e
// (KVM_X86_QUIRK_OUT_7E_INC_RIP, on by default), where it already has.
SoftVcpu::Next SoftVcpu::emulate_io(const X86Insn& in) {
  const uint8_t o = in.opcode;
  const bool input = o == 0xe4 || o == 0xe5 || o == 0xec || o == 0xed;
  const uint8_t size = (o & 1) ? (in.operand_size == 2 ? 2 : 4) : 1;
  const uint16_t port = (o & 0x08) ? uint16_t(reg(UC_X86_REG_RDX)) : uint16_t(in.imm);
  if (!io_permitted(port, size)) return deliver(13, true, 0, false);
  uint8_t* pio = reinterpret_cast<uint8_t*>(run_) + kPage;
  run_->exit_reason = KVM_EXIT_IO;
  run_->io.direction = input ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
  run_->io.size = size;
  run_->io.port = port;
  run_->io.count = 1;
  run_->io.data_offset = kPage;
  pending_ = {};
  pending_.insn = in;
  pending_.size = size;
  if (input) {
    memset(pio, 0, size);
    pending_.kind = Completion::kPioIn;
  } else {
    const uint64_t rax = reg(UC_X86_REG_RAX);
    memcpy(pio, &rax, size);
    if (port == 0x7e) {
      skip(in);
      return Next::kExit;
    }
    pending_.kind = Completion::kPioOut;
  }
  pending_.linear_rip = linear_rip();
  return Next::kExit;
}

// INS/OUTS (KVM's emulator): one exit moves as many elements as fit in the page of guest memory
// and the PIO page, through KVM's view of guest memory (for private SEV pages: ciphertext).
SoftVcpu::Next SoftVcpu::emulate_string_io(const X86Insn& in) {
  const uint8_t o = in.opcode;
  const bool input = o == 0x6c || o == 0x6d;
  const uint8_t size = (o & 1) ? (in.operand_size == 2 ? 2 : 4) : 1;
  const uint16_t port = uint16_t(reg(UC_X86_REG_RDX));
  if (!io_permitted(port, size)) return deliver(13, true, 0, false);
  const uint64_t amask = address_mask(in.address_size);
  uint64_t count = 1;
  if (in.rep) {
    count = reg(UC_X86_REG_RCX) & amask;
    if (!count) {
      skip(in);
      return Next::kContinue;
    }
  }
  ctx_->load();
  const bool long64 = code_mode() == CodeMode::k64;
  // OUTS reads DS:rSI (segment override allowed), INS writes ES:rDI.
  const int seg = input ? int(kEs) : (in.segment >= 0 ? int(in.segment) : int(kDs));
  uint64_t base = ctx_->segment(seg).base;
  if (long64 && seg != kFs && seg != kGs) base = 0;
  const uint64_t off = reg(input ? UC_X86_REG_RDI : UC_X86_REG_RSI) & amask;
  uint64_t la = base + off;
  if (!long64) la &= 0xffffffffull;
  const bool down = reg(UC_X86_REG_RFLAGS) & kRflagsDf;
  if (down || !input) {
    // KVM's instruction emulator (emulate.c em_out) passes OUTS one element per exit; RIP stays on
    // a REP OUTS until RCX runs out. (Downward INS, one element too: a simplification.)
    count = 1;
  } else {
    // INS reads ahead (pio_in_emulated): at most RCX elements, the rest of the page, 1 KiB.
    count = std::min<uint64_t>(count, std::max<uint64_t>(1, (kPage - (la & (kPage - 1))) / size));
    count = std::min<uint64_t>(count, kInsReadAhead / size);
  }
  const uint32_t bytes = uint32_t(count * size);
  // Translate as the guest's access; KVM then reads or writes guest memory itself.
  const PagingState ps = paging_state();
  Translation t;
  uint32_t err = 0;
  WalkResult w = translate(ps, *this, la, input ? Access::kWrite : Access::kRead, true, &t, &err);
  if (w != WalkResult::kOk) {
    set_cr2(la);
    return deliver(14, true, err, false);
  }
  uint8_t* pio = reinterpret_cast<uint8_t*>(run_) + kPage;
  if (!input) {
    flush_private_writes();  // the guest's private writes so far, encrypted into the VMM's view
    if (!read_gpa(t.gpa, pio, bytes)) {
      exit_internal_error(KVM_INTERNAL_ERROR_EMULATION);
      return Next::kExit;
    }
  }
  run_->exit_reason = KVM_EXIT_IO;
  run_->io.direction = input ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
  run_->io.size = size;
  run_->io.port = port;
  run_->io.count = uint32_t(count);
  run_->io.data_offset = kPage;
  pending_ = {};
  // The emulator writes an OUTS element's registers back before it exits: the VMM sees RSI and
  // RCX advanced, and RIP past a single OUTS — but still on a REP OUTS, even after its last
  // element (the guest's next run finds RCX 0 and moves on; measured on kvm_pvm). INS completes
  // on the next KVM_RUN, with the VMM's data.
  if (input) {
    pending_.kind = Completion::kStringIn;
    pending_.linear_rip = linear_rip();
    pending_.size = size;
    pending_.count = uint32_t(count);
    pending_.gpa = t.gpa;
    pending_.insn = in;
  } else {
    const uint64_t p = reg(UC_X86_REG_RSI);
    set_reg(UC_X86_REG_RSI, merge(p, down ? p - bytes : p + bytes, in.address_size));
    if (in.rep) {
      const uint64_t rcx = reg(UC_X86_REG_RCX);
      set_reg(UC_X86_REG_RCX, merge(rcx, (rcx & amask) - 1, in.address_size));
    } else {
      skip(in);
    }
  }
  return Next::kExit;
}

// An INS exit completed by the VMM: its data into guest memory, RDI and RCX advanced.
SoftVcpu::Next SoftVcpu::finish_string_in(const Completion& c) {
  const X86Insn& in = c.insn;
  const uint32_t bytes = c.count * c.size;
  const uint8_t* pio = reinterpret_cast<const uint8_t*>(run_) + kPage;
  if (!write_gpa(c.gpa, pio, bytes)) {
    exit_internal_error(KVM_INTERNAL_ERROR_EMULATION);
    return Next::kExit;
  }
  const bool down = reg(UC_X86_REG_RFLAGS) & kRflagsDf;
  const uint64_t p = reg(UC_X86_REG_RDI);
  set_reg(UC_X86_REG_RDI, merge(p, down ? p - bytes : p + bytes, in.address_size));
  if (in.rep) {
    const uint64_t rcx = reg(UC_X86_REG_RCX);
    const uint64_t left = (rcx & address_mask(in.address_size)) - c.count;
    set_reg(UC_X86_REG_RCX, merge(rcx, left, in.address_size));
    if (left) return Next::kContinue;  // RIP stays: the instruction goes on with a new exit
  }
  skip(in);
  return Next::kContinue;
}

bool SoftVcpu::msr_read(uint32_t index, uint64_t* v, bool host) {
  if (MsrAccess m = mce_msr(index, v, false, host); m != MsrAccess::kOther) return m == MsrAccess::kOk;
  switch (index) {
    case 0x10:  // TSC
      *v = __rdtsc() + tsc_offset_;
      return true;
    case 0x1b:  // APIC_BASE
      *v = apic_base_;
      return true;
    case 0x8b:  // PATCH_LEVEL (AMD microcode)
      *v = 0x01000065;
      return true;
    case 0xfe:  // MTRRcap: 8 variable ranges, fixed ranges, write-combining
      *v = 0x508;
      return true;
    case 0x1a0:  // MISC_ENABLE
      *v = misc_enable_;
      return true;
    case 0xda0:  // XSS
      *v = xss_;
      return true;
    case 0xc0010130:  // SEV-ES GHCB (not intercepted: the hardware keeps it in the VMSA)
      if (!es_guest()) return false;
      *v = ghcb_msr_;
      return true;
    case 0xc0010131:  // SEV_STATUS: SEV, SEV-ES enabled (never intercepted)
      *v = sev_guest() ? (1u | (es_guest() ? 2u : 0u) | (snp_guest() ? 4u : 0u)) : 0;
      return true;
  }
  auto it = msrs_.find(index);
  if (it != msrs_.end()) {
    *v = it->second;
    return true;
  }
  // Architectural MSRs the CPU itself holds.
  switch (index) {
    case 0x174: case 0x175: case 0x176: case 0x277: case 0xc0000080: case 0xc0000081: case 0xc0000082:
    case 0xc0000083: case 0xc0000084: case 0xc0000100: case 0xc0000101: case 0xc0000102: case 0xc0000103: {
      uc_x86_msr m{index, 0};
      uc_.reg_read(uc, UC_X86_REG_MSR, &m);
      *v = m.value;
      return true;
    }
  }
  return false;
}

bool SoftVcpu::msr_write(uint32_t index, uint64_t v, bool host) {
  if (MsrAccess m = mce_msr(index, &v, true, host); m != MsrAccess::kOther) return m == MsrAccess::kOk;
  if (host && pv_msr_host_write(index, v)) return true;
  switch (index) {
    case 0x10:
      tsc_offset_ = v - __rdtsc();
      return true;
    case 0x1b:
      if (v & ~0xffffffffffd00ull) return false;  // reserved bits
      apic_base_ = v;
      return true;
    case 0x8b: case 0xfe: case 0xc0010131:
      return false;  // read-only
    case 0x1a0:
      misc_enable_ = v;
      return true;
    case 0xda0:
      xss_ = v;
      return true;
    case 0xc0010130:
      if (!es_guest()) return false;
      ghcb_msr_ = v;
      return true;
    case 0xc0000080:  // EFER: reserved bits and LME changes while paging fault
      if (v & ~uint64_t(0xd01 | (1u << 12) | (1u << 14) | (1u << 15))) return false;
      if ((reg(UC_X86_REG_CR0) & (1ull << 31)) && ((v ^ msr_efer()) & (1u << 8))) return false;
      break;
    case 0x277:  // PAT: each entry a valid memory type
      for (int i = 0; i < 8; i++) {
        const uint8_t t = uint8_t(v >> (8 * i));
        if (t > 7 || t == 2 || t == 3) return false;
      }
      break;
  }
  switch (index) {
    case 0x174: case 0x175: case 0x176: case 0x277: case 0xc0000080: case 0xc0000081: case 0xc0000082:
    case 0xc0000083: case 0xc0000084: case 0xc0000100: case 0xc0000101: case 0xc0000102: case 0xc0000103: {
      uc_x86_msr m{index, v};
      uc_.reg_write(uc, UC_X86_REG_MSR, &m);
      return true;
    }
  }
  if (kvm_emulated_msr(index)) {
    msrs_[index] = v;
    return true;
  }
  return false;
}

// Machine-check MSRs as KVM keeps them (x86.c get_msr_mce / set_msr_mce). kOther: not one.
SoftVcpu::MsrAccess SoftVcpu::mce_msr(uint32_t index, uint64_t* v, bool write, bool host) {
  constexpr uint64_t kMcgCtlP = 1ull << 8, kMcgCmciP = 1ull << 10;
  const unsigned banks = mcg_cap_ & 0xff;
  auto ok = [](bool b) { return b ? MsrAccess::kOk : MsrAccess::kFault; };
  switch (index) {
    case 0x0: case 0x1:  // P5_MC_ADDR, P5_MC_TYPE
      if (write) return MsrAccess::kOther;
      *v = 0;
      return MsrAccess::kOk;
    case 0x179:  // MCG_CAP: read-only (KVM_X86_SETUP_MCE sets it)
      if (write) return MsrAccess::kFault;
      *v = mcg_cap_;
      return MsrAccess::kOk;
    case 0x17a:  // MCG_STATUS
      if (write) mcg_status_ = *v; else *v = mcg_status_;
      return MsrAccess::kOk;
    case 0x17b:  // MCG_CTL: only with MCG_CTL_P (a VMM may write 0), only 0 or all ones
      if (!write) {
        if (!(mcg_cap_ & kMcgCtlP) && !host) return MsrAccess::kFault;
        *v = mcg_ctl_;
        return MsrAccess::kOk;
      }
      if (!(mcg_cap_ & kMcgCtlP) && (*v || !host)) return MsrAccess::kFault;
      if (*v != 0 && *v != ~0ull) return MsrAccess::kFault;
      mcg_ctl_ = *v;
      return MsrAccess::kOk;
  }
  if (index >= 0x280 && index < 0x280 + 32) {  // MCi_CTL2: CMCI, which this machine lacks
    if (index >= 0x280 + banks) return MsrAccess::kFault;
    if (!write) {
      if (!(mcg_cap_ & kMcgCmciP) && !host) return MsrAccess::kFault;
      *v = mci_ctl2_[index - 0x280];
      return MsrAccess::kOk;
    }
    if (!(mcg_cap_ & kMcgCmciP) && (*v || !host)) return MsrAccess::kFault;
    if (*v & ~0x40007fffull) return MsrAccess::kFault;  // CMCI_EN | threshold
    mci_ctl2_[index - 0x280] = *v;
    return MsrAccess::kOk;
  }
  if (index >= 0x400 && index < 0x400 + 4 * 32) {  // MCi_CTL, STATUS, ADDR, MISC
    const uint32_t i = index - 0x400;
    if (i >= 4 * banks) return MsrAccess::kFault;
    if (!write) {
      *v = mce_banks_[i];
      return MsrAccess::kOk;
    }
    // CTL: 0 or all ones (bits 10 and 0 may be clear: old kernels' K8 GART and UnixWare quirks).
    if (i % 4 == 0 && *v != 0 && (*v | (1u << 10) | 1) != ~0ull) return MsrAccess::kFault;
    // STATUS: the guest may only clear it, unless HWCR.McStatusWrEn (AMD).
    if (i % 4 == 1 && !host && *v != 0) {
      auto hwcr = msrs_.find(0xc0010015);
      if (hwcr == msrs_.end() || !(hwcr->second & (1ull << 18))) return MsrAccess::kFault;
    }
    mce_banks_[i] = *v;
    return ok(true);
  }
  return MsrAccess::kOther;
}

// KVM's paravirtual MSRs (kvmclock, async PF, steal time, PV EOI, ...): this machine offers none
// of those features (no KVM CPUID leaves), but KVM takes a VMM's writes of them whatever the
// guest's CPUID says, and VMMs reset them to 0 (QEMU does). Written as "disabled", they read back;
// enabling one is refused; the guest itself gets #GP (see msr_read/msr_write).
bool SoftVcpu::pv_msr_host_write(uint32_t index, uint64_t v) {
  const bool pv = index == 0x11 || index == 0x12 || (index >= 0x4b564d00 && index <= 0x4b564d08);
  if (!pv || v != 0) return false;
  msrs_[index] = 0;
  return true;
}

// MSRs KVM keeps for the guest beyond the CPU's own (MTRRs, DEBUGCTL, HWCR, VM_CR, ...).
bool SoftVcpu::kvm_emulated_msr(uint32_t index) {
  return index == 0x2ff || (index >= 0x200 && index <= 0x20f) || index == 0x250 || index == 0x258 ||
         index == 0x259 || (index >= 0x268 && index <= 0x26f) || index == 0x1d9 || index == 0x48 ||
         index == 0xc0010015 || index == 0xc0010114 ||
         index == 0xc0010117 || index == 0xc0011029;
}

uint64_t SoftVcpu::msr_efer() {
  uc_x86_msr m{0xc0000080, 0};
  uc_.reg_read(uc, UC_X86_REG_MSR, &m);
  return m.value;
}

SoftVcpu::Next SoftVcpu::emulate_msr(const X86Insn& in, bool write) {
  const uint32_t index = uint32_t(reg(UC_X86_REG_RCX));
  if (es_guest()) {
    // Context-switched by the hardware, never intercepted: the rest is a #VC.
    const bool direct = index == 0xc0010130 || index == 0xc0010131 || index == 0xc0000080 || index == 0x277;
    if (!direct) return raise_vc(kExitMsr);
  }
  if (paging_state().cpl) return deliver(13, true, 0, false);
  if (write) {
    const uint64_t v = (reg(UC_X86_REG_RAX) & 0xffffffffull) | (reg(UC_X86_REG_RDX) << 32);
    if (!msr_write(index, v)) return deliver(13, true, 0, false);
  } else {
    uint64_t v = 0;
    if (!msr_read(index, &v)) return deliver(13, true, 0, false);
    set_reg(UC_X86_REG_RAX, v & 0xffffffffull);
    set_reg(UC_X86_REG_RDX, v >> 32);
  }
  skip(in);
  return Next::kContinue;
}

// KVM's CPUID: the entries KVM_SET_CPUID2 gave, zeros for others (AMD behaviour), with the bits
// KVM keeps current: OSXSAVE, OSPKE, and the XSAVE area size for XCR0.
void SoftVcpu::cpuid(uint32_t fn, uint32_t index, uint32_t out[4]) {
  out[0] = out[1] = out[2] = out[3] = 0;
  const kvm_cpuid_entry2* found = nullptr;
  for (const auto& e : cpuid_)
    if (e.function == fn && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == index)) {
      found = &e;
      break;
    }
  if (!found) return;
  out[0] = found->eax;
  out[1] = found->ebx;
  out[2] = found->ecx;
  out[3] = found->edx;
  const uint64_t cr4 = reg(UC_X86_REG_CR4);
  if (fn == 1) out[2] = (out[2] & ~(1u << 27)) | ((cr4 >> 18) & 1) << 27;  // OSXSAVE
  if (fn == 7 && index == 0) out[2] = (out[2] & ~(1u << 4)) | ((cr4 >> 22) & 1) << 4;  // OSPKE
  if (fn == 0xd && index == 0) out[1] = 576 + ((xcr0_ & 4) ? 256 : 0);
}

SoftVcpu::Next SoftVcpu::emulate_cpuid(const X86Insn& in) {
  uint32_t r[4];
  cpuid(uint32_t(reg(UC_X86_REG_RAX)), uint32_t(reg(UC_X86_REG_RCX)), r);
  set_reg(UC_X86_REG_RAX, r[0]);
  set_reg(UC_X86_REG_RBX, r[1]);
  set_reg(UC_X86_REG_RCX, r[2]);
  set_reg(UC_X86_REG_RDX, r[3]);
  skip(in);
  return Next::kContinue;
}

// PVALIDATE (APM vol. 3): RAX the page's linear address, ECX its size (0: 4 KiB, 1: 2 MiB), EDX
// bit 0 validate or rescind. The page must be private and assigned to this guest in the RMP (a
// private gfn that is not yet is assigned first, as KVM does on the fault); RAX returns 0, or
// FAIL_SIZEMISMATCH for 2 MiB (the RMP holds 4 KiB entries here), or FAIL_INPUT; RFLAGS.CF is
// set when the validated bit did not change. A shared gfn exits to the VMM (memory fault).
SoftVcpu::Next SoftVcpu::emulate_pvalidate(const X86Insn& in) {
  constexpr uint64_t kFailInput = 1, kFailSizeMismatch = 6, kCf = 1;
  if (paging_state().cpl) return deliver(13, true, 0, false);
  const bool long64 = code_mode() == CodeMode::k64;
  const uint64_t la = long64 ? reg(UC_X86_REG_RAX) : reg(UC_X86_REG_RAX) & 0xffffffffull;
  const uint32_t size = uint32_t(reg(UC_X86_REG_RCX)), validate = uint32_t(reg(UC_X86_REG_RDX)) & 1;
  uint64_t result = 0;
  bool unchanged = false;
  if (size > 1 || (la & (size ? 0x1fffff : 0xfff))) {
    result = kFailInput;
  } else if (size == 1) {
    result = kFailSizeMismatch;
  } else {
    Translation t;
    uint32_t err = 0;
    if (translate(paging_state(), *this, la, Access::kRead, true, &t, &err) != WalkResult::kOk) {
      set_cr2(la);
      return deliver(14, true, err, false);
    }
    const uint64_t page = t.gpa & ~(kPage - 1);
    Memslot* s = vm_->memory.find(page);
    const SnpAccess k = snp_access(s, page, true);
    if (k == SnpAccess::kMemoryFault) return memory_fault_exit(page, true);
    RmpEntry& e = s->rmp(page);
    if (e.gpa != page || e.asid != vm_->sev->asid || e.vmsa) {
      result = kFailInput;
    } else {
      unchanged = e.validated == bool(validate);
      e.validated = validate;
      // A rescinded page must fault again: no translation of it may survive.
      if (!unchanged) uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));
    }
  }
  set_reg(UC_X86_REG_RAX, result);
  const uint64_t rflags = reg(UC_X86_REG_RFLAGS);
  set_reg(UC_X86_REG_RFLAGS, unchanged ? rflags | kCf : rflags & ~kCf);
  skip(in);
  return Next::kContinue;
}

// VMMCALL (kvm_emulate_hypercall): no hypercall is enabled for userspace exits here, so every
// one answers -KVM_ENOSYS, and -KVM_EPERM above CPL 0.
SoftVcpu::Next SoftVcpu::emulate_hypercall(const X86Insn& in) {
  const int64_t ret = paging_state().cpl ? -kKvmEperm : -kKvmEnosys;
  set_reg(UC_X86_REG_RAX, code_mode() == CodeMode::k64 ? uint64_t(ret) : uint64_t(uint32_t(ret)));
  skip(in);
  return Next::kContinue;
}

// SYSCALL (APM vol. 3): Unicorn only calls hooks for it, so the transition is done here.
SoftVcpu::Next SoftVcpu::emulate_syscall(const X86Insn& in) {
  const uint64_t efer = msr_efer();
  if (!(efer & kEferSce)) return deliver(6, false, 0, false);
  uint64_t star = 0, target = 0, mask = 0;
  msr_read(0xc0000081, &star);
  const CodeMode mode = code_mode();
  const uint64_t next = reg(UC_X86_REG_RIP) + in.length;
  const uint64_t rflags = reg(UC_X86_REG_RFLAGS);
  const uint16_t sel = uint16_t(star >> 32) & 0xfffc;
  ctx_->load();
  const uint32_t code = kDescP | kDescS | (11u << kDescTypeShift) | kDescG;
  const uint32_t data = kDescP | kDescS | (3u << kDescTypeShift) | kDescG | kDescB;
  if (efer & kEferLma) {
    msr_read(mode == CodeMode::k64 ? 0xc0000082 : 0xc0000083, &target);
    msr_read(0xc0000084, &mask);
    ctx_->set_segment(kCs, {sel, 0, 0xffffffff, code | kDescL});
    ctx_->set_segment(kSs, {uint32_t(sel + 8), 0, 0xffffffff, data});
    ctx_->recompute_mode();
    ctx_->store();
    set_reg(UC_X86_REG_RCX, next);
    set_reg(UC_X86_REG_R11, rflags & ~kRflagsRf);
    set_reg(UC_X86_REG_RFLAGS, rflags & ~mask & ~kRflagsRf);
  } else {
    ctx_->set_segment(kCs, {sel, 0, 0xffffffff, code | kDescB});
    ctx_->set_segment(kSs, {uint32_t(sel + 8), 0, 0xffffffff, data});
    ctx_->recompute_mode();
    ctx_->store();
    target = uint32_t(star);
    set_reg(UC_X86_REG_RCX, uint32_t(next));
    set_reg(UC_X86_REG_RFLAGS, rflags & ~(kRflagsVm | kRflagsIf | kRflagsRf));
  }
  set_reg(UC_X86_REG_RIP, target);
  return Next::kContinue;
}

// ---- exception and interrupt delivery ---------------------------------------------------------

namespace {
bool contributory(uint8_t v) { return v == 0 || (v >= 10 && v <= 13); }
// Whether a fault while delivering `first` turns into #DF (APM 8.2.9).
bool double_fault(uint8_t first, uint8_t second) {
  if (contributory(first) && contributory(second)) return true;
  return first == 14 && (second == 14 || contributory(second));
}
}  // namespace

SoftVcpu::Next SoftVcpu::deliver(uint8_t vector, bool has_error, uint32_t error, bool soft_int) {
  for (int depth = 0; depth < 3; depth++) {
    Fault f;
    if (deliver_once(vector, has_error, error, soft_int, &f)) {
      uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));  // CPL and stack may have changed
      return Next::kContinue;
    }
    if (f.vector < 0) {  // the event cannot be delivered by this machine (task gates, ...)
      exit_internal_error(KVM_INTERNAL_ERROR_DELIVERY_EV);
      return Next::kExit;
    }
    if (vector == 8) break;  // a fault while delivering #DF: shutdown
    if (double_fault(vector, uint8_t(f.vector))) {
      vector = 8;
      has_error = true;
      error = 0;
    } else {
      vector = uint8_t(f.vector);
      has_error = f.has_error;
      error = f.error;
      if (vector == 14) set_cr2(f.cr2);
    }
    soft_int = false;
  }
  run_->exit_reason = KVM_EXIT_SHUTDOWN;  // triple fault
  return Next::kExit;
}

// Reads a GDT/LDT descriptor for `sel`; false with the #GP error code on failure.
bool SoftVcpu::read_descriptor(uint16_t sel, uint64_t* lo, uint64_t* hi, Fault* f) {
  uc_x86_mmr table{};
  uc_.reg_read(uc, (sel & 4) ? UC_X86_REG_LDTR : UC_X86_REG_GDTR, &table);
  const uint32_t idx = sel & ~7u;
  if ((sel & ~3u) == 0 || idx + 7 > table.limit) return *f = {13, true, uint32_t(sel & 0xfffc), 0}, false;
  uint64_t pa;
  uint32_t pe;
  uint64_t d[2] = {};
  const size_t n = (code_mode_for_delivery_ == CodeMode::k64 && idx + 15 <= table.limit) ? 16 : 8;
  if (!read_linear(table.base + idx, d, n, Access::kRead, &pa, &pe, 0))
    return *f = {pe == ~0u ? 13 : 14, true, pe == ~0u ? uint32_t(sel & 0xfffc) : pe, pa}, false;
  *lo = d[0];
  *hi = d[1];
  return true;
}

bool SoftVcpu::deliver_once(uint8_t vector, bool has_error, uint32_t error, bool soft_int, Fault* f) {
  ctx_->load();
  const uint64_t cr0 = ctx_->cr(0), efer = ctx_->efer();
  const uint64_t rip = reg(UC_X86_REG_RIP), rsp = reg(UC_X86_REG_RSP), rflags = reg(UC_X86_REG_RFLAGS);
  const SegmentCache cs = ctx_->segment(kCs), ss = ctx_->segment(kSs);
  uc_x86_mmr idtr{};
  uc_.reg_read(uc, UC_X86_REG_IDTR, &idtr);
  const uint32_t ext = soft_int ? 0 : 1;  // error codes of faults while delivering say "external"
  uint64_t pa;
  uint32_t pe;
  auto page_fault = [&](uint64_t addr, uint32_t err) {
    *f = {err == ~0u ? 13 : 14, true, err == ~0u ? 0 : err, addr};
    return false;
  };

  if (!(cr0 & 1)) {
    // Real mode: the IVT entry is offset:segment; push FLAGS, CS, IP.
    if (uint32_t(vector) * 4 + 3 > idtr.limit) return *f = {13, true, 0, 0}, false;
    uint16_t ivt[2];
    if (!read_linear(idtr.base + vector * 4u, ivt, 4, Access::kRead, &pa, &pe, 0)) return page_fault(pa, pe);
    const uint16_t frame[3] = {uint16_t(rip), uint16_t(cs.selector), uint16_t(rflags)};
    const uint16_t sp = uint16_t(rsp - 6);
    if (!write_linear((ss.base + sp) & 0xffffffffull, frame, 6, &pa, &pe, 0)) return page_fault(pa, pe);
    SegmentCache ncs = cs;
    ncs.selector = ivt[1];
    ncs.base = uint64_t(ivt[1]) << 4;
    ctx_->set_segment(kCs, ncs);
    ctx_->recompute_mode();
    ctx_->store();
    set_reg(UC_X86_REG_RSP, (rsp & ~0xffffull) | sp);
    set_reg(UC_X86_REG_RIP, ivt[0]);
    set_reg(UC_X86_REG_RFLAGS, rflags & ~(kRflagsIf | kRflagsTf | kRflagsAc | kRflagsRf));
    return true;
  }
  if (rflags & kRflagsVm) return *f = {-1, false, 0, 0}, false;  // virtual-8086 mode: not modelled

  const bool lma = efer & kEferLma;
  code_mode_for_delivery_ = lma ? CodeMode::k64 : CodeMode::k32;
  const uint32_t gate_size = lma ? 16 : 8;
  const uint32_t gate_err = uint32_t(vector) * 8 + 2 + ext;
  if (uint32_t(vector) * gate_size + gate_size - 1 > idtr.limit) return *f = {13, true, gate_err, 0}, false;
  uint32_t g[4] = {};
  if (!read_linear(idtr.base + uint64_t(vector) * gate_size, g, gate_size, Access::kRead, &pa, &pe, 0))
    return page_fault(pa, pe);
  const uint8_t type = (g[1] >> 8) & 0xf, dpl = (g[1] >> 13) & 3;
  const bool present = g[1] & (1u << 15);
  const int cpl = (cr0 & 1) ? int(ss.flags >> kDescDplShift) & 3 : 0;
  const bool wide = lma || type == 0xe || type == 0xf;  // 32/64-bit gate (vs 16-bit 0x6/0x7)
  if (type == 0x5) return *f = {-1, false, 0, 0}, false;  // task gates: not modelled
  const bool valid_type = lma ? (type == 0xe || type == 0xf) : (type == 0x6 || type == 0x7 || type == 0xe || type == 0xf);
  if (!valid_type) return *f = {13, true, gate_err, 0}, false;
  if (soft_int && dpl < cpl) return *f = {13, true, gate_err, 0}, false;
  if (!present) return *f = {11, true, gate_err, 0}, false;
  const uint16_t sel = uint16_t(g[0] >> 16);
  uint64_t target = (g[0] & 0xffff) | (g[1] & 0xffff0000u);
  if (lma) target |= uint64_t(g[2]) << 32;
  if (!wide) target &= 0xffff;
  uint64_t lo = 0, hi = 0;
  if (!read_descriptor(sel, &lo, &hi, f)) return false;
  SegmentCache ncs = descriptor_cache(sel, lo, hi);
  const bool code = (ncs.flags & kDescS) && ((ncs.flags >> kDescTypeShift) & 8);
  const int new_dpl = (ncs.flags >> kDescDplShift) & 3;
  if (!code || new_dpl > cpl || (lma && (!(ncs.flags & kDescL) || (ncs.flags & kDescB))))
    return *f = {13, true, uint32_t(sel & 0xfffc) + ext, 0}, false;
  if (!(ncs.flags & kDescP)) return *f = {11, true, uint32_t(sel & 0xfffc) + ext, 0}, false;
  const bool conforming = (ncs.flags >> kDescTypeShift) & 4;
  const int new_cpl = conforming ? cpl : new_dpl;
  ncs.selector = (sel & ~3u) | uint32_t(new_cpl);

  // The stack: the TSS's for a privilege change (or an IST in long mode), else the current one.
  uc_x86_mmr tr{};
  uc_.reg_read(uc, UC_X86_REG_TR, &tr);
  uint64_t new_rsp = rsp;
  SegmentCache nss = ss;
  const unsigned ist = lma ? (g[1] & 7) : 0;
  const bool switch_stack = new_cpl < cpl || ist;
  if (switch_stack) {
    if (lma) {
      const uint32_t off = ist ? 0x24 + 8 * (ist - 1) : 4 + 8 * uint32_t(new_cpl);
      if (off + 7 > tr.limit) return *f = {10, true, uint32_t(tr.selector & 0xfffc) + ext, 0}, false;
      if (!read_linear(tr.base + off, &new_rsp, 8, Access::kRead, &pa, &pe, 0)) return page_fault(pa, pe);
      if (new_cpl < cpl) nss = {uint32_t(new_cpl), 0, 0, 0};  // a null SS with RPL = the new CPL
    } else {
      uint32_t esp0 = 0;
      uint16_t ss0 = 0;
      const uint32_t off = 4 + 8 * uint32_t(new_cpl);
      if (off + 5 > tr.limit) return *f = {10, true, uint32_t(tr.selector & 0xfffc) + ext, 0}, false;
      if (!read_linear(tr.base + off, &esp0, 4, Access::kRead, &pa, &pe, 0) ||
          !read_linear(tr.base + off + 4, &ss0, 2, Access::kRead, &pa, &pe, 0))
        return page_fault(pa, pe);
      uint64_t slo, shi;
      if (!read_descriptor(ss0, &slo, &shi, f)) return false;
      nss = descriptor_cache(ss0, slo, shi);
      new_rsp = esp0;
    }
  }
  // The frame: [SS, RSP,] RFLAGS, CS, RIP[, error].
  uint64_t frame[6];
  int n = 0;
  if (lma || switch_stack) {
    frame[n++] = ss.selector;
    frame[n++] = rsp;
  }
  frame[n++] = rflags;
  frame[n++] = cs.selector;
  frame[n++] = rip;
  if (has_error) frame[n++] = error;
  const int width = lma ? 8 : (wide ? 4 : 2);
  if (lma) new_rsp &= ~0xfull;
  uint8_t bytes[48];
  for (int i = 0; i < n; i++) memcpy(bytes + (n - 1 - i) * width, &frame[i], size_t(width));
  const uint64_t top = new_rsp - uint64_t(n) * width;
  const uint64_t stack_la = lma ? top : (nss.base + (top & 0xffffffffull)) & 0xffffffffull;
  if (!write_linear(stack_la, bytes, size_t(n) * width, &pa, &pe, new_cpl))
    return pe == ~0u ? (*f = {12, true, 0, 0}, false) : page_fault(pa, pe);

  ctx_->set_segment(kCs, ncs);
  if (switch_stack) ctx_->set_segment(kSs, nss);
  ctx_->recompute_mode();
  ctx_->store();
  set_reg(UC_X86_REG_RSP, lma ? top : ((new_rsp & ~0xffffffffull) | (top & 0xffffffffull)));
  set_reg(UC_X86_REG_RIP, target);
  uint64_t nf = rflags & ~(kRflagsTf | kRflagsNt | kRflagsRf | kRflagsVm);
  if (type == 0xe || type == 0x6) nf &= ~kRflagsIf;  // interrupt gate
  set_reg(UC_X86_REG_RFLAGS, nf);
  return true;
}

}  // namespace sevemu::softkvm
