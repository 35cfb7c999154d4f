// Register ioctls of the software vCPU, with KVM's checks and its SVM conventions
// (arch/x86/kvm/regs.c, x86.c, svm/svm.c), and the RESET state a new vCPU starts in.
#include <linux/kvm.h>

#include <cerrno>
#include <cstring>

#include "common.h"
#include "kvm_vm.h"
#include "uapi/kvm_flex.h"
#include "user_mem.h"
#include "vcpu.h"
#include "vm.h"

namespace sevemu::softkvm {

namespace {

const int kGprs[16] = {UC_X86_REG_RAX, UC_X86_REG_RBX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RSI, UC_X86_REG_RDI,
                       UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
                       UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};
constexpr uint64_t kEferSce = 1, kEferLme = 1u << 8, kEferLma = 1u << 10, kEferNx = 1u << 11,
                   kEferSvme = 1u << 12, kEferFfxsr = 1u << 14;
constexpr uint64_t kCr0Pe = 1, kCr0Nw = 1u << 29, kCr0Cd = 1u << 30, kCr0Pg = 1u << 31;
constexpr uint64_t kCr4Pae = 1u << 5;
constexpr uint64_t kPatDefault = 0x0007040600070406ull;
constexpr uint64_t kMiscEnableReset = (1u << 11) | (1u << 12);  // BTS and PEBS unavailable
constexpr unsigned kMaxCpuidEntries = 256;                       // KVM_MAX_CPUID_ENTRIES

kvm_segment to_kvm(const SegmentCache& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = uint16_t(s.selector);
  k.type = (s.flags >> kDescTypeShift) & 0xf;
  k.s = (s.flags & kDescS) ? 1u : 0u;
  k.dpl = (s.flags >> kDescDplShift) & 3;
  k.present = (s.flags & kDescP) ? 1 : 0;
  k.avl = (s.flags & kDescAvl) ? 1 : 0;
  k.l = (s.flags & kDescL) ? 1 : 0;
  k.db = (s.flags & kDescB) ? 1 : 0;
  k.g = s.limit > 0xfffff;  // synthesized as svm_get_segment does
  k.unusable = !k.present;
  return k;
}

// svm_set_segment: an unusable segment is not present.
SegmentCache from_kvm(const kvm_segment& k) {
  SegmentCache s;
  s.selector = k.selector;
  s.base = k.base;
  s.limit = k.limit;
  s.flags = uint32_t(k.type & 0xf) << kDescTypeShift | (k.s & 1u) << 12 | uint32_t(k.dpl & 3) << kDescDplShift |
            ((k.present & 1) && !k.unusable ? uint32_t(kDescP) : 0u) | (k.avl & 1u) << 20 | (k.l & 1u) << 21 |
            (k.db & 1u) << 22 | (k.g & 1u) << 23;
  return s;
}

uc_x86_mmr mmr_from(const kvm_segment& k) {
  SegmentCache s = from_kvm(k);
  return {uint16_t(s.selector), s.base, s.limit, s.flags};
}

kvm_segment kvm_from_mmr(const uc_x86_mmr& m) {
  return to_kvm({m.selector, m.base, m.limit, m.flags});
}

}  // namespace

// KVM's RESET state (kvm_vcpu_reset, svm's init_vmcb): real mode at F000:FFF0 with base
// 0xFFFF0000, CR0 = CD|NW|ET, DR6/DR7 reset values, PAT default, x87 control word 0x37F and
// MXCSR 0x1F80, RDX = 0x600 (no CPUID yet).
void SoftVcpu::reset() {
  for (int r : kGprs) set_reg(r, 0);
  set_reg(UC_X86_REG_RDX, 0x600);
  ctx_->load();
  const uint32_t data = kDescP | kDescS | (2u << kDescTypeShift);  // read/write data
  for (int s : {kEs, kSs, kDs, kFs, kGs}) ctx_->set_segment(s, {0, 0, 0xffff, data});
  ctx_->set_segment(kCs, {0xf000, 0xffff0000ull, 0xffff, kDescP | kDescS | (10u << kDescTypeShift)});
  ctx_->set_cr(0, kCr0Cd | kCr0Nw | 0x10);
  ctx_->set_cr(2, 0);
  ctx_->set_cr(3, 0);
  ctx_->set_cr(4, 0);
  ctx_->set_efer(0);
  ctx_->recompute_mode();
  ctx_->store();
  uc_x86_mmr dt{0, 0, 0xffff, 0};
  uc_.reg_write(uc, UC_X86_REG_GDTR, &dt);
  uc_.reg_write(uc, UC_X86_REG_IDTR, &dt);
  uc_x86_mmr ldt{0, 0, 0xffff, kDescP | (2u << kDescTypeShift)};
  uc_x86_mmr tr{0, 0, 0xffff, kDescP | (3u << kDescTypeShift)};  // busy 16-bit TSS
  uc_.reg_write(uc, UC_X86_REG_LDTR, &ldt);
  uc_.reg_write(uc, UC_X86_REG_TR, &tr);
  set_reg(UC_X86_REG_RFLAGS, 2);
  set_reg(UC_X86_REG_RIP, 0xfff0);
  uc_x86_msr pat{0x277, kPatDefault};
  uc_.reg_write(uc, UC_X86_REG_MSR, &pat);
  uint16_t fcw = 0x37f, fsw = 0, ftag = 0xffff;
  uc_.reg_write(uc, UC_X86_REG_FPCW, &fcw);
  uc_.reg_write(uc, UC_X86_REG_FPSW, &fsw);
  uc_.reg_write(uc, UC_X86_REG_FPTAG, &ftag);
  uint32_t mxcsr = 0x1f80;
  uc_.reg_write(uc, UC_X86_REG_MXCSR, &mxcsr);
  misc_enable_ = kMiscEnableReset;
  apic_base_ = 0xfee00000ull | 0x800 | (id_ == 0 ? 0x100 : 0);
  dr6_ = 0xffff0ff0;
  dr7_ = 0x400;
  xcr0_ = 1;
  xss_ = 0;
}

long SoftVcpu::get_regs(kvm_regs* r) {
  uint64_t v[16];
  for (int i = 0; i < 16; i++) v[i] = reg(kGprs[i]);
  r->rax = v[0]; r->rbx = v[1]; r->rcx = v[2]; r->rdx = v[3]; r->rsi = v[4]; r->rdi = v[5];
  r->rsp = v[6]; r->rbp = v[7]; r->r8 = v[8]; r->r9 = v[9]; r->r10 = v[10]; r->r11 = v[11];
  r->r12 = v[12]; r->r13 = v[13]; r->r14 = v[14]; r->r15 = v[15];
  r->rip = reg(UC_X86_REG_RIP);
  r->rflags = reg(UC_X86_REG_RFLAGS);
  return 0;
}

long SoftVcpu::set_regs(const kvm_regs& r) {
  const uint64_t v[16] = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp,
                          r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
  for (int i = 0; i < 16; i++) set_reg(kGprs[i], v[i]);
  set_reg(UC_X86_REG_RIP, r.rip);
  set_reg(UC_X86_REG_RFLAGS, r.rflags | 2);  // bit 1 is always set (X86_EFLAGS_FIXED)
  return 0;
}

long SoftVcpu::get_sregs(kvm_sregs* s) {
  memset(s, 0, sizeof *s);
  ctx_->load();
  kvm_segment* segs[6] = {&s->es, &s->cs, &s->ss, &s->ds, &s->fs, &s->gs};
  for (int i = 0; i < 6; i++) *segs[i] = to_kvm(ctx_->segment(i));
  // svm_get_segment's conventions: data segments report "accessed", SS its DPL = CPL and no D/B
  // when unusable.
  for (kvm_segment* d : {&s->ds, &s->es, &s->fs, &s->gs})
    if (!d->unusable) d->type |= 1;
  if (s->ss.unusable) s->ss.db = 0;
  uc_x86_mmr m{};
  uc_.reg_read(uc, UC_X86_REG_TR, &m);
  s->tr = kvm_from_mmr(m);
  s->tr.type |= 2;
  uc_.reg_read(uc, UC_X86_REG_LDTR, &m);
  s->ldt = kvm_from_mmr(m);
  uc_.reg_read(uc, UC_X86_REG_GDTR, &m);
  s->gdt.base = m.base;
  s->gdt.limit = uint16_t(m.limit);
  uc_.reg_read(uc, UC_X86_REG_IDTR, &m);
  s->idt.base = m.base;
  s->idt.limit = uint16_t(m.limit);
  s->cr0 = ctx_->cr(0);
  s->cr2 = ctx_->cr(2);
  s->cr3 = ctx_->cr(3);
  s->cr4 = ctx_->cr(4);
  s->cr8 = cr8_;
  s->efer = ctx_->efer();
  s->apic_base = apic_base_;
  if (pending_irq_ >= 0) s->interrupt_bitmap[pending_irq_ / 64] |= 1ull << (pending_irq_ % 64);
  return 0;
}

bool SoftVcpu::guest_has(uint32_t fn, int reg_index, unsigned bit) {
  for (const auto& e : cpuid_)
    if (e.function == fn && (!(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e.index == 0)) {
      const uint32_t r[4] = {e.eax, e.ebx, e.ecx, e.edx};
      return (r[reg_index] >> bit) & 1;
    }
  return false;
}

// kvm_is_valid_sregs with the guest's CPUID (kvm_valid_efer, CR4's reserved bits).
bool SoftVcpu::valid_sregs(const kvm_sregs& s) {
  if ((s.efer & kEferLme) && (s.cr0 & kCr0Pg)) {
    if (!(s.cr4 & kCr4Pae) || !(s.efer & kEferLma)) return false;
    if (s.cr3 >> vm_->maxphyaddr & ~(sev_guest() ? 1ull << (vm_->c_bit - vm_->maxphyaddr) : 0ull)) return false;
  } else if ((s.efer & kEferLma) || s.cs.l) {
    return false;
  }
  if (s.cr0 >> 32) return false;
  if ((s.cr0 & kCr0Nw) && !(s.cr0 & kCr0Cd)) return false;
  if ((s.cr0 & kCr0Pg) && !(s.cr0 & kCr0Pe)) return false;
  // EFER: SCE, LME, LMA, NX, FFXSR are implemented; LME/LMA need LM, NX needs NX in CPUID.
  if (s.efer & ~(kEferSce | kEferLme | kEferLma | kEferNx | kEferFfxsr)) return false;
  if ((s.efer & (kEferLme | kEferLma)) && !guest_has(0x80000001, 3, 29)) return false;
  if ((s.efer & kEferNx) && !guest_has(0x80000001, 3, 20)) return false;
  if ((s.efer & kEferFfxsr) && !guest_has(0x80000001, 3, 25)) return false;
  (void)kEferSvme;
  // CR4: bits 0-10 always; the rest when the guest's CPUID has the feature.
  uint64_t ok = 0x7ff | (1u << 17);  // ... and PCIDE (checked with LMA by the CPU)
  if (guest_has(7, 2, 2)) ok |= 1u << 11;   // UMIP
  if (guest_has(7, 2, 16)) ok |= 1u << 12;  // LA57
  if (guest_has(7, 1, 0)) ok |= 1u << 16;   // FSGSBASE
  if (guest_has(1, 2, 26)) ok |= 1u << 18;  // OSXSAVE
  if (guest_has(7, 1, 7)) ok |= 1u << 20;   // SMEP
  if (guest_has(7, 1, 20)) ok |= 1u << 21;  // SMAP
  if (guest_has(7, 2, 3)) ok |= 1u << 22;   // PKE
  return !(s.cr4 & ~ok);
}

long SoftVcpu::set_sregs(const kvm_sregs& s) {
  if (!valid_sregs(s)) return -EINVAL;
  if (s.apic_base & ~0xffffffffffd00ull) return -EINVAL;  // kvm_apic_set_base: reserved bits
  apic_base_ = s.apic_base;
  ctx_->load();
  ctx_->set_cr(0, s.cr0);
  ctx_->set_cr(2, s.cr2);
  ctx_->set_cr(3, s.cr3);
  ctx_->set_cr(4, s.cr4);
  ctx_->set_efer(s.efer);
  const kvm_segment* segs[6] = {&s.es, &s.cs, &s.ss, &s.ds, &s.fs, &s.gs};
  for (int i = 0; i < 6; i++) ctx_->set_segment(i, from_kvm(*segs[i]));
  ctx_->recompute_mode();
  ctx_->store();
  uc_x86_mmr gdt{0, s.gdt.base, s.gdt.limit, 0}, idt{0, s.idt.base, s.idt.limit, 0};
  uc_.reg_write(uc, UC_X86_REG_GDTR, &gdt);
  uc_.reg_write(uc, UC_X86_REG_IDTR, &idt);
  uc_x86_mmr tr = mmr_from(s.tr), ldt = mmr_from(s.ldt);
  uc_.reg_write(uc, UC_X86_REG_TR, &tr);
  uc_.reg_write(uc, UC_X86_REG_LDTR, &ldt);
  cr8_ = s.cr8 & 0xf;
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));
  for (int i = 0; i < 256; i++)
    if (s.interrupt_bitmap[i / 64] >> (i % 64) & 1) {
      pending_irq_ = i;
      break;
    }
  return 0;
}

