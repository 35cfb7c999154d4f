// The software vCPU's engine, memory view and KVM_RUN loop. See vcpu.h for the design.
#include "vcpu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common.h"
#include "kvm_vm.h"
#include "real_libc.h"
#include "signals.h"
#include "uapi/kvm_run.h"
#include "vm.h"

namespace sevemu::softkvm {

namespace {

constexpr uint32_t kRunPages = 3;    // struct kvm_run, the PIO data page, the coalesced MMIO ring
constexpr uint64_t kSvmExitErr = ~0ull;
constexpr uint32_t kVcPageNotValidated = 0x404;  // #VC error code: a private page not validated

// Unicorn callbacks → the vCPU.
bool fill_cb(uc_engine*, uint64_t va, uc_mem_type type, uc_tlb_entry* e, void* v) {
  return static_cast<SoftVcpu*>(v)->fill_hook(va, type, e);
}

}  // namespace

SoftVcpu::SoftVcpu(SoftVm* vm, uint32_t id, std::shared_ptr<VcpuState> sev)
    : vm_(vm), id_(id), sev_(std::move(sev)), uc_(*unicorn()) {
  sigemptyset(&run_sigmask_);
}

SoftVcpu::~SoftVcpu() {
  if (run_) munmap(run_, run_size_);
  if (run_fd_ >= 0) real::close(run_fd_);
  ctx_.reset();
  if (uc) uc_.close(uc);
  if (snapshot_) uc_.context_free(snapshot_);
}

bool SoftVcpu::init(std::string* why) {
  const CpuLayout* layout = cpu_layout(why);
  if (!layout) return false;
  if (uc_.open(UC_ARCH_X86, UC_MODE_64, &uc) != UC_ERR_OK) return *why = "cannot create a Unicorn engine", false;
  // Each engine reserves its code cache up front; 1 GiB by default is a lot per vCPU.
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TCG_BUFFER_SIZE, 1), uint32_t(64u << 20));
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_TYPE, 1), UC_TLB_VIRTUAL);
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_UC_USE_EXITS, 1), 1);
  uc_hook h;
  bool ok = uc_.hook_add(uc, &h, UC_HOOK_TLB_FILL, reinterpret_cast<void*>(fill_cb), this, 1, 0) == UC_ERR_OK;
  ok = ok && uc_.hook_add(uc, &h, UC_HOOK_BLOCK,
                          reinterpret_cast<void*>(+[](uc_engine*, uint64_t a, uint32_t s, void* v) {
                            static_cast<SoftVcpu*>(v)->on_block(a, s);
                          }),
                          this, 1, 0) == UC_ERR_OK;
  ok = ok && uc_.hook_add(uc, &h, UC_HOOK_MEM_INVALID,
                          reinterpret_cast<void*>(+[](uc_engine*, uc_mem_type t, uint64_t a, int n, int64_t val, void* v) {
                            return static_cast<SoftVcpu*>(v)->on_invalid_memory(t, a, n, val);
                          }),
                          this, 1, 0) == UC_ERR_OK;
  ok = ok && uc_.hook_add(uc, &h, UC_HOOK_INTR, reinterpret_cast<void*>(+[](uc_engine*, uint32_t n, void* v) {
                            static_cast<SoftVcpu*>(v)->on_interrupt(n);
                          }),
                          this, 1, 0) == UC_ERR_OK;
  ok = ok && uc_.hook_add(uc, &h, UC_HOOK_INSN_INVALID, reinterpret_cast<void*>(+[](uc_engine*, void* v) {
                            return static_cast<SoftVcpu*>(v)->on_invalid_insn();
                          }),
                          this, 1, 0) == UC_ERR_OK;
  if (!ok) return *why = "cannot hook the Unicorn engine", false;

  // The probe page: while one instruction runs with an MMIO page (or a faulting page) behind it,
  // its accesses reach these callbacks with their exact offset, size and value.
  if (uc_.mmio_map(uc, kScratchAddr, kPage,
                   +[](uc_engine*, uint64_t off, unsigned size, void* v) {
                     return static_cast<SoftVcpu*>(v)->probe_read(off, size);
                   },
                   this,
                   +[](uc_engine*, uint64_t off, unsigned size, uint64_t value, void* v) {
                     static_cast<SoftVcpu*>(v)->probe_write(off, size, value);
                   },
                   this) != UC_ERR_OK)
    return *why = "cannot map the probe page", false;
  if (uc_.context_alloc(uc, &snapshot_) != UC_ERR_OK) return *why = "out of memory", false;

  ctx_ = std::make_unique<CpuContext>(uc_, uc, *layout);
  if (!ctx_->ok()) return *why = "out of memory", false;

  // struct kvm_run lives in a memfd the VMM mmaps through the vCPU fd.
  run_size_ = kRunPages * kPage;
  run_fd_ = memfd_create("sevemu-kvm-vcpu", MFD_CLOEXEC);
  if (run_fd_ < 0 || ftruncate(run_fd_, off_t(run_size_)) != 0) return *why = strerror(errno), false;
  void* rp = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, run_fd_, 0);
  if (rp == MAP_FAILED) return *why = strerror(errno), false;
  run_ = static_cast<kvm_run*>(rp);
  reset();
  return true;
}

bool SoftVcpu::sev_guest() const { return vm_->sev->active; }
bool SoftVcpu::es_guest() const { return vm_->sev->active && vm_->sev->es_active; }
bool SoftVcpu::snp_guest() const { return vm_->sev->snp_active(); }

SoftVcpu::SnpAccess SoftVcpu::snp_access(const Memslot* s, uint64_t gpa, bool priv) {
  const uint64_t page = gpa & ~(kPage - 1);
  if (priv != vm_->memory.is_private(page / kPage)) return SnpAccess::kMemoryFault;
  if (!priv) return SnpAccess::kShared;
  if (!s || !s->gmem || !s->gmem_bound.load(std::memory_order_acquire)) return SnpAccess::kMemoryFault;
  RmpEntry& r = s->rmp(page);
  if (!r.assigned) r = RmpEntry{true, false, false, vm_->sev->asid, page};  // sev_gmem_prepare
  if (!r.validated || r.gpa != page || r.asid != vm_->sev->asid) return SnpAccess::kNotValidated;
  return SnpAccess::kPrivate;
}

