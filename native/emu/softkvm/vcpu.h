// A software vCPU: one Unicorn engine per KVM vCPU fd, run by KVM_RUN on the caller's thread.
//
// Unicorn executes guest code in translated blocks; the VMM must see an exit exactly at the
// instruction that causes it, with the architectural state of that instruction. So before a
// block first runs (UC_HOOK_BLOCK), its instructions are decoded; every instruction the
// hypervisor intercepts (IN/OUT/INS/OUTS, RDMSR/WRMSR, CPUID, HLT, VMMCALL/VMGEXIT, ...) becomes
// a Unicorn "exit" address: Unicorn stops right before it, and the vCPU emulates it as KVM would
// (an exit to the VMM, a #VC for SEV-ES guests, or an in-kernel answer). Memory accesses go
// through the guest's page tables walked here (mmu.h), so the SEV C-bit selects the private
// (plaintext) or shared view; accesses outside memslots stop Unicorn and become MMIO exits.
// Exceptions are delivered through the guest's IDT here, as Unicorn does not.
#pragma once

#include <linux/kvm.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "cpu_context.h"
#include "mmu.h"
#include "unicorn_api.h"
#include "x86_decode.h"

namespace sevemu {
struct VcpuState;
}

namespace sevemu::softkvm {

class SoftVm;
class Memslot;

class SoftVcpu : public PageTableMemory {
 public:
  // A vCPU belongs to its VM and lives as long as it (the VM outlives its vCPUs).
  SoftVcpu(SoftVm* vm, uint32_t id, std::shared_ptr<VcpuState> sev);
  ~SoftVcpu() override;
  // Creates the engine and puts the vCPU in KVM's RESET state; false with `why` on failure.
  bool init(std::string* why);

  // An ioctl on the vCPU fd (>= 0 or -errno), with the kernel's checks for protected state.
  long ioctl(unsigned long req, unsigned long arg);
  // The same without the user-pointer copies and protection checks: the emulated kernel reading
  // the registers for LAUNCH_UPDATE_VMSA.
  long kernel_ioctl(unsigned long req, void* arg);

  // Stops a KVM_RUN in progress at the next block boundary (any thread, or a signal handler).
  void kick();
  uint32_t id() const { return id_; }
  kvm_run* run_page() { return run_; }
  int run_fd() const { return run_fd_; }

  // PageTableMemory: the guest's page tables, read privately for SEV guests.
  uint64_t* entry(uint64_t gpa) override;
  void changed(uint64_t gpa) override;

 private:
  enum class Stop { kNone, kKick, kRescan, kMmio, kMemoryFault, kNotValidated, kPageFault, kNoTable, kException, kInvalid, kUnexpected };
  enum class Next { kContinue, kExit, kError };  // after emulating an instruction or an event

  // What the next KVM_RUN completes before running (KVM's complete_userspace_io).
  struct Completion {
    enum Kind { kNone, kPioOut, kPioIn, kStringIn, kMmioRead, kGhcbIo, kGhcbMmioRead, kPscMsr, kReqCerts } kind = kNone;
    uint64_t linear_rip = 0;
    uint8_t size = 0;      // PIO element size
    uint32_t count = 0;    // string PIO elements in this exit
    uint64_t gpa = 0;      // MMIO address; GHCB scratch buffer
    uint32_t len = 0;      // MMIO bytes
    X86Insn insn{};        // the instruction being completed
  };
  struct CodePage {
    uint64_t gpa;
    bool priv;
    std::vector<uint8_t> bytes;  // what was translated
  };
  // One instruction run with a page (a linear page that faults, or an MMIO guest-physical page)
  // behind the probe page, whose callbacks record the accesses.
  struct Probe {
    bool active = false;
    bool by_va = false;             // `page` is linear (a faulting page), else guest-physical
    uint64_t page = 0;
    const uint8_t* data = nullptr;  // what reads return (the VMM's MMIO data); null: unknown yet
    bool read_seen = false, read_missing = false, write_seen = false;
    uint32_t read_offset = 0, read_size = 0, write_offset = 0, write_size = 0;
    uint64_t write_value = 0;
  };
  struct StepResult {
    bool completed = false;  // RIP moved past the instruction with no other event
    Probe probe;
    Next next = Next::kContinue;  // what the event that stopped it asks for (when not completed)
  };
  // A fault while delivering an event: vector (-1: the event cannot be delivered here), error
  // code, and CR2 for a #PF.
  struct Fault {
    int vector = -1;
    bool has_error = false;
    uint32_t error = 0;
    uint64_t cr2 = 0;
  };
  struct GhcbCall;
  // An I/O or MMIO exit of a VMGEXIT that the next KVM_RUN completes.
  struct GhcbPending {
    uint64_t gpa = 0;          // the GHCB page
    uint64_t regs[4] = {};     // RAX, RBX, RCX, RDX as KVM holds them for this VMGEXIT
    uint8_t* buffer = nullptr; // scratch buffer
    uint16_t port = 0;
    uint8_t size = 0;
    bool input = false, string = false;
    uint32_t remaining = 0, done = 0, chunk = 0;  // string I/O elements
    uint32_t mmio_len = 0;
  };