// KVM's struct kvm_fpu: ST(i) in stack order, the abridged tag word, XMM0-15, MXCSR.
long SoftVcpu::get_fpu(kvm_fpu* f) {
  memset(f, 0, sizeof *f);
  uint16_t fcw = 0, fsw = 0, ftag = 0, fop = 0;
  uc_.reg_read(uc, UC_X86_REG_FPCW, &fcw);
  uc_.reg_read(uc, UC_X86_REG_FPSW, &fsw);
  uc_.reg_read(uc, UC_X86_REG_FPTAG, &ftag);
  uc_.reg_read(uc, UC_X86_REG_FOP, &fop);
  f->fcw = fcw;
  f->fsw = fsw;
  const unsigned top = (fsw >> 11) & 7;
  for (int i = 0; i < 8; i++) {
    if (((ftag >> (2 * i)) & 3) != 3) f->ftwx |= uint8_t(1u << i);  // physical register i in use
    uint8_t st[10];
    uc_.reg_read(uc, UC_X86_REG_FP0 + int((top + i) & 7), st);
    memcpy(f->fpr[i], st, 10);
  }
  f->last_opcode = fop;
  f->last_ip = reg(UC_X86_REG_FIP);
  f->last_dp = reg(UC_X86_REG_FDP);
  for (int i = 0; i < 16; i++) uc_.reg_read(uc, UC_X86_REG_XMM0 + i, f->xmm[i]);
  uint32_t mxcsr = 0;
  uc_.reg_read(uc, UC_X86_REG_MXCSR, &mxcsr);
  f->mxcsr = mxcsr;
  return 0;
}