uint64_t SoftVcpu::reg(int id) {
  uint64_t v = 0;
  uc_.reg_read(uc, id, &v);
  return v;
}

void SoftVcpu::set_reg(int id, uint64_t v) { uc_.reg_write(uc, id, &v); }

// Unicorn's CR2 write also reloads CR3 with the value: CR2 goes through the saved state.
void SoftVcpu::set_cr2(uint64_t v) {
  ctx_->load();
  ctx_->set_cr(2, v);
  ctx_->store();
}

// The guest's paging state, read from the engine at each fill (the guest changes CR3 at will).
PagingState SoftVcpu::paging_state() {
  PagingState ps;
  ps.cr0 = reg(UC_X86_REG_CR0);
  ps.cr3 = reg(UC_X86_REG_CR3);
  ps.cr4 = reg(UC_X86_REG_CR4);
  uc_x86_msr efer{0xC0000080, 0};
  uc_.reg_read(uc, UC_X86_REG_MSR, &efer);
  ps.efer = efer.value;
  if (ps.cr0 & 1) {
    // Mid-block, the engine's RFLAGS comes from stale lazy flags (VM bit included): CPL is taken
    // from the mode bits, which stay exact.
    ctx_->load();
    ps.cpl = ctx_->cpl();
  }
  ps.maxphyaddr = vm_->maxphyaddr;
  ps.c_bit = sev_guest() ? vm_->c_bit : 0;
  return ps;
}

uint64_t* SoftVcpu::entry(uint64_t gpa) {
  Memslot* s = vm_->memory.find(gpa);
  if (!s || (gpa & 7)) return nullptr;
  auto key = sev_private_view() ? vm_->sev->memory_key() : nullptr;
  if (!key) {
    switch (route(s, gpa)) {
      case Route::kShared: return reinterpret_cast<uint64_t*>(s->host(gpa));
      case Route::kGmem: return reinterpret_cast<uint64_t*>(s->gmem_ptr(gpa));
      case Route::kFault: return nullptr;
    }
  }
  // Page-table walks of an SEV guest are always private.
  uint8_t* page = vm_->memory.private_page(*s, gpa, *key);
  return reinterpret_cast<uint64_t*>(page + (gpa & (kPage - 1)));
}

void SoftVcpu::changed(uint64_t gpa) {
  if (sev_private_view() && vm_->sev->memory_key()) dirty_private_.insert(gpa & ~(kPage - 1));
}

// Unicorn's TLB fill: the guest's page walk, then where the page is. Faults and MMIO return
// false, which stops Unicorn exactly at the instruction, with its state restored (a miss on
// unmapped Unicorn memory would not: Unicorn drops the access and finishes the block).
bool SoftVcpu::fill_hook(uint64_t va, uc_mem_type type, uc_tlb_entry* e) {
  // Outside uc_emu_start (dropping a translation looks the code page up) a failed fill would
  // leave Unicorn's error state set, and Unicorn 2.1.1 then refuses every uc_mem_map_ptr: such a
  // lookup gets the probe page, and drop_translation flushes the TLB after it.
  const bool outside = !running_;
  const Access a = type == UC_MEM_WRITE ? Access::kWrite : type == UC_MEM_FETCH ? Access::kFetch : Access::kRead;
  const uint64_t va_page = va & ~(kPage - 1);
  const PagingState ps = paging_state();
  Translation t;
  uint32_t error = 0;
  WalkResult w = translate(ps, *this, va, a, true, &t, &error);
  if (w != WalkResult::kOk) {
    if (outside || (probe_.active && probe_.by_va && va_page == probe_.page)) return map_probe(e);
    note_memory_stop(w == WalkResult::kNoTable ? Stop::kNoTable : Stop::kPageFault, va_page, error, a);
    return false;
  }
  const uint64_t page = t.gpa & ~(kPage - 1);
  if (probe_.active && !probe_.by_va && page == probe_.page) return map_probe(e);
  Memslot* s = vm_->memory.find(page);
  if (snp_guest()) {
    // Instruction fetches are private, data accesses follow the C-bit (paging off: private).
    const bool priv = t.private_access || a == Access::kFetch;
    const SnpAccess k = snp_access(s, page, priv);
    if (k == SnpAccess::kMemoryFault || k == SnpAccess::kNotValidated) {
      if (outside) return map_probe(e);
      fault_private_ = priv;
      note_memory_stop(k == SnpAccess::kMemoryFault ? Stop::kMemoryFault : Stop::kNotValidated, page, 0, a);
      return false;
    }
    if (!s || (a == Access::kWrite && s->readonly())) {
      if (outside) return map_probe(e);
      note_memory_stop(Stop::kMmio, page, 0, a);
      return false;
    }
    int perms = UC_PROT_READ;
    if (a == Access::kWrite) perms |= UC_PROT_WRITE;
    if (t.executable && priv) perms |= UC_PROT_EXEC;
    if (priv && !t.private_access) perms = UC_PROT_EXEC;  // fetch from a C=0 page only
    e->paddr = priv ? kPrivateAlias + page : page;
    e->perms = uc_prot(perms);
    if (a == Access::kFetch) {
      note_code_page(*s, page, true);
      if (guard_code_page(va_page, alias_ptr(*s, page))) {
        note_memory_stop(Stop::kRescan, page, 0, a);
        return false;
      }
    }
    return true;
  }
  bool priv_attr = false;
  const Route where = sev_guest() ? Route::kShared : route(s, page, &priv_attr);
  if (where == Route::kFault) {
    if (outside) return map_probe(e);
    // A private gfn without guest_memfd behind it (or a closed one): KVM_EXIT_MEMORY_FAULT.
    fault_private_ = priv_attr;
    note_memory_stop(Stop::kMemoryFault, page, 0, a);
    return false;
  }
  if (!s || (a == Access::kWrite && s->readonly())) {
    if (outside) return map_probe(e);
    // MMIO (no memslot), or a write to a read-only memslot: KVM_EXIT_MMIO.
    note_memory_stop(Stop::kMmio, page, 0, a);
    return false;
  }
  auto key = sev_guest() ? vm_->sev->memory_key() : nullptr;
  // SEV: instruction fetches are always private, data accesses follow the C-bit.
  const bool priv = key && (t.private_access || a == Access::kFetch);
  int perms = UC_PROT_READ;
  if (a == Access::kWrite) perms |= UC_PROT_WRITE;  // later writes refill: dirty tracking
  if (t.executable && (!key || priv)) perms |= UC_PROT_EXEC;
  if (key && priv && !t.private_access) perms = UC_PROT_EXEC;  // fetch from a C=0 page only
  if (where == Route::kGmem) {
    e->paddr = kPrivateAlias + page;  // map_slot maps the guest_memfd there
  } else if (priv) {
    vm_->memory.private_page(*s, page, *key);
    e->paddr = kPrivateAlias + page;
    if (a == Access::kWrite) dirty_private_.insert(page);
  } else {
    e->paddr = page;
  }
  e->perms = uc_prot(perms);
  if (a == Access::kFetch) {
    const bool alias = priv || where == Route::kGmem;
    note_code_page(*s, page, alias);
    if (guard_code_page(va_page, alias ? alias_ptr(*s, page) : s->host(page))) {
      note_memory_stop(Stop::kRescan, page, 0, a);
      return false;  // translate again once the new exits are set
    }
  }
  return true;
}