 public:
  // Unicorn callbacks (public so the C trampolines can reach them).
  bool fill_hook(uint64_t va, uc_mem_type type, uc_tlb_entry* e);
  void on_block(uint64_t addr, uint32_t size);
  bool on_invalid_memory(uc_mem_type type, uint64_t pa, int size, int64_t value);
  void on_interrupt(uint32_t intno);
  bool on_invalid_insn();
  uint64_t probe_read(uint64_t off, unsigned size);
  void probe_write(uint64_t off, unsigned size, uint64_t value);
  // A memslot is about to change: leave the engine (KVM_RUN itself goes on).
  void stop_for_memory_change();

 private:
  // vcpu.cc: the engine, memory and the run loop.
  long run();
  long entry_checks();
  uc_err execute();
  void sync_memory();
  void map_slot(Memslot& s);
  void note_code_page(Memslot& s, uint64_t page, bool priv);
  bool guard_code_page(uint64_t va_page, const uint8_t* code);
  bool code_pages_changed();
  void apply_exits();
  void drop_translation(uint64_t addr, uint64_t len);
  void flush_private_writes();
  Next handle_stop(Stop stop, uc_err err);
  Next memory_fault_exit(uint64_t gpa, bool priv);
  bool map_probe(uc_tlb_entry* e);
  void note_memory_stop(Stop kind, uint64_t page, uint32_t error, Access a);
  Next mmio_exit();
  Next mmio_step(Probe p);
  StepResult step(const Probe& p, bool undo);
  bool decode_at(uint64_t la, X86Insn* in);
  Next complete_userspace();
  void exit_internal_error(uint32_t suberror);
  PagingState paging_state();
  bool sev_guest() const;
  bool es_guest() const;
  bool snp_guest() const;
  // SEV and SEV-ES guests' private memory: the private view of the VMM's mapping (SNP guests' is
  // guest_memfd instead).
  bool sev_private_view() const { return sev_guest() && !snp_guest(); }
  // An SNP guest's access to the page at `gpa` (`s` may be null): the C-bit says private or
  // shared and must agree with the gfn's attributes (else KVM_EXIT_MEMORY_FAULT); a private page
  // comes from guest_memfd and is assigned to the guest in the RMP on first use (as KVM prepares
  // a guest_memfd page), and the guest may use it only once validated (else #VC, error 0x404).
  enum class SnpAccess { kShared, kPrivate, kMemoryFault, kNotValidated };
  SnpAccess snp_access(const Memslot* s, uint64_t gpa, bool priv);
  uint64_t reg(int id);
  void set_reg(int id, uint64_t v);
  void set_cr2(uint64_t v);
  uint64_t linear_rip();
  CodeMode code_mode();
  // Guest accesses at a linear address, as the CPU makes them (private memory decrypted); on a
  // fault *pf_addr / *pf_error say where and why (error ~0: not memory).
  // `cpl` >= 0: access with that privilege (implicit supervisor accesses of event delivery).
  bool read_linear(uint64_t la, void* out, size_t n, Access a, uint64_t* pf_addr, uint32_t* pf_error, int cpl = -1);
  bool write_linear(uint64_t la, const void* in, size_t n, uint64_t* pf_addr, uint32_t* pf_error, int cpl = -1);
  // Where a guest access to `gpa` goes on a VM without SEV (private memory: the gfn's attributes
  // and the slot's guest_memfd decide; mmu.c kvm_mmu_faultin_pfn). `s` may be null (no slot).
  enum class Route { kShared, kGmem, kFault };
  Route route(const Memslot* s, uint64_t gpa, bool* priv = nullptr);
  // The page behind an alias (kPrivateAlias) mapping: SEV's private view or the guest_memfd.
  uint8_t* alias_ptr(Memslot& s, uint64_t gpa);
  // KVM's own accesses to guest-physical memory: the VMM's mapping (ciphertext for private pages;
  // guest_memfd for a private gfn of a VM with private memory).
  uint8_t* host_ptr(uint64_t gpa, size_t n);
  bool read_gpa(uint64_t gpa, void* out, size_t n);
  bool write_gpa(uint64_t gpa, const void* in, size_t n);