long SoftVcpu::set_fpu(const kvm_fpu& f) {
  uint16_t fcw = f.fcw, fsw = f.fsw, fop = f.last_opcode, ftag = 0;
  uc_.reg_write(uc, UC_X86_REG_FPCW, &fcw);
  uc_.reg_write(uc, UC_X86_REG_FPSW, &fsw);
  const unsigned top = (fsw >> 11) & 7;
  for (int i = 0; i < 8; i++) {
    if (!((f.ftwx >> i) & 1)) ftag |= uint16_t(3u << (2 * i));  // empty
    uint8_t st[10];
    memcpy(st, f.fpr[i], 10);
    uc_.reg_write(uc, UC_X86_REG_FP0 + int((top + i) & 7), st);
  }
  uc_.reg_write(uc, UC_X86_REG_FPTAG, &ftag);
  uc_.reg_write(uc, UC_X86_REG_FOP, &fop);
  set_reg(UC_X86_REG_FIP, f.last_ip);
  set_reg(UC_X86_REG_FDP, f.last_dp);
  for (int i = 0; i < 16; i++) uc_.reg_write(uc, UC_X86_REG_XMM0 + i, f.xmm[i]);
  uint32_t mxcsr = f.mxcsr;
  uc_.reg_write(uc, UC_X86_REG_MXCSR, &mxcsr);
  return 0;
}