// Encodings that abort Unicorn 2.1's translator (tcg fatal error) instead of raising #UD: LOCK
// BT/BTS/BTR/BTC with a register operand. Translation happens before a block can be scanned, so a
// code page is searched for them when it enters the TLB: every place such an instruction could
// start becomes an exit (a place that is no instruction start is never checked by the
// translator), and emulate_at raises the #UD the hardware raises. True when exits were added.
bool SoftVcpu::guard_code_page(uint64_t va_page, const uint8_t* code) {
  auto prefix = [](uint8_t b) {
    return b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 ||
           b == 0x65 || b == 0x66 || b == 0x67 || (b >= 0x40 && b <= 0x4f);
  };
  bool added = false;
  for (size_t i = 1; i + 2 < kPage; i++) {
    if (code[i] != 0x0f) continue;
    const uint8_t op = code[i + 1], modrm = code[i + 2];
    const bool bt = op == 0xa3 || op == 0xab || op == 0xb3 || op == 0xbb || (op == 0xba && ((modrm >> 3) & 7) >= 4);
    if (!bt || modrm < 0xc0) continue;
    size_t start = i;
    bool lock = false;
    while (start > 0 && prefix(code[start - 1]) && i - start < 14) lock |= code[--start] == 0xf0;
    if (!lock) continue;
    for (size_t j = start; j <= i; j++)
      if (!cleared_exits_.count(va_page + j) && exits_.insert(va_page + j).second) added = exits_changed_ = true;
  }
  return added;
}

// The first failed fill of a pass is why Unicorn stopped with UC_ERR_EXCEPTION. Later ones
// are not: after every pass Unicorn looks up the code at each exit address again (to drop its
// translation), and those lookups may fail harmlessly.
void SoftVcpu::note_memory_stop(Stop kind, uint64_t page, uint32_t error, Access a) {
  if (mem_stop_ != Stop::kNone) return;
  mem_stop_ = kind;
  if (kind == Stop::kMmio || kind == Stop::kMemoryFault) {
    mmio_gpa_ = page;
    mmio_access_ = a;
  } else {
    fault_va_ = page;
    fault_error_ = error;
    fault_access_ = a;
  }
}

bool SoftVcpu::map_probe(uc_tlb_entry* e) {
  e->paddr = kScratchAddr;
  e->perms = UC_PROT_ALL;
  return true;
}

uint64_t SoftVcpu::probe_read(uint64_t off, unsigned size) {
  if (!probe_.read_seen) {
    probe_.read_seen = true;
    probe_.read_offset = uint32_t(off);
    probe_.read_size = size;
  }
  uint64_t v = 0;
  if (probe_.data)
    memcpy(&v, probe_.data, std::min<unsigned>(size, 8));
  else
    probe_.read_missing = true;
  return v;
}

void SoftVcpu::probe_write(uint64_t off, unsigned size, uint64_t value) {
  if (probe_.write_seen) return;
  probe_.write_seen = true;
  probe_.write_offset = uint32_t(off);
  probe_.write_size = size;
  probe_.write_value = value;
}

void SoftVcpu::note_code_page(Memslot& s, uint64_t page, bool priv) {
  for (const auto& c : code_pages_)
    if (c.gpa == page) return;
  const uint8_t* bytes = priv ? alias_ptr(s, page) : s.host(page);
  code_pages_.push_back({page, priv, std::vector<uint8_t>(bytes, bytes + kPage)});
}

// Code the engine translated must still be what the guest would execute now: the VMM may have
// written guest memory between runs, which Unicorn cannot see. Any change drops every translation.
bool SoftVcpu::code_pages_changed() {
  auto key = sev_private_view() ? vm_->sev->memory_key() : nullptr;
  for (const auto& c : code_pages_) {
    Memslot* s = vm_->memory.find(c.gpa);
    const uint8_t* now = nullptr;
    if (s && c.priv)
      now = key ? vm_->memory.private_page(*s, c.gpa, *key) : s->gmem ? s->gmem_ptr(c.gpa) : nullptr;
    else if (s)
      now = s->host(c.gpa);
    if (!now || memcmp(now, c.bytes.data(), kPage) != 0) return true;
  }
  return false;
}

