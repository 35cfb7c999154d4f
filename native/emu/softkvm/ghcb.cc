// SEV-ES guests talk to the hypervisor through the GHCB (GHCB spec 56421): VMGEXIT with the
// GHCB MSR holding either a request of the MSR protocol or the guest-physical address of a GHCB
// page in shared memory. KVM's handling (arch/x86/kvm/svm/sev.c, sev_handle_vmgexit and the
// MSR protocol) is followed: the same validation, error codes, exits and return values.
#include <x86intrin.h>

#include <cerrno>
#include <cstring>

#include "kvm_vm.h"
#include "uapi/kvm_run.h"
#include "vcpu.h"
#include "vm.h"

namespace sevemu::softkvm {

namespace {

// struct ghcb offsets.
enum : size_t {
  kCpl = 0xcb, kXss = 0x140, kDr7 = 0x160, kRax = 0x1f8, kRcx = 0x308, kRdx = 0x310, kRbx = 0x318,
  kRsi = 0x330, kExitCode = 0x390, kInfo1 = 0x398, kInfo2 = 0x3a0, kScratch = 0x3a8, kXcr0 = 0x3e8,
  kValidBitmap = 0x3f0, kSharedBuffer = 0x800, kSharedEnd = 0xff0, kUsage = 0xffc,
};

// SVM / VMGEXIT exit codes.
constexpr uint64_t kExitReadDr7 = 0x27, kExitWriteDr7 = 0x37, kExitRdtsc = 0x6e, kExitRdpmc = 0x6f,
                   kExitCpuid = 0x72, kExitInvd = 0x76, kExitIoio = 0x7b, kExitMsr = 0x7c, kExitVmmcall = 0x81,
                   kExitRdtscp = 0x87, kExitWbinvd = 0x89, kExitMonitor = 0x8a, kExitMwait = 0x8b;
constexpr uint64_t kMmioRead = 0x80000001, kMmioWrite = 0x80000002, kNmiComplete = 0x80000003,
                   kApHltLoop = 0x80000004, kApJumpTable = 0x80000005, kPsc = 0x80000010,
                   kGuestRequest = 0x80000011, kExtGuestRequest = 0x80000012, kApCreation = 0x80000013,
                   kHvFeatures = 0x8000fffd, kTermRequest = 0x8000fffe, kUnsupportedEvent = 0x8000ffff;

constexpr uint64_t kRespNoAction = 0, kRespIssueException = 1, kRespMalformedInput = 2;
constexpr uint64_t kErrInvalidUsage = 2, kErrInvalidScratch = 3, kErrMissingInput = 4, kErrInvalidInput = 5,
                   kErrInvalidEvent = 6;
constexpr uint64_t kHvFeaturesSupported = 3;  // GHCB_HV_FT_SNP | GHCB_HV_FT_SNP_AP_CREATION
constexpr uint64_t kGhcbVersionMin = 1;
constexpr uint64_t kEvtInjGp = (1u << 31) | (3u << 8) | 13;  // SVM_EVTINJ_VALID | TYPE_EXEPT | #GP
constexpr uint64_t kErrNotRegistered = 1;
// The MSR protocol's SNP requests and responses (GHCB spec 56421; arch/x86/include/asm/sev-common.h).
constexpr uint64_t kMsrPrefGpaReq = 0x010, kMsrPrefGpaResp = 0x011, kMsrPrefGpaNone = 0xfffffffffffffull;
constexpr uint64_t kMsrRegGpaReq = 0x012, kMsrRegGpaResp = 0x013, kMsrPscReq = 0x014, kMsrPscResp = 0x015;
constexpr uint64_t kMsrPscRespError = (1ull << 63) | kMsrPscResp;
constexpr uint64_t kSnpPagePrivate = 1, kSnpPageShared = 2;
// KVM_HC_MAP_GPA_RANGE, the hypercall exit a page-state change becomes (kvm_para.h).
constexpr uint64_t kHcMapGpaRange = 12, kMapGpaRangeEncrypted = 1u << 4, kMapGpaRangeDecrypted = 0;
// SNP_GUEST_ERR(vmm_error, fw_error) in SW_EXITINFO2: the VMM's error in the upper half.
constexpr uint64_t kGuestVmmErrInvalidLen = 1, kGuestVmmErrBusy = 2, kGuestVmmErrGeneric = 1u << 31;
constexpr size_t kMsgTypeOffset = 0x34;  // snp_guest_msg_hdr.msg_type
constexpr uint8_t kMsgReportReq = 5;

uint64_t get64(const uint8_t* g, size_t off) {
  uint64_t v;
  memcpy(&v, g + off, 8);
  return v;
}
void put64(uint8_t* g, size_t off, uint64_t v) { memcpy(g + off, &v, 8); }
bool valid(const uint8_t bitmap[16], size_t off) { return (bitmap[off / 64] >> ((off / 8) % 8)) & 1; }

}  // namespace

// The guest's GHCB as KVM sees it for one VMGEXIT: sev_es_sync_from_ghcb's snapshot.
struct SoftVcpu::GhcbCall {
  uint8_t* page;
  uint8_t bitmap[16];
  uint64_t rax, rbx, rcx, rdx, rsi;
  uint64_t exit_code, info1, info2, scratch;
  uint8_t cpl;