// KVM_GET_XSAVE: the standard (non-compacted) XSAVE layout in 4096 bytes: the FXSAVE area, the
// header's XSTATE_BV (x87 and SSE, the only state this CPU has).
long SoftVcpu::get_xsave(uint8_t* xs) {
  memset(xs, 0, 4096);
  kvm_fpu f;
  get_fpu(&f);
  memcpy(xs + 0, &f.fcw, 2);
  memcpy(xs + 2, &f.fsw, 2);
  xs[4] = f.ftwx;
  memcpy(xs + 6, &f.last_opcode, 2);
  memcpy(xs + 8, &f.last_ip, 8);
  memcpy(xs + 16, &f.last_dp, 8);
  memcpy(xs + 24, &f.mxcsr, 4);
  const uint32_t mxcsr_mask = 0x0000ffff;
  memcpy(xs + 28, &mxcsr_mask, 4);
  for (int i = 0; i < 8; i++) memcpy(xs + 32 + 16 * i, f.fpr[i], 10);
  memcpy(xs + 160, f.xmm, 256);
  const uint64_t xstate_bv = 3;
  memcpy(xs + 512, &xstate_bv, 8);
  return 0;
}

long SoftVcpu::set_xsave(const uint8_t* xs) {
  kvm_fpu f{};
  memcpy(&f.fcw, xs + 0, 2);
  memcpy(&f.fsw, xs + 2, 2);
  f.ftwx = xs[4];
  memcpy(&f.last_opcode, xs + 6, 2);
  memcpy(&f.last_ip, xs + 8, 8);
  memcpy(&f.last_dp, xs + 16, 8);
  memcpy(&f.mxcsr, xs + 24, 4);
  for (int i = 0; i < 8; i++) memcpy(f.fpr[i], xs + 32 + 16 * i, 10);
  memcpy(f.xmm, xs + 160, 256);
  return set_fpu(f);
}