  // vcpu_insn.cc: intercepted instructions and exception delivery.
  static bool intercepted_always(const X86Insn& in);
  static bool sets_if(const X86Insn& in);
  bool intercepted(const X86Insn& in) const;
  Next emulate_at(uint64_t linear);
  Next emulate_io(const X86Insn& in);
  Next emulate_string_io(const X86Insn& in);
  Next finish_string_in(const Completion& c);
  Next emulate_msr(const X86Insn& in, bool write);
  Next emulate_cpuid(const X86Insn& in);
  Next emulate_hypercall(const X86Insn& in);
  Next emulate_pvalidate(const X86Insn& in);
  Next emulate_syscall(const X86Insn& in);
  void skip(const X86Insn& in);
  Next raise_vc(uint32_t exit_code);
  Next deliver(uint8_t vector, bool has_error, uint32_t error, bool soft_int);
  bool deliver_once(uint8_t vector, bool has_error, uint32_t error, bool soft_int, Fault* f);
  bool read_descriptor(uint16_t sel, uint64_t* lo, uint64_t* hi, Fault* f);
  bool msr_read(uint32_t index, uint64_t* value, bool host = false);
  bool msr_write(uint32_t index, uint64_t value, bool host = false);
  static bool kvm_emulated_msr(uint32_t index);
  bool pv_msr_host_write(uint32_t index, uint64_t v);
  enum class MsrAccess { kOk, kFault, kOther };
  MsrAccess mce_msr(uint32_t index, uint64_t* v, bool write, bool host);
  uint64_t msr_efer();
  void cpuid(uint32_t fn, uint32_t index, uint32_t out[4]);
  bool io_permitted(uint16_t port, unsigned size);

  // ghcb.cc: SEV-ES guests.
  Next vmgexit(const X86Insn& in);
  Next ghcb_msr_protocol();
  bool required_fields_valid(const GhcbCall& g);
  uint8_t* ghcb_scratch(GhcbCall& g, uint64_t len);
  Next ghcb_io(GhcbCall& g);
  Next ghcb_string_chunk();
  Next ghcb_mmio(GhcbCall& g);
  Next complete_ghcb(const Completion& c);
  // SNP: the MSR protocol's page-state change, guest requests.
  Next snp_psc_msr(uint64_t msr);
  Next ghcb_guest_request(GhcbCall& g, bool extended);
  Next snp_guest_request(GhcbCall& g);
  Next complete_snp(const Completion& c);

  // vcpu_regs.cc: register ioctls and the RESET state.
  void reset();
  long get_regs(kvm_regs* r);
  long set_regs(const kvm_regs& r);
  long get_sregs(kvm_sregs* s);
  long set_sregs(const kvm_sregs& s);
  long get_fpu(kvm_fpu* f);
  long set_fpu(const kvm_fpu& f);
  long get_xsave(uint8_t* xs);
  long set_xsave(const uint8_t* xs);
  long msrs(unsigned long arg, bool user, bool write);
  static bool protected_msr(uint32_t index);
  bool guest_has(uint32_t fn, int reg_index, unsigned bit);
  bool valid_sregs(const kvm_sregs& s);
  long set_cpuid(unsigned long arg);
  long get_cpuid(unsigned long arg);
  long get_debugregs(kvm_debugregs* d);
  long set_debugregs(const kvm_debugregs& d);
  long translate_gva(unsigned long arg);
  long interrupt(unsigned long arg);
  bool interrupt_allowed();
  void set_window_mode(bool on);
  Next step_native();