  void respond(uint64_t code, uint64_t data) {
    put64(page, kInfo1, code);
    put64(page, kInfo2, data);
  }
  // sev_es_sync_to_ghcb: RAX, RBX, RCX, RDX go back whatever happened.
  void sync_regs() {
    put64(page, kRax, rax);
    put64(page, kRbx, rbx);
    put64(page, kRcx, rcx);
    put64(page, kRdx, rdx);
  }
};

SoftVcpu::Next SoftVcpu::ghcb_msr_protocol() {
  const uint64_t msr = ghcb_msr_;
  auto terminate = [&] {
    run_->exit_reason = KVM_EXIT_SYSTEM_EVENT;
    run_->system_event.type = uapi::SYSTEM_EVENT_SEV_TERM;
    run_->system_event.ndata = 1;
    run_->system_event.data[0] = msr;
    return Next::kExit;
  };
  switch (msr & 0xfff) {
    case 0x002:  // SEV information: max and min GHCB version, C-bit position
      ghcb_msr_ = (uint64_t(vm_->sev->ghcb_version) << 48) | (kGhcbVersionMin << 32) |
                  (uint64_t(vm_->c_bit & 0xff) << 24) | 0x001;
      break;
    case 0x004: {  // CPUID: one register of one leaf
      uint32_t r[4];
      cpuid(uint32_t(msr >> 32), 0, r);
      const unsigned which = (msr >> 30) & 3;
      ghcb_msr_ = (uint64_t(r[which]) << 32) | (msr & 0xfffff000ull) | 0x005;
      break;
    }
    case 0x080:  // hypervisor features
      ghcb_msr_ = (kHvFeaturesSupported << 12) | 0x081;
      break;
    case kMsrPrefGpaReq:
      if (!snp_guest()) return terminate();
      ghcb_msr_ = (kMsrPrefGpaNone << 12) | kMsrPrefGpaResp;
      break;
    case kMsrRegGpaReq:
      if (!snp_guest()) return terminate();
      ghcb_registered_gpa_ = (msr >> 12) << 12;
      ghcb_msr_ = (msr & ~0xfffull) | kMsrRegGpaResp;
      break;
    case kMsrPscReq:
      if (!snp_guest()) return terminate();
      return snp_psc_msr(msr);
    case 0x100:  // termination request
      return terminate();
    default:
      break;  // unknown: the MSR keeps its value
  }
  return Next::kContinue;
}

SoftVcpu::Next SoftVcpu::vmgexit(const X86Insn& in) {
  skip(in);  // VMGEXIT is trap-like: the guest resumes after it
  if (ghcb_msr_ & 0xfff) return ghcb_msr_protocol();
  if (!ghcb_msr_) return Next::kContinue;  // no GHCB: straight back to the guest
  uint8_t* page = host_ptr(ghcb_msr_ & ~(kPage - 1), kPage);
  if (!page) return Next::kContinue;
  GhcbCall g{};
  g.page = page;
  memcpy(g.bitmap, page + kValidBitmap, 16);
  auto field = [&](size_t off) { return valid(g.bitmap, off) ? get64(page, off) : 0; };
  g.rax = field(kRax);
  g.rbx = field(kRbx);
  g.rcx = field(kRcx);
  g.rdx = field(kRdx);
  g.rsi = field(kRsi);
  g.cpl = valid(g.bitmap, kCpl) ? page[kCpl] : 0;
  if (valid(g.bitmap, kXcr0)) xcr0_ = get64(page, kXcr0);
  if (valid(g.bitmap, kXss)) xss_ = get64(page, kXss);
  g.exit_code = get64(page, kExitCode);
  g.info1 = get64(page, kInfo1);
  g.info2 = get64(page, kInfo2);
  g.scratch = field(kScratch);
  memset(page + kValidBitmap, 0, 16);

  auto bad = [&](uint64_t why) {
    g.respond(kRespMalformedInput, why);
    g.sync_regs();
    return Next::kContinue;
  };
  // An SNP guest must have registered this GHCB's address (MSR protocol) first.
  if (snp_guest() && (ghcb_msr_ & ~(kPage - 1)) != ghcb_registered_gpa_) return bad(kErrNotRegistered);
  uint32_t usage;
  memcpy(&usage, page + kUsage, 4);
  if (usage) return bad(kErrInvalidUsage);
  if (!snp_guest() && (g.exit_code == kPsc || g.exit_code == kGuestRequest || g.exit_code == kExtGuestRequest ||
                       g.exit_code == kApCreation))
    return bad(kErrInvalidEvent);  // SNP only
  if (!required_fields_valid(g)) return bad(kErrMissingInput);
  g.respond(kRespNoAction, 0);

  switch (g.exit_code) {
    case kExitIoio:
      return ghcb_io(g);
    case kExitCpuid: {
      uint32_t r[4];
      cpuid(uint32_t(g.rax), uint32_t(g.rcx), r);
      g.rax = r[0];
      g.rbx = r[1];
      g.rcx = r[2];
      g.rdx = r[3];
      break;
    }
    case kExitMsr:
      if (g.info1) {
        if (!msr_write(uint32_t(g.rcx), (g.rax & 0xffffffffull) | (g.rdx << 32)))
          g.respond(kRespIssueException, kEvtInjGp);
      } else {
        uint64_t v = 0;
        if (!msr_read(uint32_t(g.rcx), &v)) {
          g.respond(kRespIssueException, kEvtInjGp);
        } else {
          g.rax = v & 0xffffffffull;
          g.rdx = v >> 32;
        }
      }
      break;
    case kExitVmmcall:
      g.rax = uint64_t(g.cpl ? -1 : -1000);  // -KVM_EPERM / -KVM_ENOSYS
      break;
    case kExitRdtsc:
    case kExitRdtscp: {
      const uint64_t t = __rdtsc() + tsc_offset_;
      g.rax = t & 0xffffffffull;
      g.rdx = t >> 32;
      if (g.exit_code == kExitRdtscp) {
        uint64_t aux = 0;
        msr_read(0xc0000103, &aux);
        g.rcx = aux & 0xffffffffull;
      }
      break;
    }
    case kExitReadDr7:
      g.rax = dr7_;
      break;
    case kExitWriteDr7:
      dr7_ = g.rax;
      break;
    case kExitRdpmc:
      g.respond(kRespIssueException, kEvtInjGp);  // no PMU
      break;
    case kExitInvd: case kExitWbinvd: case kExitMonitor: case kExitMwait: case kNmiComplete:
      break;
    case kMmioRead:
    case kMmioWrite:
      return ghcb_mmio(g);
    case kApHltLoop:
      g.sync_regs();
      run_->exit_reason = KVM_EXIT_HLT;
      return Next::kExit;
    case kApJumpTable:
      if (g.info1 == 0)
        ap_jump_table_ = g.info2;
      else if (g.info1 == 1)
        g.respond(kRespNoAction, ap_jump_table_);
      else
        return bad(kErrInvalidInput);
      break;
    case kHvFeatures:
      g.respond(kRespNoAction, kHvFeaturesSupported);
      break;
    case kGuestRequest:
    case kExtGuestRequest:
      return ghcb_guest_request(g, g.exit_code == kExtGuestRequest);
    case kApCreation:
    case kPsc:
      // Not modelled: AP creation and the GHCB page-state change (the MSR protocol's is).
      return bad(kErrInvalidInput);
    case kTermRequest:
      g.sync_regs();
      run_->exit_reason = KVM_EXIT_SYSTEM_EVENT;
      run_->system_event.type = uapi::SYSTEM_EVENT_SEV_TERM;
      run_->system_event.ndata = 1;
      run_->system_event.data[0] = ghcb_msr_;
      return Next::kExit;
    case kUnsupportedEvent:
      g.sync_regs();
      run_error_ = -EINVAL;  // the guest reports a #VC it cannot handle: KVM_RUN fails
      return Next::kError;
    default:
      return bad(kErrInvalidEvent);
  }
  g.sync_regs();
  return Next::kContinue;
}

// sev_es_are_required_ghcb_fields_valid.
bool SoftVcpu::required_fields_valid(const GhcbCall& g) {
  if (!valid(g.bitmap, kExitCode) || !valid(g.bitmap, kInfo1) || !valid(g.bitmap, kInfo2)) return false;
  switch (g.exit_code) {
    case kExitWriteDr7: return valid(g.bitmap, kRax);
    case kExitRdpmc: return valid(g.bitmap, kRcx);
    case kExitCpuid:
      if (!valid(g.bitmap, kRax) || !valid(g.bitmap, kRcx)) return false;
      return g.rax != 0xd || valid(g.bitmap, kXcr0);
    case kExitIoio:
      if (g.info1 & 4) return valid(g.bitmap, kScratch);
      if (!(g.info1 & 1)) return valid(g.bitmap, kRax);
      return true;
    case kExitMsr:
      if (!valid(g.bitmap, kRcx)) return false;
      return !g.info1 || (valid(g.bitmap, kRax) && valid(g.bitmap, kRdx));
    case kExitVmmcall: return valid(g.bitmap, kRax) && valid(g.bitmap, kCpl);
    case kExitMonitor: return valid(g.bitmap, kRax) && valid(g.bitmap, kRcx) && valid(g.bitmap, kRdx);
    case kExitMwait: return valid(g.bitmap, kRax) && valid(g.bitmap, kRcx);
    case kMmioRead: case kMmioWrite: return valid(g.bitmap, kScratch);
  }
  return true;
}

// setup_vmgexit_scratch: the scratch buffer lies in the GHCB's shared buffer, or (GHCB v1 only)
// elsewhere in guest memory, at most 16 pages. Null after answering the guest with the error.
uint8_t* SoftVcpu::ghcb_scratch(GhcbCall& g, uint64_t len) {
  const uint64_t ghcb = ghcb_msr_ & ~(kPage - 1), beg = g.scratch, end = beg + len;
  uint8_t* p = nullptr;
  if (len && beg && end >= beg) {
    if ((beg & ~(kPage - 1)) == ghcb) {
      if (beg >= ghcb + kSharedBuffer && end <= ghcb + kSharedEnd) p = g.page + (beg - ghcb);
    } else if (vm_->sev->ghcb_version < 2 && len <= 16 * kPage) {
      p = host_ptr(beg, len);
    }
  }
  if (!p) {
    g.respond(kRespMalformedInput, kErrInvalidScratch);
    g.sync_regs();
  }
  return p;
}

SoftVcpu::Next SoftVcpu::ghcb_io(GhcbCall& g) {
  const unsigned size = (g.info1 >> 4) & 7;
  if (!size) {
    g.sync_regs();
    return Next::kContinue;
  }
  const bool input = g.info1 & 1, string = g.info1 & 4;
  GhcbPending& p = ghcb_pending_;
  p = {};
  p.gpa = ghcb_msr_ & ~(kPage - 1);
  p.regs[0] = g.rax;
  p.regs[1] = g.rbx;
  p.regs[2] = g.rcx;
  p.regs[3] = g.rdx;
  p.port = uint16_t(g.info1 >> 16);
  p.size = uint8_t(size);
  p.input = input;
  if (string) {
    if (g.info2 > 0x7fffffff) {
      run_error_ = -EINVAL;
      return Next::kError;
    }
    const uint64_t bytes = g.info2 * size;
    if (!bytes) {
      g.sync_regs();
      return Next::kContinue;
    }
    uint8_t* buf = ghcb_scratch(g, bytes);
    if (!buf) return Next::kContinue;
    p.buffer = buf;
    p.remaining = uint32_t(g.info2);
    p.string = true;
    return ghcb_string_chunk();
  }
  uint8_t* pio = reinterpret_cast<uint8_t*>(run_) + kPage;
  run_->exit_reason = KVM_EXIT_IO;
  run_->io.direction = input ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
  run_->io.size = uint8_t(size);
  run_->io.port = p.port;
  run_->io.count = 1;
  run_->io.data_offset = kPage;
  if (input)
    memset(pio, 0, size);
  else
    memcpy(pio, &g.rax, size);
  pending_ = {};
  pending_.kind = Completion::kGhcbIo;
  g.sync_regs();
  return Next::kExit;
}

// String I/O through the scratch buffer, a PIO page at a time (kvm_sev_es_ins / _outs).
SoftVcpu::Next SoftVcpu::ghcb_string_chunk() {
  GhcbPending& p = ghcb_pending_;
  const uint32_t count = std::min<uint32_t>(uint32_t(kPage / p.size), p.remaining);
  uint8_t* pio = reinterpret_cast<uint8_t*>(run_) + kPage;
  if (!p.input) memcpy(pio, p.buffer + p.done * p.size, size_t(count) * p.size);
  p.chunk = count;
  run_->exit_reason = KVM_EXIT_IO;
  run_->io.direction = p.input ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
  run_->io.size = p.size;
  run_->io.port = p.port;
  run_->io.count = count;
  run_->io.data_offset = kPage;
  pending_ = {};
  pending_.kind = Completion::kGhcbIo;
  if (uint8_t* page = host_ptr(p.gpa, kPage)) {
    put64(page, kRax, p.regs[0]);
    put64(page, kRbx, p.regs[1]);
    put64(page, kRcx, p.regs[2]);
    put64(page, kRdx, p.regs[3]);
  }
  return Next::kExit;
}

SoftVcpu::Next SoftVcpu::ghcb_mmio(GhcbCall& g) {
  const bool write = g.exit_code == kMmioWrite;
  const uint64_t len = g.info2;
  if (!len) {
    g.sync_regs();
    return Next::kContinue;
  }
  if (vm_->sev->ghcb_version >= 2 && len > 8) {
    g.respond(kRespMalformedInput, kErrInvalidInput);
    g.sync_regs();
    return Next::kContinue;
  }
  uint8_t* buf = ghcb_scratch(g, len);
  if (!buf) return Next::kContinue;
  const uint32_t n = uint32_t(std::min<uint64_t>(len, 8));
  run_->exit_reason = KVM_EXIT_MMIO;
  run_->mmio.phys_addr = g.info1;
  run_->mmio.len = n;
  run_->mmio.is_write = write;
  memset(run_->mmio.data, 0, sizeof run_->mmio.data);
  if (write) memcpy(run_->mmio.data, buf, n);
  ghcb_pending_ = {};
  ghcb_pending_.buffer = buf;
  ghcb_pending_.mmio_len = n;
  pending_ = {};
  pending_.kind = write ? Completion::kNone : Completion::kGhcbMmioRead;
  g.sync_regs();
  return Next::kExit;
}

// The VMM's answer to an I/O or MMIO exit of a VMGEXIT, into the GHCB (RAX or the scratch
// buffer); string I/O goes on with the next page.
SoftVcpu::Next SoftVcpu::complete_ghcb(const Completion& c) {
  GhcbPending& p = ghcb_pending_;
  const uint8_t* pio = reinterpret_cast<const uint8_t*>(run_) + kPage;
  if (c.kind == Completion::kGhcbMmioRead) {
    memcpy(p.buffer, run_->mmio.data, p.mmio_len);
    return Next::kContinue;
  }
  if (!p.string) {
    if (p.input) {
      uint64_t rax = p.size < 4 ? p.regs[0] : 0;
      memcpy(&rax, pio, p.size);
      p.regs[0] = rax;
      if (uint8_t* page = host_ptr(p.gpa, kPage)) put64(page, kRax, rax);
    }
    return Next::kContinue;
  }
  if (p.input) memcpy(p.buffer + p.done * p.size, pio, size_t(p.chunk) * p.size);
  p.done += p.chunk;
  p.remaining -= p.chunk;
  if (p.remaining) return ghcb_string_chunk();
  return Next::kContinue;
}

// snp_begin_psc_msr: one 4 KiB page made private or shared by the VMM, through a
// KVM_HC_MAP_GPA_RANGE hypercall exit when the VMM enabled it (KVM_CAP_EXIT_HYPERCALL); without
// it, or for an unknown operation, the guest gets the error response at once.
SoftVcpu::Next SoftVcpu::snp_psc_msr(uint64_t msr) {
  const uint64_t gpa = ((msr >> 12) & ((1ull << 40) - 1)) << 12;
  const uint64_t op = (msr >> 52) & 0xf;
  if ((op != kSnpPagePrivate && op != kSnpPageShared) || !(vm_->hypercall_exits & (1ull << kHcMapGpaRange))) {
    ghcb_msr_ = kMsrPscRespError;
    return Next::kContinue;
  }
  run_->exit_reason = KVM_EXIT_HYPERCALL;
  run_->hypercall.nr = kHcMapGpaRange;
  run_->hypercall.ret = 0;
  run_->hypercall.args[0] = gpa;
  run_->hypercall.args[1] = 1;
  run_->hypercall.args[2] = op == kSnpPagePrivate ? kMapGpaRangeEncrypted : kMapGpaRangeDecrypted;
  pending_ = {};
  pending_.kind = Completion::kPscMsr;
  return Next::kExit;
}

// SVM_VMGEXIT_GUEST_REQUEST / EXT_GUEST_REQUEST: the request and response pages (page-aligned,
// different) in EXITINFO1/2. An extended report request also takes a certificate buffer (RAX
// its page-aligned GPA, RBX its pages): with KVM_SEV_SNP_ENABLE_REQ_CERTS the VMM fills it
// (KVM_EXIT_SNP_REQ_CERTS), else it gets an empty certificate table.
SoftVcpu::Next SoftVcpu::ghcb_guest_request(GhcbCall& g, bool extended) {
  if ((g.info1 & (kPage - 1)) || (g.info2 & (kPage - 1)) || g.info1 == g.info2) {
    g.respond(kRespMalformedInput, kErrInvalidInput);
    g.sync_regs();
    return Next::kContinue;
  }
  uint8_t type = 0;
  if (extended && !read_gpa(g.info1 + kMsgTypeOffset, &type, 1)) {
    run_error_ = -EIO;
    return Next::kError;
  }
  if (extended && type == kMsgReportReq) {
    if (!valid(g.bitmap, kRax) || !valid(g.bitmap, kRbx) || (g.rax & (kPage - 1))) {
      g.respond(kRespMalformedInput, kErrInvalidInput);
      g.sync_regs();
      return Next::kContinue;
    }
    if (vm_->sev->snp_certs_enabled) {
      auto* r = reinterpret_cast<uapi::kvm_run_exits*>(run_);
      r->exit_reason = uapi::EXIT_SNP_REQ_CERTS;
      r->snp_req_certs.gpa = g.rax;
      r->snp_req_certs.npages = g.rbx;
      r->snp_req_certs.ret = 0;
      snp_req_[0] = g.info1;
      snp_req_[1] = g.info2;
      ghcb_pending_ = {};
      ghcb_pending_.gpa = ghcb_msr_;
      const uint64_t regs[4] = {g.rax, g.rbx, g.rcx, g.rdx};
      memcpy(ghcb_pending_.regs, regs, sizeof regs);
      pending_ = {};
      pending_.kind = Completion::kReqCerts;
      return Next::kExit;
    }
    static const uint8_t kEmptyTable[24] = {};  // the table's terminating entry
    if (g.rbx && !write_gpa(g.rax, kEmptyTable, sizeof kEmptyTable)) {
      run_error_ = -EIO;
      return Next::kError;
    }
  }
  return snp_guest_request(g);
}

// snp_handle_guest_req: the firmware answers from a copy of the request page into a response
// page KVM copies back; a firmware error goes to the guest in EXITINFO2, anything else fails
// KVM_RUN.
SoftVcpu::Next SoftVcpu::snp_guest_request(GhcbCall& g) {
  std::vector<uint8_t> req(kPage), resp(kPage);
  if (!read_gpa(g.info1, req.data(), kPage)) {
    run_error_ = -EIO;
    return Next::kError;
  }
  uint32_t fw_err = 0;
  long r = sevemu::snp_guest_request(*vm_->sev, req.data(), resp.data(), &fw_err);
  if (r && !fw_err) {
    run_error_ = r;
    return Next::kError;
  }
  if (!write_gpa(g.info2, resp.data(), kPage)) {
    run_error_ = -EIO;
    return Next::kError;
  }
  g.respond(kRespNoAction, fw_err);
  g.sync_regs();
  return Next::kContinue;
}

// What KVM_RUN completes after a page-state change or certificate exit.
SoftVcpu::Next SoftVcpu::complete_snp(const Completion& c) {
  if (c.kind == Completion::kPscMsr) {  // snp_complete_psc_msr
    const uint64_t ret = run_->hypercall.ret;
    if (ret != 0 && ret != uint64_t(EINVAL) && ret != uint64_t(EAGAIN)) {
      run_error_ = -EINVAL;
      return Next::kError;
    }
    ghcb_msr_ = ret ? kMsrPscRespError : kMsrPscResp;
    return Next::kContinue;
  }
  // snp_complete_req_certs
  uint8_t* page = host_ptr(ghcb_pending_.gpa & ~(kPage - 1), kPage);
  if (!page) return Next::kContinue;
  GhcbCall g{};
  g.page = page;
  g.rax = ghcb_pending_.regs[0];
  g.rbx = ghcb_pending_.regs[1];
  g.rcx = ghcb_pending_.regs[2];
  g.rdx = ghcb_pending_.regs[3];
  g.info1 = snp_req_[0];
  g.info2 = snp_req_[1];
  const auto* r = reinterpret_cast<const uapi::kvm_run_exits*>(run_);
  switch (r->snp_req_certs.ret) {
    case 0:
      return snp_guest_request(g);
    case ENOSPC:
      g.rbx = r->snp_req_certs.npages;
      g.respond(kRespNoAction, kGuestVmmErrInvalidLen << 32);
      break;
    case EAGAIN:
      g.respond(kRespNoAction, kGuestVmmErrBusy << 32);
      break;
    case EIO:
      g.respond(kRespNoAction, kGuestVmmErrGeneric << 32);
      break;
    default:
      run_error_ = -EINVAL;
      return Next::kError;
  }
  g.sync_regs();
  return Next::kContinue;
}

}  // namespace sevemu::softkvm