void SoftVcpu::sync_memory() {
  if (mapped_gen_ == vm_->memory.generation()) return;
  for (const auto& m : mapped_) {
    uc_err e = uc_.mem_unmap(uc, m.first, m.second);
    if (e != UC_ERR_OK)
      log_line("software KVM: cannot unmap 0x%llx+0x%llx: %s", (unsigned long long)m.first,
               (unsigned long long)m.second, uc_.strerror(e));
  }
  mapped_.clear();
  for (const auto& s : vm_->memory.slots()) map_slot(*s);
  mapped_gen_ = vm_->memory.generation();
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TB_FLUSH, 0));
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));
  scanned_.clear();
  code_pages_.clear();
  cleared_exits_.clear();
}

void SoftVcpu::map_slot(Memslot& s) {
  if (s.id >> 16) return;  // address space 1 (SMM): never used by this CPU
  const int prot = s.readonly() ? (UC_PROT_READ | UC_PROT_EXEC) : UC_PROT_ALL;
  uc_err e = uc_.mem_map_ptr(uc, s.gpa, s.size, uint32_t(prot), s.host(s.gpa));
  if (e == UC_ERR_OK)
    mapped_.push_back({s.gpa, s.size});
  else
    log_line("software KVM: cannot map memslot %u at 0x%llx: %s", s.id, (unsigned long long)s.gpa, uc_.strerror(e));
  if (sev_private_view()) {
    if (uc_.mem_map_ptr(uc, kPrivateAlias + s.gpa, s.size, UC_PROT_ALL, s.private_plain()) == UC_ERR_OK)
      mapped_.push_back({kPrivateAlias + s.gpa, s.size});
  } else if (s.gmem) {
    // guest_memfd-backed pages (private gfns; every gfn of an mmap-able guest_memfd).
    if (uc_.mem_map_ptr(uc, kPrivateAlias + s.gpa, s.size, UC_PROT_ALL, s.gmem_ptr(s.gpa)) == UC_ERR_OK)
      mapped_.push_back({kPrivateAlias + s.gpa, s.size});
  }
}

void SoftVcpu::on_block(uint64_t addr, uint32_t size) {
  if (kicked_.load(std::memory_order_relaxed) || internal_stop_.load(std::memory_order_relaxed)) {
    stop_ = Stop::kKick;
    uc_.emu_stop(uc);
    return;
  }
  const uint64_t key = addr ^ (uint64_t(size) << 52) ^ (uint64_t(size) >> 12);
  if (!scanned_.insert(key).second) return;
  // Decode the block before it runs; every intercepted instruction becomes an exit address.
  std::vector<uint8_t> bytes(size);
  uint64_t pf_addr;
  uint32_t pf_err;
  if (!size || !read_linear(addr, bytes.data(), size, Access::kFetch, &pf_addr, &pf_err)) return;
  const CodeMode mode = code_mode();
  std::vector<uint64_t> found;
  for (uint32_t off = 0; off < size;) {
    X86Insn in;
    if (!decode_x86(bytes.data() + off, size - off, mode, &in)) {
      // An encoding the hardware refuses (Unicorn may run it anyway, e.g. a VEX-encoded CPUID or
      // a LOCK IN, past the intercepts): stop before it; emulate_at raises #UD.
      if (!exits_.count(addr + off)) found.push_back(addr + off);
      break;
    }
    if (intercepted(in) && !exits_.count(addr + off)) found.push_back(addr + off);
    if (window_mode_ && sets_if(in) && window_exits_.insert(addr + off).second) found.push_back(addr + off);
    off += in.length;
  }
  if (found.empty()) return;
  for (uint64_t a : found)
    if (!window_exits_.count(a)) exits_.insert(a);
  exits_changed_ = true;
  rescan_addr_ = addr;
  rescan_size_ = size;
  stop_ = Stop::kRescan;
  uc_.emu_stop(uc);
}

// Every access is mapped by fill_hook, so Unicorn's own unmapped/protection paths should not be
// reached; if they are, the block cannot be stopped exactly: report an emulation failure.
bool SoftVcpu::on_invalid_memory(uc_mem_type type, uint64_t pa, int size, int64_t value) {
  (void)value;
  log_line("software KVM: vCPU %u: unexpected access type %d at 0x%llx (%d bytes)", id_, int(type),
           (unsigned long long)pa, size);
  stop_ = Stop::kUnexpected;
  return false;
}

void SoftVcpu::on_interrupt(uint32_t intno) {
  intno_ = intno;
  stop_ = Stop::kException;
  uc_.emu_stop(uc);
}

bool SoftVcpu::on_invalid_insn() {
  stop_ = Stop::kInvalid;
  return false;
}

void SoftVcpu::apply_exits() {
  if (!exits_changed_) return;
  std::vector<uint64_t> v(exits_.begin(), exits_.end());
  if (window_mode_) v.insert(v.end(), window_exits_.begin(), window_exits_.end());
  if (suppressed_exit_) v.erase(std::remove(v.begin(), v.end(), suppressed_exit_), v.end());
  if (step_exit_) v.push_back(step_exit_);
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_UC_EXITS, 2), v.data(), v.size());
  exits_changed_ = false;
}

void SoftVcpu::drop_translation(uint64_t addr, uint64_t len) {
  if (!len) return;
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2), addr, addr + len);
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));  // the lookup's TLB entry (see fill_hook)
}

// Both only raise a flag: the block hook (on_block) stops the engine at the next block, before
// the block runs. uc_emu_stop from another thread or a signal handler is not safe: measured, a
// block with a memory access then ends part-way with RIP rewound to its start, so the
// instructions before the access run twice (an `add rsp` doubled, a `ret` to garbage).
void SoftVcpu::kick() { kicked_.store(true); }

void SoftVcpu::stop_for_memory_change() { internal_stop_.store(true); }

// Encrypts the private pages this run wrote back into the VMM's mapping. Caller holds a RunGuard.
void SoftVcpu::flush_private_writes() {
  if (dirty_private_.empty()) return;
  auto key = vm_->sev->memory_key();
  for (uint64_t page : dirty_private_)
    if (Memslot* s = vm_->memory.find(page); s && key) vm_->memory.write_back(*s, page, *key);
  dirty_private_.clear();
}