long SoftVcpu::get_debugregs(kvm_debugregs* d) {
  memset(d, 0, sizeof *d);
  memcpy(d->db, dr_, sizeof d->db);
  d->dr6 = dr6_;
  d->dr7 = dr7_;
  return 0;
}

long SoftVcpu::set_debugregs(const kvm_debugregs& d) {
  if (d.flags) return -EINVAL;
  if ((d.dr6 >> 32) || (d.dr7 >> 32)) return -EINVAL;
  memcpy(dr_, d.db, sizeof dr_);
  dr6_ = d.dr6;
  dr7_ = d.dr7;
  return 0;
}

// KVM_GET_MSRS / KVM_SET_MSRS: struct kvm_msrs then nmsrs entries; processes entries until one
// fails and returns how many succeeded. `user`: `arg` is a user pointer.
long SoftVcpu::msrs(unsigned long arg, bool user, bool write) {
  uapi::kvm_msrs_header hdr{};
  if (user ? copy_from_user(&hdr, arg, sizeof hdr) != 0 : (memcpy(&hdr, reinterpret_cast<void*>(arg), sizeof hdr), false))
    return -EFAULT;
  if (hdr.nmsrs >= 0x10000) return -E2BIG;  // MAX_IO_MSRS bound in msr_io
  std::vector<kvm_msr_entry> e(hdr.nmsrs);
  const uint64_t entries = arg + sizeof hdr;
  const size_t bytes = e.size() * sizeof(kvm_msr_entry);
  if (user ? copy_from_user(e.data(), entries, bytes) != 0
           : (memcpy(e.data(), reinterpret_cast<void*>(entries), bytes), false))
    return -EFAULT;
  uint32_t n = 0;
  for (; n < hdr.nmsrs; n++) {
    // Protected state: the MSRs the hardware keeps in the VMSA are not KVM's to read or write.
    if (sev_->state_protected.load() && protected_msr(e[n].index)) break;
    uint64_t v = e[n].data;
    if (write ? !msr_write(e[n].index, v, true) : !msr_read(e[n].index, &v, true)) break;
    e[n].data = v;
  }
  if (!write) {
    if (user ? copy_to_user(entries, e.data(), bytes) != 0 : (memcpy(reinterpret_cast<void*>(entries), e.data(), bytes), false))
      return -EFAULT;
  }
  return n;
}

