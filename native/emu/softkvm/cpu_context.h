// CPU state that Unicorn's public API cannot set, reached through a saved uc_context.
//
// KVM_SET_SREGS loads segment registers with arbitrary hidden parts (base, limit, attributes)
// and EFER.LMA directly; Unicorn's 64-bit engine only sets selectors and cannot set LMA. And
// Unicorn never delivers exceptions through the guest's IDT (it calls a hook instead) and never
// clears its "exception in progress" marker, so after the software KVM delivers an exception
// itself it must clear that marker and read the error code. All of these live in the CPU state
// a uc_context saves. Their offsets are not API: they are found once per process by a probe on
// a scratch engine (known register values written through the API, then looked up in the saved
// state), each one verified; a Unicorn whose state does not answer the probe is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "unicorn_api.h"

namespace sevemu::softkvm {

// Offsets within the CPU state of a uc_context (its `data` part).
struct CpuLayout {
  size_t data = 0;  // start of the CPU state within the uc_context allocation
  size_t size = 0;  // bytes of CPU state
  size_t regs = 0, rip = 0, hflags = 0, segs = 0, cr = 0, efer = 0;
  size_t error_code = 0, exception_is_int = 0, old_exception = 0;
};

// The probed layout, or null (with the reason) when this Unicorn cannot be driven.
const CpuLayout* cpu_layout(std::string* why);

// Segment register indices in Unicorn's state (x86 encoding order).
enum Seg { kEs = 0, kCs = 1, kSs = 2, kDs = 3, kFs = 4, kGs = 5 };

// A segment's hidden state: `flags` is the descriptor's high dword layout (type << 8, S << 12,
// DPL << 13, P << 15, AVL << 20, L << 21, D/B << 22, G << 23).
struct SegmentCache {
  uint32_t selector;
  uint64_t base;
  uint32_t limit;
  uint32_t flags;
};

// Descriptor attribute bits in SegmentCache::flags.
enum : uint32_t {
  kDescTypeShift = 8, kDescS = 1u << 12, kDescDplShift = 13, kDescP = 1u << 15, kDescAvl = 1u << 20,
  kDescL = 1u << 21, kDescB = 1u << 22, kDescG = 1u << 23,
};

// Save the engine's state, change hidden parts, load it back. Not thread-safe: one per vCPU.
class CpuContext {
 public:
  CpuContext(const UnicornApi& uc, uc_engine* engine, const CpuLayout& layout);
  ~CpuContext();
  CpuContext(const CpuContext&) = delete;
  CpuContext& operator=(const CpuContext&) = delete;
  bool ok() const { return ctx_ != nullptr; }

  void load();   // engine → here
  void store();  // here → engine

  SegmentCache segment(int seg) const;
  void set_segment(int seg, const SegmentCache& s);
  uint32_t hflags() const { return get<uint32_t>(layout_.hflags); }
  void set_hflags(uint32_t v) { put<uint32_t>(layout_.hflags, v); }
  // Exact even mid-block, unlike RFLAGS read from the engine there (computed from stale lazy flags).
  int cpl() const;    // 3 in virtual-8086 mode
  bool vm86() const;  // RFLAGS.VM
  uint64_t cr(int n) const { return get<uint64_t>(layout_.cr + 8 * size_t(n)); }
  void set_cr(int n, uint64_t v) { put<uint64_t>(layout_.cr + 8 * size_t(n), v); }
  uint64_t efer() const { return get<uint64_t>(layout_.efer); }
  void set_efer(uint64_t v) { put<uint64_t>(layout_.efer, v); }
  int32_t error_code() const { return get<int32_t>(layout_.error_code); }
  // The last event was a software interrupt (INT n, INT3, INTO): RIP is already past it.
  bool software_interrupt() const { return get<int32_t>(layout_.exception_is_int) != 0; }
  void clear_exception() { put<int32_t>(layout_.old_exception, -1); }

  // Recomputes the mode bits Unicorn derives from segments, CR0, CR4 and EFER (CPL, 16/32/64-bit
  // code and stack, segment-base use, protected mode, FPU traps, long mode, SVME, OSFXSR, SMAP)
  // as its own segment-load and control-register paths would.
  void recompute_mode();

 private:
  template <typename T>
  T get(size_t off) const {
    T v;
    memcpy(&v, state() + off, sizeof v);
    return v;
  }
  template <typename T>
  void put(size_t off, T v) {
    memcpy(state() + off, &v, sizeof v);
  }
  uint8_t* state() const { return reinterpret_cast<uint8_t*>(ctx_) + layout_.data; }

  const UnicornApi& uc_;
  uc_engine* engine_;
  const CpuLayout& layout_;
  uc_context* ctx_ = nullptr;
};

}  // namespace sevemu::softkvm