// One pass of the engine from RIP until it stops; returns Unicorn's verdict. Caller holds a
// RunGuard.
uc_err SoftVcpu::execute() {
  apply_exits();
  stop_ = Stop::kNone;
  mem_stop_ = Stop::kNone;
  running_ = true;
  if (kicked_.load() || internal_stop_.load()) {
    running_ = false;
    stop_ = Stop::kKick;
    return UC_ERR_OK;
  }
  uc_err err = uc_.emu_start(uc, reg(UC_X86_REG_RIP), 0, 0, 0);
  running_ = false;
  if (err == UC_ERR_EXCEPTION && mem_stop_ != Stop::kNone) stop_ = mem_stop_;
  return err;
}

long SoftVcpu::run() {
  if (run_->immediate_exit) {
    run_->exit_reason = KVM_EXIT_INTR;
    return -EINTR;
  }
  kicked_.store(false);
  SignalScope signals(this, have_sigmask_ ? &run_sigmask_ : nullptr);
  if (kicked_.load()) {  // a signal the run's mask unblocked arrived at once
    run_->exit_reason = KVM_EXIT_INTR;
    return -EINTR;
  }
  if (es_guest() && !sev_->state_protected.load()) {
    // VMRUN of an SEV-ES guest needs the VMSA that LAUNCH_UPDATE_VMSA encrypted.
    run_->exit_reason = KVM_EXIT_FAIL_ENTRY;
    run_->fail_entry.hardware_entry_failure_reason = kSvmExitErr;
    run_->fail_entry.cpu = 0;
    return 0;
  }
  Next n;
  {
    SoftMemory::RunGuard g(vm_->memory);
    sync_memory();
    if (!entry_checks()) return 0;
    has_run_ = true;  // a VM entry happens now (last_vmentry_cpu is set)
    n = complete_userspace();
    if (code_pages_changed()) {
      uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TB_FLUSH, 0));
      scanned_.clear();
      code_pages_.clear();
      cleared_exits_.clear();
    }
  }
  // SEV: every private page the guest writes in this run must be noticed (dirty tracking).
  if (sev_guest()) uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));
  long result = 0;
  while (n == Next::kContinue) {
    internal_stop_.store(false);  // before the guard: a memslot change after this stops us again
    SoftMemory::RunGuard g(vm_->memory);
    sync_memory();
    if (kicked_.load()) {
      run_->exit_reason = KVM_EXIT_INTR;
      result = -EINTR;
      break;
    }
    // Userspace irqchip (x86.c): KVM_INTERRUPT (and SET_SREGS' interrupt_bitmap) queue the
    // vector as already injected (kvm_queue_interrupt), so inject_pending_event re-injects it at
    // the next entry without asking whether the guest takes interrupts (SVM's EVENTINJ: IF does
    // not mask it); the VMM is the one to wait for ready_for_interrupt_injection. Its request for
    // the window ends the run with KVM_EXIT_IRQ_WINDOW_OPEN once the window is open; until then,
    // IF setters are exits.
    if (pending_irq_ >= 0) {
      const uint8_t v = uint8_t(pending_irq_);
      pending_irq_ = -1;
      n = deliver(v, false, 0, false);
      continue;
    }
    const bool waiting = run_->request_interrupt_window;
    if (waiting && interrupt_allowed()) {
      set_window_mode(false);
      run_->exit_reason = KVM_EXIT_IRQ_WINDOW_OPEN;
      break;
    }
    set_window_mode(waiting);
    const uint64_t la = linear_rip();
    if (exits_.count(la)) {
      irq_shadow_ = false;
      n = emulate_at(la);
      continue;
    }
    if (irq_shadow_ || (window_mode_ && window_exits_.count(la))) {
      n = step_native();
      continue;
    }
    uc_err err = execute();
    irq_shadow_ = false;
    n = handle_stop(stop_, err);
  }
  {
    SoftMemory::RunGuard g(vm_->memory);
    flush_private_writes();
  }
  run_->if_flag = (reg(UC_X86_REG_RFLAGS) >> 9) & 1;
  run_->cr8 = cr8_;
  run_->apic_base = apic_base_;
  run_->ready_for_interrupt_injection = run_->if_flag && !irq_shadow_ && pending_irq_ < 0;
  if (n == Next::kError) result = run_error_ ? run_error_ : -EFAULT;
  run_error_ = 0;
  return result;
}

// VMRUN's consistency checks on the state the VMM set (APM 15.5.1): a failing one is
// KVM_EXIT_FAIL_ENTRY (returns 0). KVM_SET_SREGS already refused what KVM itself checks.
long SoftVcpu::entry_checks() {
  ctx_->load();
  const uint64_t cr0 = ctx_->cr(0), cr4 = ctx_->cr(4), efer = ctx_->efer();
  const SegmentCache cs = ctx_->segment(kCs);
  bool bad = (!(cr0 & (1ull << 30)) && (cr0 & (1ull << 29))) ||  // CR0.NW without CD
             (cr0 >> 32) || (dr6_ >> 32) || (dr7_ >> 32);
  if ((efer & (1u << 8)) && (cr0 & (1ull << 31))) {  // long mode
    if (!(cr4 & (1u << 5)) || !(cr0 & 1)) bad = true;
    if ((cs.flags & kDescL) && (cs.flags & kDescB)) bad = true;
  }
  if (!bad) return 1;
  run_->exit_reason = KVM_EXIT_FAIL_ENTRY;
  run_->fail_entry.hardware_entry_failure_reason = kSvmExitErr;
  run_->fail_entry.cpu = 0;
  return 0;
}