bool SoftVcpu::protected_msr(uint32_t index) {
  switch (index) {
    case 0xc0000080: case 0x277: case 0xc0010130: case 0x174: case 0x175: case 0x176: case 0xc0000081:
    case 0xc0000082: case 0xc0000083: case 0xc0000084: case 0xc0000100: case 0xc0000101: case 0xc0000102:
      return true;
  }
  return false;
}

// KVM_SET_CPUID2: at most KVM_MAX_CPUID_ENTRIES; the table replaces the previous one. Once the
// vCPU has run, only the same table is accepted (kvm_set_cpuid, kvm_cpuid_check_equal): EINVAL.
long SoftVcpu::set_cpuid(unsigned long arg) {
  uapi::kvm_cpuid2_header hdr{};  // (struct kvm_cpuid2 is 8 bytes in C, more in C++: kvm_flex.h)
  if (copy_from_user(&hdr, arg, sizeof hdr)) return -EFAULT;
  if (hdr.nent > kMaxCpuidEntries) return -E2BIG;
  std::vector<kvm_cpuid_entry2> e(hdr.nent);
  if (copy_from_user(e.data(), arg + sizeof hdr, e.size() * sizeof(kvm_cpuid_entry2))) return -EFAULT;
  if (has_run_) {
    if (e.size() != cpuid_.size()) return -EINVAL;
    for (size_t i = 0; i < e.size(); i++) {
      const kvm_cpuid_entry2 &a = e[i], &b = cpuid_[i];
      if (a.function != b.function || a.index != b.index || a.flags != b.flags || a.eax != b.eax || a.ebx != b.ebx ||
          a.ecx != b.ecx || a.edx != b.edx)
        return -EINVAL;
    }
  }
  cpuid_ = std::move(e);
  return 0;
}

long SoftVcpu::get_cpuid(unsigned long arg) {
  uapi::kvm_cpuid2_header hdr{};
  if (copy_from_user(&hdr, arg, sizeof hdr)) return -EFAULT;
  const uint32_t want = uint32_t(cpuid_.size());
  if (hdr.nent < want) {
    hdr.nent = want;
    copy_to_user(arg, &hdr, sizeof hdr);
    return -E2BIG;
  }
  hdr.nent = want;
  if (copy_to_user(arg + sizeof hdr, cpuid_.data(), cpuid_.size() * sizeof(kvm_cpuid_entry2))) return -EFAULT;
  return copy_to_user(arg, &hdr, sizeof hdr) ? -EFAULT : 0;
}

// KVM_TRANSLATE: the guest's page walk for a linear address, without side effects.
long SoftVcpu::translate_gva(unsigned long arg) {
  kvm_translation t{};
  if (copy_from_user(&t, arg, sizeof t)) return -EFAULT;
  SoftMemory::RunGuard g(vm_->memory);
  Translation tr;
  uint32_t err = 0;
  const PagingState ps = paging_state();
  if (softkvm::translate(ps, *this, t.linear_address, Access::kRead, false, &tr, &err) == WalkResult::kOk) {
    t.physical_address = tr.gpa;
    t.valid = 1;
    t.writeable = tr.writable;
  } else {
    t.physical_address = ~0ull;
    t.valid = 0;
  }
  t.usermode = ps.cpl == 3;
  return copy_to_user(arg, &t, sizeof t) ? -EFAULT : 0;
}

// KVM_INTERRUPT (kvm_vcpu_ioctl_interrupt without an in-kernel irqchip): queues an external
// interrupt, injected at the next entry; a second one before that replaces the first.
long SoftVcpu::interrupt(unsigned long arg) {
  kvm_interrupt irq{};
  if (copy_from_user(&irq, arg, sizeof irq)) return -EFAULT;
  if (irq.irq >= 256) return -EINVAL;
  pending_irq_ = int(irq.irq);
  return 0;
}