  SoftVm* vm_;
  const uint32_t id_;
  std::shared_ptr<VcpuState> sev_;
  const UnicornApi& uc_;
  uc_engine* uc = nullptr;
  std::unique_ptr<CpuContext> ctx_;
  int run_fd_ = -1;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;

  // Memory as this engine maps it.
  uint64_t mapped_gen_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> mapped_;  // Unicorn ranges (address, size)
  std::set<uint64_t> dirty_private_;                   // private pages written in this run (GPA)
  std::vector<CodePage> code_pages_;

  // Intercepted-instruction addresses (linear) and the blocks already scanned.
  std::set<uint64_t> exits_;
  std::set<uint64_t> cleared_exits_;  // checked and found harmless: not exits again until code changes
  bool exits_changed_ = false;
  std::unordered_set<uint64_t> scanned_;
  uint64_t rescan_addr_ = 0, rescan_size_ = 0;
  uint64_t step_exit_ = 0;  // a temporary exit to run exactly one instruction
  // Userspace irqchip: while an interrupt waits (KVM_INTERRUPT) or the VMM asked for the window,
  // instructions that can set IF (STI, POPF, IRET) are exits too, stepped one at a time.
  bool window_mode_ = false;
  std::set<uint64_t> window_exits_;
  uint64_t suppressed_exit_ = 0;  // an exit address being stepped over natively
  bool irq_shadow_ = false;       // the last instruction was STI / MOV SS / POP SS

  // Why Unicorn stopped.
  Stop stop_ = Stop::kNone;
  Stop mem_stop_ = Stop::kNone;  // the first failed TLB fill of this pass (fault, MMIO)
  uint64_t fault_va_ = 0;  // the faulting linear page
  uint32_t fault_error_ = 0;
  Access fault_access_ = Access::kRead;
  uint32_t intno_ = 0;
  uint64_t mmio_gpa_ = 0;  // the MMIO page accessed (or the page of a memory fault)
  bool fault_private_ = false;  // a memory fault's access was private
  Access mmio_access_ = Access::kRead;
  Probe probe_;
  uc_context* snapshot_ = nullptr;  // CPU state before a probed instruction

  std::atomic<bool> kicked_{false}, internal_stop_{false};  // set from any thread or a signal handler
  bool running_ = false;  // inside uc_emu_start (read by the TLB fill hook, on this thread)
  Completion pending_;
  GhcbPending ghcb_pending_;
  long run_error_ = 0;  // KVM_RUN's errno when it fails (Next::kError)
  CodeMode code_mode_for_delivery_ = CodeMode::k64;

  // State KVM keeps outside the CPU.
  uint64_t apic_base_ = 0xfee00900;  // MSR_IA32_APICBASE: enabled, BSP
  uint64_t cr8_ = 0, tsc_offset_ = 0, misc_enable_ = 1;
  uint64_t ghcb_msr_ = 0;
  uint64_t dr_[4] = {}, dr6_ = 0xffff0ff0, dr7_ = 0x400;
  uint64_t xcr0_ = 1, xss_ = 0;
  std::vector<kvm_cpuid_entry2> cpuid_;
  std::map<uint32_t, uint64_t> msrs_;  // MSRs KVM emulates (MTRRs, HWCR, ...)
  // Machine check: MCG_CAP (32 banks until KVM_X86_SETUP_MCE), MCG_CTL/STATUS, 4 MSRs per bank.
  uint64_t mcg_cap_ = 32, mcg_ctl_ = 0, mcg_status_ = 0;
  uint64_t mce_banks_[32 * 4] = {};
  uint64_t mci_ctl2_[32] = {};
  uint64_t ap_jump_table_ = 0;
  uint64_t ghcb_registered_gpa_ = 0;  // SNP: the GHCB GPA the guest registered (MSR protocol)
  uint64_t snp_req_[2] = {};          // SNP: a guest request waiting for the VMM's certificates
  int pending_irq_ = -1;  // KVM_INTERRUPT
  bool has_run_ = false;  // kvm_vcpu_has_run: the guest was entered once
  uint32_t guest_debug_ = 0;
  sigset_t run_sigmask_;
  bool have_sigmask_ = false;
};

}  // namespace sevemu::softkvm