// kvm_prepare_memory_fault_exit: KVM_RUN fails with EFAULT, the guest stays at the access.
SoftVcpu::Next SoftVcpu::memory_fault_exit(uint64_t gpa, bool priv) {
  auto* r = reinterpret_cast<uapi::kvm_run_exits*>(run_);
  r->exit_reason = uapi::EXIT_MEMORY_FAULT;
  r->memory_fault.flags = priv ? uapi::MEMORY_EXIT_FLAG_PRIVATE : 0;
  r->memory_fault.gpa = gpa;
  r->memory_fault.size = kPage;
  run_error_ = -EFAULT;
  return Next::kError;
}

SoftVcpu::Next SoftVcpu::handle_stop(Stop stop, uc_err err) {
  switch (stop) {
    case Stop::kKick:
      return Next::kContinue;  // the loop reports a user kick; a memslot change just resumes
    case Stop::kRescan:
      apply_exits();
      if (mem_stop_ != Stop::kRescan) drop_translation(rescan_addr_, rescan_size_);  // else: not translated yet
      return Next::kContinue;
    case Stop::kPageFault: {
      if (err != UC_ERR_EXCEPTION) return Next::kContinue;  // a probe that did not fault
      // CR2 is the faulting address itself: run the instruction once more with the page behind
      // the probe page to learn its offset, then undo it.
      const uint64_t page = fault_va_;
      const uint32_t error = fault_error_;
      const bool fetch = fault_access_ == Access::kFetch;
      uint64_t cr2 = page;
      if (fetch) {
        const uint64_t la = linear_rip();
        if ((la & ~(kPage - 1)) == page) cr2 = la;
      } else {
        Probe p;
        p.by_va = true;
        p.page = page;
        StepResult r = step(p, true);
        if (r.probe.read_seen || r.probe.write_seen)
          cr2 = page | (r.probe.read_seen ? r.probe.read_offset : r.probe.write_offset);
      }
      set_cr2(cr2);
      return deliver(14, true, error, false);
    }
    case Stop::kNoTable:
    case Stop::kUnexpected:
      exit_internal_error(KVM_INTERNAL_ERROR_EMULATION);
      return Next::kExit;
    case Stop::kMmio:
      if (err != UC_ERR_EXCEPTION) return Next::kContinue;
      return mmio_exit();
    case Stop::kNotValidated:
      // A private page the guest has not validated (PVALIDATE): #VC, "page not validated".
      if (err != UC_ERR_EXCEPTION) return Next::kContinue;
      return deliver(29, true, kVcPageNotValidated, false);
    case Stop::kMemoryFault:
      if (err != UC_ERR_EXCEPTION) return Next::kContinue;
      return memory_fault_exit(mmio_gpa_, fault_private_);
    case Stop::kException: {
      ctx_->load();
      const bool soft = ctx_->software_interrupt();
      const int32_t code = ctx_->error_code();
      ctx_->clear_exception();  // Unicorn never clears it: the next fault would become #DF
      ctx_->store();
      const uint8_t v = uint8_t(intno_);
      const bool has_error = !soft && (v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30);
      return deliver(v, has_error, uint32_t(code), soft);
    }
    case Stop::kInvalid:
      return deliver(6, false, 0, false);  // #UD
    case Stop::kNone:
      break;
  }
  if (err == UC_ERR_OK) return Next::kContinue;  // at an exit address (emulated next) or stopped
  log_line("software KVM: vCPU %u stopped on %s at rip 0x%llx", id_, uc_.strerror(err),
           (unsigned long long)reg(UC_X86_REG_RIP));
  exit_internal_error(KVM_INTERNAL_ERROR_EMULATION);
  return Next::kExit;
}

void SoftVcpu::exit_internal_error(uint32_t suberror) {
  run_->exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run_->internal.suberror = suberror;
  run_->internal.ndata = 0;
}

// An access outside every memslot (or a write to a read-only one): KVM_EXIT_MMIO. The
// instruction runs once with the page behind the probe page, which tells the access: a write
// completes (RIP moves past it, as KVM emulates the instruction before exiting); a read is undone
// and completes on the next KVM_RUN with the VMM's data.
SoftVcpu::Next SoftVcpu::mmio_exit() {
  if (mmio_access_ == Access::kFetch) {
    exit_internal_error(KVM_INTERNAL_ERROR_EMULATION);  // executing from MMIO cannot be emulated
    return Next::kExit;
  }
  if (es_guest()) return raise_vc(0x400);  // SVM_EXIT_NPF: the guest's #VC handler does the access
  Probe p;
  p.page = mmio_gpa_;
  return mmio_step(p);
}

SoftVcpu::Next SoftVcpu::mmio_step(Probe p) {
  const uint64_t rip_before = linear_rip();
  StepResult r = step(p, false);
  if (r.probe.read_missing) {
    uc_.context_restore(uc, snapshot_);  // undo: the read completes with the VMM's data
    pending_ = {};
    pending_.kind = Completion::kMmioRead;
    pending_.linear_rip = rip_before;
    pending_.gpa = p.page | r.probe.read_offset;
    pending_.len = std::min<uint32_t>(r.probe.read_size, 8);
    run_->exit_reason = KVM_EXIT_MMIO;
    run_->mmio.phys_addr = pending_.gpa;
    run_->mmio.len = pending_.len;
    run_->mmio.is_write = 0;
    memset(run_->mmio.data, 0, sizeof run_->mmio.data);
    return Next::kExit;
  }
  if (!r.completed) return r.next;  // the instruction raised an event before or besides its access
  if (r.probe.write_seen) {
    run_->exit_reason = KVM_EXIT_MMIO;
    run_->mmio.phys_addr = p.page | r.probe.write_offset;
    run_->mmio.len = std::min<uint32_t>(r.probe.write_size, 8);
    run_->mmio.is_write = 1;
    memset(run_->mmio.data, 0, sizeof run_->mmio.data);
    memcpy(run_->mmio.data, &r.probe.write_value, run_->mmio.len);
    return Next::kExit;
  }
  return Next::kContinue;
}