namespace {

// The vCPU ioctls KVM refuses with EINVAL once an SEV-ES vCPU's state is protected (the SET
// forms after copying their argument, so a bad pointer is still EFAULT).
bool refused_when_protected(unsigned long req) {
  switch (req) {
    case KVM_GET_REGS: case KVM_SET_REGS: case KVM_GET_SREGS: case KVM_SET_SREGS: case KVM_GET_FPU:
    case KVM_SET_FPU: case KVM_GET_DEBUGREGS: case KVM_SET_DEBUGREGS: case uapi::KVMIO_GET_XSAVE: case uapi::KVMIO_SET_XSAVE:
    case KVM_GET_XCRS: case KVM_SET_XCRS: case KVM_GET_SREGS2: case KVM_SET_SREGS2:
      return true;
  }
  return false;
}

template <typename T, typename Fn>
long get_to_user(unsigned long arg, Fn fn) {
  T v{};
  long r = fn(&v);
  if (r) return r;
  return copy_to_user(arg, &v, sizeof v) ? -EFAULT : 0;
}

template <typename T, typename Fn>
long set_from_user(unsigned long arg, Fn fn) {
  T v{};
  if (copy_from_user(&v, arg, sizeof v)) return -EFAULT;
  return fn(v);
}

}  // namespace