// Runs exactly the instruction at RIP (a temporary Unicorn exit after it) with the probe set,
// after saving the CPU state in `snapshot_` (restored before returning when `undo`).
// RFLAGS.IF, and no STI / MOV SS shadow (svm_interrupt_allowed, for a guest without GIF games).
bool SoftVcpu::interrupt_allowed() { return !irq_shadow_ && (reg(UC_X86_REG_RFLAGS) & (1u << 9)); }

void SoftVcpu::set_window_mode(bool on) {
  if (on == window_mode_) return;
  window_mode_ = on;
  if (!on) window_exits_.clear();
  // Translated blocks were scanned with the other rule: translate and scan them again.
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TB_FLUSH, 0));
  scanned_.clear();
  exits_changed_ = true;
}

// Runs the instruction at RIP natively, alone, even where it is a window exit; an STI, MOV SS or
// POP SS leaves the interrupt shadow over the next instruction.
SoftVcpu::Next SoftVcpu::step_native() {
  const uint64_t la = linear_rip();
  X86Insn in;
  const bool decoded = decode_at(la, &in);
  const bool shadow = decoded && !in.vex && in.map == 0 &&
                      (in.opcode == 0xfb || in.opcode == 0x17 || (in.opcode == 0x8e && ((in.modrm >> 3) & 7) == 2));
  if (window_exits_.count(la)) {
    suppressed_exit_ = la;
    exits_changed_ = true;
    drop_translation(la, decoded ? in.length : 1);
  }
  Probe none;
  none.page = ~0ull;  // no page is behind the probe
  StepResult r = step(none, false);
  if (suppressed_exit_) {
    suppressed_exit_ = 0;
    exits_changed_ = true;
    apply_exits();
    drop_translation(la, decoded ? in.length : 1);
  }
  irq_shadow_ = r.completed && shadow;
  return r.completed ? Next::kContinue : r.next;
}

// Decodes the instruction at linear address `la`, reading only what is mapped (it may end
// before a page that is not).
bool SoftVcpu::decode_at(uint64_t la, X86Insn* in) {
  uint8_t bytes[15];
  uint64_t pf_addr;
  uint32_t pf_err;
  size_t avail = sizeof bytes;
  while (avail && !read_linear(la, bytes, avail, Access::kFetch, &pf_addr, &pf_err)) avail--;
  return avail && decode_x86(bytes, avail, code_mode(), in);
}

SoftVcpu::StepResult SoftVcpu::step(const Probe& p, bool undo) {
  StepResult r;
  const uint64_t la = linear_rip();
  X86Insn in;
  if (!decode_at(la, &in)) {
    exit_internal_error(KVM_INTERNAL_ERROR_EMULATION);
    r.next = Next::kExit;
    return r;
  }
  const uint64_t next = la + in.length;
  uc_.context_save(uc, snapshot_);
  const bool temporary = !exits_.count(next);
  if (temporary) {
    step_exit_ = next;
    exits_changed_ = true;
    drop_translation(la, in.length);
  }
  uc_err err = UC_ERR_OK;
  Stop stop = Stop::kNone;
  for (int tries = 0; tries < 4; tries++) {
    probe_ = p;
    probe_.active = true;
    uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));
    err = execute();
    stop = stop_;
    probe_.active = false;
    if (stop != Stop::kRescan) break;
    apply_exits();  // the block was new: scanned, and its exits set; run it again
    drop_translation(rescan_addr_, rescan_size_);
    uc_.context_restore(uc, snapshot_);
  }
  r.probe = probe_;
  uc_.ctl(uc, UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0));
  if (temporary) {
    step_exit_ = 0;
    exits_changed_ = true;
    apply_exits();
    drop_translation(la, in.length);
  }
  r.completed = stop == Stop::kNone && err == UC_ERR_OK && linear_rip() == next;
  if (undo) {
    uc_.context_restore(uc, snapshot_);
  } else if (!r.completed && !r.probe.read_missing) {
    r.next = handle_stop(stop, err);
  }
  return r;
}

// KVM's complete_userspace_io: the VMM's answer to the last exit, applied before running on —
// unless the VMM moved RIP meanwhile, which drops it.
SoftVcpu::Next SoftVcpu::complete_userspace() {
  Completion c = pending_;
  pending_ = {};
  if (c.kind == Completion::kNone) return Next::kContinue;
  if (c.kind == Completion::kGhcbIo || c.kind == Completion::kGhcbMmioRead) return complete_ghcb(c);
  if (c.kind == Completion::kPscMsr || c.kind == Completion::kReqCerts) return complete_snp(c);
  if (linear_rip() != c.linear_rip) return Next::kContinue;
  const uint8_t* pio = reinterpret_cast<const uint8_t*>(run_) + kPage;
  switch (c.kind) {
    case Completion::kPioOut:
      skip(c.insn);
      break;
    case Completion::kPioIn: {
      uint64_t rax = c.size < 4 ? reg(UC_X86_REG_RAX) : 0;
      memcpy(&rax, pio, c.size);  // merge below 4 bytes, zero-extend at 4
      set_reg(UC_X86_REG_RAX, rax);
      skip(c.insn);
      break;
    }
    case Completion::kStringIn:
      return finish_string_in(c);
    case Completion::kMmioRead: {
      Probe p;
      p.page = c.gpa & ~(kPage - 1);
      p.data = run_->mmio.data;
      return mmio_step(p);
    }
    default:
      break;
  }
  return Next::kContinue;
}

uint64_t SoftVcpu::linear_rip() {
  ctx_->load();
  const uint64_t rip = reg(UC_X86_REG_RIP);
  const bool long64 = (ctx_->efer() & (1u << 10)) && (ctx_->segment(kCs).flags & kDescL);
  return long64 ? rip : (ctx_->segment(kCs).base + rip) & 0xffffffffull;
}

CodeMode SoftVcpu::code_mode() {
  ctx_->load();
  const uint32_t f = ctx_->segment(kCs).flags;
  if ((ctx_->efer() & (1u << 10)) && (f & kDescL)) return CodeMode::k64;
  if (!(ctx_->cr(0) & 1)) return CodeMode::k16;  // real mode: 16-bit whatever the cached D bit
  if (ctx_->vm86()) return CodeMode::k16;
  return (f & kDescB) ? CodeMode::k32 : CodeMode::k16;
}

bool SoftVcpu::read_linear(uint64_t la, void* out, size_t n, Access a, uint64_t* pf_addr, uint32_t* pf_error,
                           int cpl) {
  PagingState ps = paging_state();
  if (cpl >= 0) ps.cpl = cpl;
  auto key = sev_private_view() ? vm_->sev->memory_key() : nullptr;
  uint8_t* dst = static_cast<uint8_t*>(out);
  while (n) {
    const size_t chunk = std::min<size_t>(n, kPage - (la & (kPage - 1)));
    Translation t;
    uint32_t err = 0;
    if (translate(ps, *this, la, a, true, &t, &err) != WalkResult::kOk) {
      *pf_addr = la;
      *pf_error = err;
      return false;
    }
    Memslot* s = vm_->memory.find(t.gpa);
    if (!s) {
      *pf_addr = la;
      *pf_error = ~0u;  // not memory
      return false;
    }
    const bool priv = key && (t.private_access || a == Access::kFetch);
    const Route where = key ? Route::kShared : route(s, t.gpa);
    if (where == Route::kFault ||
        (snp_guest() && snp_access(s, t.gpa, t.private_access || a == Access::kFetch) > SnpAccess::kPrivate)) {
      *pf_addr = la;
      *pf_error = ~0u;
      return false;
    }
    const uint8_t* src = priv ? vm_->memory.private_page(*s, t.gpa, *key) + (t.gpa & (kPage - 1))
                         : where == Route::kGmem ? s->gmem_ptr(t.gpa)
                                                 : s->host(t.gpa);
    memcpy(dst, src, chunk);
    dst += chunk;
    la += chunk;
    n -= chunk;
  }
  return true;
}

bool SoftVcpu::write_linear(uint64_t la, const void* in, size_t n, uint64_t* pf_addr, uint32_t* pf_error,
                            int cpl) {
  PagingState ps = paging_state();
  if (cpl >= 0) ps.cpl = cpl;
  auto key = sev_private_view() ? vm_->sev->memory_key() : nullptr;
  const uint8_t* src = static_cast<const uint8_t*>(in);
  while (n) {
    const size_t chunk = std::min<size_t>(n, kPage - (la & (kPage - 1)));
    Translation t;
    uint32_t err = 0;
    if (translate(ps, *this, la, Access::kWrite, true, &t, &err) != WalkResult::kOk) {
      *pf_addr = la;
      *pf_error = err;
      return false;
    }
    Memslot* s = vm_->memory.find(t.gpa);
    if (!s || s->readonly()) {
      *pf_addr = la;
      *pf_error = ~0u;
      return false;
    }
    uint8_t* dst;
    const Route where = key ? Route::kShared : route(s, t.gpa);
    if (where == Route::kFault || (snp_guest() && snp_access(s, t.gpa, t.private_access) > SnpAccess::kPrivate)) {
      *pf_addr = la;
      *pf_error = ~0u;
      return false;
    }
    if (key && t.private_access) {
      dst = vm_->memory.private_page(*s, t.gpa, *key) + (t.gpa & (kPage - 1));
      dirty_private_.insert(t.gpa & ~(kPage - 1));
    } else if (where == Route::kGmem) {
      dst = s->gmem_ptr(t.gpa);
    } else {
      dst = s->host(t.gpa);
    }
    memcpy(dst, src, chunk);
    src += chunk;
    la += chunk;
    n -= chunk;
  }
  return true;
}

uint8_t* SoftVcpu::host_ptr(uint64_t gpa, size_t n) {
  Memslot* s = vm_->memory.find(gpa);
  if (!s || gpa + n > s->gpa + s->size || gpa + n < gpa) return nullptr;
  if (sev_guest()) return s->host(gpa);
  for (uint64_t p = gpa & ~(kPage - 1); p < gpa + n; p += kPage)  // one kind for the whole range
    if (route(s, p) != route(s, gpa)) return nullptr;
  switch (route(s, gpa)) {
    case Route::kShared: return s->host(gpa);
    case Route::kGmem: return s->gmem_ptr(gpa);
    case Route::kFault: break;
  }
  return nullptr;
}

SoftVcpu::Route SoftVcpu::route(const Memslot* s, uint64_t gpa, bool* priv_out) {
  // For VMs with private memory the attributes are the source of truth for an access's kind
  // (kvm_mmu_page_fault sets PFERR_PRIVATE_ACCESS from them); a private gfn without a memslot,
  // without guest_memfd or whose guest_memfd was closed is a memory fault
  // (kvm_handle_noslot_fault, kvm_mmu_faultin_pfn_gmem). Slots of an mmap-able guest_memfd take
  // shared accesses from it too (kvm_memslot_is_gmem_only).
  const bool priv = vm_->has_private_mem() && vm_->memory.is_private(gpa / kPage);
  if (priv_out) *priv_out = priv;
  if (!priv && !(s && s->gmem_only())) return Route::kShared;
  if (!s || !s->gmem || !s->gmem_bound.load(std::memory_order_acquire)) return Route::kFault;
  return Route::kGmem;
}

uint8_t* SoftVcpu::alias_ptr(Memslot& s, uint64_t gpa) {
  if (sev_private_view()) return s.private_plain() + ((gpa & ~(kPage - 1)) - s.gpa);
  return s.gmem_ptr(gpa & ~(kPage - 1));
}

bool SoftVcpu::read_gpa(uint64_t gpa, void* out, size_t n) {
  uint8_t* p = host_ptr(gpa, n);
  if (p) memcpy(out, p, n);
  return p != nullptr;
}

bool SoftVcpu::write_gpa(uint64_t gpa, const void* in, size_t n) {
  uint8_t* p = host_ptr(gpa, n);
  if (p) memcpy(p, in, n);
  return p != nullptr;
}

}  // namespace sevemu::softkvm