long SoftVcpu::ioctl(unsigned long req, unsigned long arg) {
  if (vm_->sev->has_protected_state() && sev_->state_protected.load() && refused_when_protected(req)) {
    if (_IOC_DIR(req) & _IOC_WRITE) {
      std::vector<uint8_t> tmp(_IOC_SIZE(req));
      if (copy_from_user(tmp.data(), arg, tmp.size())) return -EFAULT;
    }
    return -EINVAL;
  }
  switch (req) {
    case KVM_RUN:
      if (arg) return -EINVAL;
      return run();
    case KVM_GET_REGS:
      return get_to_user<kvm_regs>(arg, [&](kvm_regs* r) { return get_regs(r); });
    case KVM_SET_REGS:
      return set_from_user<kvm_regs>(arg, [&](const kvm_regs& r) { return set_regs(r); });
    case KVM_GET_SREGS:
      return get_to_user<kvm_sregs>(arg, [&](kvm_sregs* s) { return get_sregs(s); });
    case KVM_SET_SREGS:
      return set_from_user<kvm_sregs>(arg, [&](const kvm_sregs& s) { return set_sregs(s); });
    case KVM_GET_FPU:
      return get_to_user<kvm_fpu>(arg, [&](kvm_fpu* f) { return get_fpu(f); });
    case KVM_SET_FPU:
      return set_from_user<kvm_fpu>(arg, [&](const kvm_fpu& f) { return set_fpu(f); });
    case uapi::KVMIO_GET_XSAVE: {
      std::vector<uint8_t> xs(4096);
      get_xsave(xs.data());
      return copy_to_user(arg, xs.data(), xs.size()) ? -EFAULT : 0;
    }
    case uapi::KVMIO_SET_XSAVE: {
      std::vector<uint8_t> xs(4096);
      if (copy_from_user(xs.data(), arg, xs.size())) return -EFAULT;
      return set_xsave(xs.data());
    }
    case KVM_GET_XCRS: {
      kvm_xcrs x{};
      x.nr_xcrs = 1;
      x.xcrs[0].xcr = 0;
      x.xcrs[0].value = xcr0_;
      return copy_to_user(arg, &x, sizeof x) ? -EFAULT : 0;
    }
    case KVM_SET_XCRS: {
      kvm_xcrs x{};
      if (copy_from_user(&x, arg, sizeof x)) return -EFAULT;
      if (x.nr_xcrs > KVM_MAX_XCRS || x.flags) return -EINVAL;
      for (uint32_t i = 0; i < x.nr_xcrs; i++) {
        if (x.xcrs[i].xcr != 0) return -EINVAL;
        // x87 must stay on; AVX needs SSE; only x87 and SSE exist on this CPU.
        if (!(x.xcrs[i].value & 1) || (x.xcrs[i].value & ~3ull)) return -EINVAL;
        xcr0_ = x.xcrs[i].value;
      }
      return 0;
    }
    case KVM_GET_DEBUGREGS:
      return get_to_user<kvm_debugregs>(arg, [&](kvm_debugregs* d) { return get_debugregs(d); });
    case KVM_SET_DEBUGREGS:
      return set_from_user<kvm_debugregs>(arg, [&](const kvm_debugregs& d) { return set_debugregs(d); });
    case uapi::KVMIO_GET_MSRS:
      return msrs(arg, true, false);
    case uapi::KVMIO_SET_MSRS:
      return msrs(arg, true, true);
    case uapi::KVMIO_SET_CPUID2:
      return set_cpuid(arg);
    case uapi::KVMIO_GET_CPUID2:
      return get_cpuid(arg);
    case KVM_TRANSLATE:
      return translate_gva(arg);
    case KVM_INTERRUPT:
      return interrupt(arg);
    case KVM_X86_SETUP_MCE: {  // kvm_vcpu_ioctl_x86_setup_mce
      uint64_t cap;
      if (copy_from_user(&cap, arg, sizeof cap)) return -EFAULT;
      const unsigned banks = cap & 0xff;
      if (!banks || banks > 32 || (cap & ~(kMceCapSupported | 0xff | 0xff0000))) return -EINVAL;
      mcg_cap_ = cap;
      if (cap & (1ull << 8)) mcg_ctl_ = ~0ull;
      for (unsigned b = 0; b < banks; b++) mce_banks_[4 * b] = ~0ull;
      return 0;
    }
    case KVM_GET_MP_STATE: {
      kvm_mp_state s{KVM_MP_STATE_RUNNABLE};
      return copy_to_user(arg, &s, sizeof s) ? -EFAULT : 0;
    }
    case KVM_SET_MP_STATE: {
      kvm_mp_state s{};
      if (copy_from_user(&s, arg, sizeof s)) return -EFAULT;
      return s.mp_state == KVM_MP_STATE_RUNNABLE ? 0 : -EINVAL;
    }
    case KVM_SET_GUEST_DEBUG: {
      kvm_guest_debug d{};
      if (copy_from_user(&d, arg, sizeof d)) return -EFAULT;
      // Single-stepping and hardware breakpoints are not provided by this machine.
      if (d.control & ~uint32_t(KVM_GUESTDBG_ENABLE)) return -EINVAL;
      guest_debug_ = d.control;
      sev_->guest_debug.store(d.control & KVM_GUESTDBG_ENABLE ? d.control : 0);
      return 0;
    }
    case uapi::KVMIO_SET_SIGNAL_MASK: {
      uapi::kvm_signal_mask_header h{};
      if (!arg) {
        have_sigmask_ = false;
        return 0;
      }
      if (copy_from_user(&h, arg, sizeof h)) return -EFAULT;
      if (h.len != 8) return -EINVAL;  // sizeof(kernel sigset_t)
      uint64_t bits = 0;
      if (copy_from_user(&bits, arg + sizeof h, 8)) return -EFAULT;
      sigemptyset(&run_sigmask_);
      for (int s = 1; s <= 64; s++)
        if (bits >> (s - 1) & 1) sigaddset(&run_sigmask_, s);
      have_sigmask_ = true;
      return 0;
    }
  }
  if (trace_enabled()) log_line("software KVM: vCPU ioctl 0x%lx not implemented: EINVAL", req);
  return -EINVAL;  // kvm_arch_vcpu_ioctl's default
}

long SoftVcpu::kernel_ioctl(unsigned long req, void* arg) {
  switch (req) {
    case KVM_GET_REGS: return get_regs(static_cast<kvm_regs*>(arg));
    case KVM_GET_SREGS: return get_sregs(static_cast<kvm_sregs*>(arg));
    case KVM_GET_DEBUGREGS: return get_debugregs(static_cast<kvm_debugregs*>(arg));
    case uapi::KVMIO_GET_XSAVE: return get_xsave(static_cast<uint8_t*>(arg));
    case KVM_GET_XCRS: {
      auto* x = static_cast<kvm_xcrs*>(arg);
      memset(x, 0, sizeof *x);
      x->nr_xcrs = 1;
      x->xcrs[0].value = xcr0_;
      return 0;
    }
    case uapi::KVMIO_GET_MSRS: return msrs(reinterpret_cast<unsigned long>(arg), false, false);
  }
  return -EINVAL;
}

}  // namespace sevemu::softkvm
