// Vcpu: one vCPU fd and its mmap'd struct kvm_run.
//
// Registers are plain objects: every 64-bit register and address is a BigInt; segment limits,
// selectors and attribute bits are Numbers (see lib/kvm/types.ts for the exact shapes).
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

#include "ioctl_call.h"
#include "kvm_classes.h"
#include "uapi/kvm_run.h"

namespace addon {
namespace kvm {

// The layouts this file reads and writes (same in C and C++ with the 6.1 headers; checked).
static_assert(sizeof(kvm_regs) == 144, "kvm_regs");
static_assert(sizeof(kvm_sregs) == 312, "kvm_sregs");
static_assert(offsetof(kvm_run, io) == 32 && offsetof(kvm_run, mmio) == 32, "kvm_run exit union");
static_assert(sizeof(kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2");

VcpuCore::~VcpuCore() {
  if (run) ::munmap(run, size);
  // `fd` closes after the mapping is gone (member destruction).
}

namespace {

void NoopHandler(int) {}

// The signal that kicks a vCPU thread out of KVM_RUN: the first real-time signal from
// SIGRTMIN + 4 that nobody handles yet, with a no-op handler installed without SA_RESTART (so
// KVM_RUN returns EINTR). Real-time signals keep clear of Node's SIGUSR1 / SIGPROF / SIGCHLD.
int KickSignal() {
  static int sig = []() {
    for (int s = SIGRTMIN + 4; s < SIGRTMAX; s++) {
      struct sigaction old {};
      if (::sigaction(s, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
      struct sigaction sa {};
      sa.sa_handler = NoopHandler;
      sigemptyset(&sa.sa_mask);
      if (::sigaction(s, &sa, nullptr) == 0) return s;
    }
    return -1;
  }();
  return sig;
}

}  // namespace

// KVM_RUN with the kick signal unblocked on this thread; kvm_run.immediate_exit (set by Kick)
// makes KVM_RUN return EINTR at once, and is cleared when the run ends. The signal is unblocked
// once per thread and left so (two syscalls fewer per exit): nothing else sends it, and Kick
// sends it only to a thread inside Run().
int VcpuCore::Run() {
  static thread_local bool kick_unblocked = false;
  if (!kick_unblocked) {
    int sig = KickSignal();
    sigset_t set;
    sigemptyset(&set);
    if (sig > 0) sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    kick_unblocked = true;
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    runner = pthread_self();
    running = true;
  }
  int err = ::ioctl(fd->fd(), KVM_RUN, 0) < 0 ? errno : 0;
  std::lock_guard<std::mutex> lock(mutex);
  running = false;
  static_cast<kvm_run*>(run)->immediate_exit = 0;
  return err;
}

// Under the mutex the runner cannot leave Run() unnoticed: the signal only ever reaches a thread
// that is in (or at the edge of) KVM_RUN, never unrelated work on the thread pool.
void VcpuCore::Kick() {
  std::lock_guard<std::mutex> lock(mutex);
  static_cast<kvm_run*>(run)->immediate_exit = 1;
  int sig = KickSignal();
  if (running && sig > 0) pthread_kill(runner, sig);
}

namespace {

struct Field {
  const char* name;
  size_t offset;
};

#define REG(n) {#n, offsetof(kvm_regs, n)}
const Field kRegs[] = {REG(rax), REG(rbx), REG(rcx), REG(rdx), REG(rsi), REG(rdi), REG(rsp), REG(rbp), REG(r8),
                       REG(r9),  REG(r10), REG(r11), REG(r12), REG(r13), REG(r14), REG(r15), REG(rip), REG(rflags)};
#undef REG

const Field kSegments[] = {
    {"cs", offsetof(kvm_sregs, cs)}, {"ds", offsetof(kvm_sregs, ds)}, {"es", offsetof(kvm_sregs, es)},
    {"fs", offsetof(kvm_sregs, fs)}, {"gs", offsetof(kvm_sregs, gs)}, {"ss", offsetof(kvm_sregs, ss)},
    {"tr", offsetof(kvm_sregs, tr)}, {"ldt", offsetof(kvm_sregs, ldt)},
};
const Field kDtables[] = {{"gdt", offsetof(kvm_sregs, gdt)}, {"idt", offsetof(kvm_sregs, idt)}};
const Field kControl[] = {
    {"cr0", offsetof(kvm_sregs, cr0)},   {"cr2", offsetof(kvm_sregs, cr2)}, {"cr3", offsetof(kvm_sregs, cr3)},
    {"cr4", offsetof(kvm_sregs, cr4)},   {"cr8", offsetof(kvm_sregs, cr8)}, {"efer", offsetof(kvm_sregs, efer)},
    {"apicBase", offsetof(kvm_sregs, apic_base)},
};

uint64_t& U64At(void* base, size_t off) { return *reinterpret_cast<uint64_t*>(static_cast<uint8_t*>(base) + off); }

Napi::Object ObjectArg(const Napi::Value& v, const char* what) {
  if (!v.IsObject()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an object");
  return v.As<Napi::Object>();
}

uint32_t SmallField(const Napi::Object& o, const char* name, uint32_t max) {
  uint32_t x = U32Arg(o.Get(name), name);
  if (x > max) throw Napi::RangeError::New(o.Env(), std::string(name) + " is out of range");
  return x;
}

Napi::Object SegmentToJs(Napi::Env env, const kvm_segment& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(s.base)));
  o.Set("limit", s.limit);
  o.Set("selector", s.selector);
  o.Set("type", s.type);
  o.Set("present", s.present);
  o.Set("dpl", s.dpl);
  o.Set("db", s.db);
  o.Set("s", s.s);
  o.Set("l", s.l);
  o.Set("g", s.g);
  o.Set("avl", s.avl);
  o.Set("unusable", s.unusable);
  return o;
}

void SegmentFromJs(const Napi::Value& v, const char* what, kvm_segment* s) {
  Napi::Object o = ObjectArg(v, what);
  s->base = U64Arg(o.Get("base"), "segment base");
  s->limit = U32Arg(o.Get("limit"), "segment limit");
  s->selector = static_cast<uint16_t>(SmallField(o, "selector", 0xffff));
  s->type = static_cast<uint8_t>(SmallField(o, "type", 15));
  s->present = static_cast<uint8_t>(SmallField(o, "present", 1));
  s->dpl = static_cast<uint8_t>(SmallField(o, "dpl", 3));
  s->db = static_cast<uint8_t>(SmallField(o, "db", 1));
  s->s = static_cast<uint8_t>(SmallField(o, "s", 1));
  s->l = static_cast<uint8_t>(SmallField(o, "l", 1));
  s->g = static_cast<uint8_t>(SmallField(o, "g", 1));
  s->avl = static_cast<uint8_t>(SmallField(o, "avl", 1));
  s->unusable = static_cast<uint8_t>(SmallField(o, "unusable", 1));
}

Napi::Value BigIntArray(Napi::Env env, const uint64_t* v, size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) a.Set(static_cast<uint32_t>(i), Napi::BigInt::New(env, v[i]));
  return a;
}

// The exit-specific part of kvm_run after KVM_RUN, as plain JS fields.
void ExitToJs(Napi::Env env, const VcpuCore& core, Napi::Object& out) {
  const kvm_run* run = static_cast<const kvm_run*>(core.run);
  out.Set("exitReason", run->exit_reason);
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      out.Set("direction", run->io.direction);
      out.Set("size", run->io.size);
      out.Set("port", run->io.port);
      out.Set("count", run->io.count);
      uint64_t n = uint64_t{run->io.size} * run->io.count;
      uint64_t off = run->io.data_offset;
      if (off <= core.size && n <= core.size - off) {
        out.Set("data", Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(core.run) + off, n));
      }
      break;
    }
    case KVM_EXIT_MMIO: {
      uint32_t len = run->mmio.len > 8 ? 8 : run->mmio.len;
      out.Set("physAddr", Napi::BigInt::New(env, static_cast<uint64_t>(run->mmio.phys_addr)));
      out.Set("length", run->mmio.len);
      out.Set("isWrite", run->mmio.is_write != 0);
      out.Set("data", Napi::Buffer<uint8_t>::Copy(env, run->mmio.data, len));
      break;
    }
    case KVM_EXIT_FAIL_ENTRY:
      out.Set("hardwareEntryFailureReason",
              Napi::BigInt::New(env, static_cast<uint64_t>(run->fail_entry.hardware_entry_failure_reason)));
      out.Set("cpu", run->fail_entry.cpu);
      break;
    case KVM_EXIT_UNKNOWN:
      out.Set("hardwareExitReason", Napi::BigInt::New(env, static_cast<uint64_t>(run->hw.hardware_exit_reason)));
      break;
    case KVM_EXIT_EXCEPTION:
      out.Set("exception", run->ex.exception);
      out.Set("errorCode", run->ex.error_code);
      break;
    case KVM_EXIT_INTERNAL_ERROR: {
      uint32_t n = run->internal.ndata > 16 ? 16 : run->internal.ndata;
      out.Set("suberror", run->internal.suberror);
      out.Set("data", BigIntArray(env, reinterpret_cast<const uint64_t*>(run->internal.data), n));
      break;
    }
    case KVM_EXIT_SYSTEM_EVENT: {
      uint32_t n = run->system_event.ndata > 16 ? 16 : run->system_event.ndata;
      out.Set("type", run->system_event.type);
      out.Set("data", BigIntArray(env, reinterpret_cast<const uint64_t*>(run->system_event.data), n));
      break;
    }
    case uapi::EXIT_MEMORY_FAULT: {  // KVM_RUN failed with EFAULT (or EHWPOISON) and this exit
      const auto* r = reinterpret_cast<const uapi::kvm_run_exits*>(core.run);
      out.Set("flags", Napi::BigInt::New(env, static_cast<uint64_t>(r->memory_fault.flags)));
      out.Set("gpa", Napi::BigInt::New(env, static_cast<uint64_t>(r->memory_fault.gpa)));
      out.Set("memorySize", Napi::BigInt::New(env, static_cast<uint64_t>(r->memory_fault.size)));
      break;
    }
    case uapi::EXIT_SNP_REQ_CERTS: {
      const auto* r = reinterpret_cast<const uapi::kvm_run_exits*>(core.run);
      out.Set("gpa", Napi::BigInt::New(env, static_cast<uint64_t>(r->snp_req_certs.gpa)));
      out.Set("npages", Napi::BigInt::New(env, static_cast<uint64_t>(r->snp_req_certs.npages)));
      break;
    }
    case KVM_EXIT_HYPERCALL:
      out.Set("nr", Napi::BigInt::New(env, static_cast<uint64_t>(run->hypercall.nr)));
      out.Set("args", BigIntArray(env, reinterpret_cast<const uint64_t*>(run->hypercall.args), 6));
      out.Set("longMode", run->hypercall.longmode);
      break;
    default:
      break;
  }
}

}  // namespace

Napi::Function Vcpu::Define(Napi::Env env, Classes* classes) {
  return DefineClass(env, "Vcpu",
                     {
                         InstanceMethod<&Vcpu::GetRegs>("getRegs", napi_default, classes),
                         InstanceMethod<&Vcpu::SetRegs>("setRegs", napi_default, classes),
                         InstanceMethod<&Vcpu::GetSregs>("getSregs", napi_default, classes),
                         InstanceMethod<&Vcpu::SetSregs>("setSregs", napi_default, classes),
                         InstanceMethod<&Vcpu::GetFpu>("getFpu", napi_default, classes),
                         InstanceMethod<&Vcpu::SetFpu>("setFpu", napi_default, classes),
                         InstanceMethod<&Vcpu::SetCpuid2>("setCpuid2", napi_default, classes),
                         InstanceMethod<&Vcpu::Run>("run", napi_default, classes),
                         InstanceMethod<&Vcpu::SetIoData>("setIoData", napi_default, classes),
                         InstanceMethod<&Vcpu::SetMmioData>("setMmioData", napi_default, classes),
                         InstanceMethod<&Vcpu::SetHypercallResult>("setHypercallResult", napi_default, classes),
                         InstanceMethod<&Vcpu::SetSnpReqCertsResult>("setSnpReqCertsResult", napi_default, classes),
                         InstanceMethod<&Vcpu::Kick>("kick", napi_default, classes),
                         InstanceMethod<&Vcpu::Close>("close", napi_default, classes),
                         InstanceAccessor<&Vcpu::GetFd>("fd", napi_default, classes),
                         InstanceAccessor<&Vcpu::GetId>("id", napi_default, classes),
                         InstanceAccessor<&Vcpu::GetClosed>("closed", napi_default, classes),
                         InstanceAccessor<&Vcpu::GetRunning>("running", napi_default, classes),
                     },
                     classes);
}

// Only Vm#createVcpu constructs a Vcpu (JS cannot make the External it passes).
Vcpu::Vcpu(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Vcpu>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "Vcpu objects are created by Vm#createVcpu()");
  }
  Init* init = info[0].As<Napi::External<Init>>().Data();
  core_ = init->core;
  vmMemory_ = init->vmMemory;
  id_ = init->id;
  info.This().As<Napi::Object>().TypeTag(&kVcpuTag);
}

// Register ioctls block on the vCPU mutex while KVM_RUN is in progress: refuse (EBUSY) instead of
// blocking the event loop behind a running guest.
#define VCPU_IDLE_OR_RETURN(env)                                     \
  do {                                                               \
    if (!core_) return ErrnoOutcome(env, false, EBADF);              \
    if (running_) return ErrnoOutcome(env, false, EBUSY);            \
  } while (0)

// getRegs() → {regs}: KVM_GET_REGS, the general-purpose registers, rip and rflags (BigInts).
Napi::Value Vcpu::GetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VCPU_IDLE_OR_RETURN(env);
  kvm_regs regs{};
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVM_GET_REGS, &regs) < 0) o.err = errno;
  return OutcomeObject(env, o, [&](Napi::Env env, Napi::Object& out) {
    Napi::Object r = Napi::Object::New(env);
    for (const Field& f : kRegs) r.Set(f.name, Napi::BigInt::New(env, U64At(&regs, f.offset)));
    out.Set("regs", r);
  });
}

// setRegs(regs): KVM_SET_REGS; every field of kvm_regs must be given.
Napi::Value Vcpu::SetRegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = ObjectArg(info[0], "regs");
  kvm_regs regs{};
  for (const Field& f : kRegs) U64At(&regs, f.offset) = U64Arg(r.Get(f.name), f.name);
  VCPU_IDLE_OR_RETURN(env);
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVM_SET_REGS, &regs) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// getSregs() → {sregs}: KVM_GET_SREGS — segments, descriptor tables, control registers, EFER,
// APIC base and the pending-interrupt bitmap.
Napi::Value Vcpu::GetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VCPU_IDLE_OR_RETURN(env);
  kvm_sregs sregs{};
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVM_GET_SREGS, &sregs) < 0) o.err = errno;
  return OutcomeObject(env, o, [&](Napi::Env env, Napi::Object& out) {
    Napi::Object s = Napi::Object::New(env);
    for (const Field& f : kSegments) {
      s.Set(f.name, SegmentToJs(env, *reinterpret_cast<kvm_segment*>(reinterpret_cast<uint8_t*>(&sregs) + f.offset)));
    }
    for (const Field& f : kDtables) {
      auto* d = reinterpret_cast<kvm_dtable*>(reinterpret_cast<uint8_t*>(&sregs) + f.offset);
      Napi::Object t = Napi::Object::New(env);
      t.Set("base", Napi::BigInt::New(env, static_cast<uint64_t>(d->base)));
      t.Set("limit", d->limit);
      s.Set(f.name, t);
    }
    for (const Field& f : kControl) s.Set(f.name, Napi::BigInt::New(env, U64At(&sregs, f.offset)));
    s.Set("interruptBitmap",
          BigIntArray(env, reinterpret_cast<const uint64_t*>(sregs.interrupt_bitmap), 4));
    out.Set("sregs", s);
  });
}

// getFpu() → {fpu}: KVM_GET_FPU — the x87 and SSE state: fcw, fsw, ftwx (abridged tag),
// lastOpcode, lastIp, lastDp (BigInts), mxcsr, fpr (8 × 16 bytes) and xmm (16 × 16 bytes).
Napi::Value Vcpu::GetFpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  VCPU_IDLE_OR_RETURN(env);
  kvm_fpu fpu{};
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVM_GET_FPU, &fpu) < 0) o.err = errno;
  return OutcomeObject(env, o, [&](Napi::Env env, Napi::Object& out) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("fcw", fpu.fcw);
    f.Set("fsw", fpu.fsw);
    f.Set("ftwx", fpu.ftwx);
    f.Set("lastOpcode", fpu.last_opcode);
    f.Set("lastIp", Napi::BigInt::New(env, static_cast<uint64_t>(fpu.last_ip)));
    f.Set("lastDp", Napi::BigInt::New(env, static_cast<uint64_t>(fpu.last_dp)));
    f.Set("mxcsr", fpu.mxcsr);
    f.Set("fpr", Napi::Buffer<uint8_t>::Copy(env, &fpu.fpr[0][0], sizeof fpu.fpr));
    f.Set("xmm", Napi::Buffer<uint8_t>::Copy(env, &fpu.xmm[0][0], sizeof fpu.xmm));
    out.Set("fpu", f);
  });
}

// setFpu(fpu): KVM_SET_FPU; every field must be given (the TS layer merges over getFpu()).
Napi::Value Vcpu::SetFpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object f = ObjectArg(info[0], "fpu");
  kvm_fpu fpu{};
  fpu.fcw = static_cast<uint16_t>(U32Arg(f.Get("fcw"), "fcw"));
  fpu.fsw = static_cast<uint16_t>(U32Arg(f.Get("fsw"), "fsw"));
  fpu.ftwx = static_cast<uint8_t>(U32Arg(f.Get("ftwx"), "ftwx"));
  fpu.last_opcode = static_cast<uint16_t>(U32Arg(f.Get("lastOpcode"), "lastOpcode"));
  fpu.last_ip = U64Arg(f.Get("lastIp"), "lastIp");
  fpu.last_dp = U64Arg(f.Get("lastDp"), "lastDp");
  fpu.mxcsr = U32Arg(f.Get("mxcsr"), "mxcsr");
  Bytes fpr = OptionalBytes(f.Get("fpr"), "fpr"), xmm = OptionalBytes(f.Get("xmm"), "xmm");
  if (fpr.length != sizeof fpu.fpr || xmm.length != sizeof fpu.xmm) {
    throw Napi::RangeError::New(env, "setFpu: fpr must be 128 bytes and xmm 256 bytes");
  }
  memcpy(fpu.fpr, fpr.data, sizeof fpu.fpr);
  memcpy(fpu.xmm, xmm.data, sizeof fpu.xmm);
  VCPU_IDLE_OR_RETURN(env);
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVM_SET_FPU, &fpu) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// setSregs(sregs): KVM_SET_SREGS; every field must be given (the TS layer merges partial updates
// over getSregs()). A set bit in interruptBitmap queues that interrupt.
Napi::Value Vcpu::SetSregs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object s = ObjectArg(info[0], "sregs");
  kvm_sregs sregs{};
  for (const Field& f : kSegments) {
    SegmentFromJs(s.Get(f.name), f.name, reinterpret_cast<kvm_segment*>(reinterpret_cast<uint8_t*>(&sregs) + f.offset));
  }
  for (const Field& f : kDtables) {
    Napi::Object t = ObjectArg(s.Get(f.name), f.name);
    auto* d = reinterpret_cast<kvm_dtable*>(reinterpret_cast<uint8_t*>(&sregs) + f.offset);
    d->base = U64Arg(t.Get("base"), "descriptor table base");
    d->limit = static_cast<uint16_t>(SmallField(t, "limit", 0xffff));
  }
  for (const Field& f : kControl) U64At(&sregs, f.offset) = U64Arg(s.Get(f.name), f.name);
  Napi::Value bm = s.Get("interruptBitmap");
  if (!bm.IsUndefined()) {
    if (!bm.IsArray() || bm.As<Napi::Array>().Length() != 4) {
      throw Napi::TypeError::New(env, "interruptBitmap must be an array of 4 bigints");
    }
    for (uint32_t i = 0; i < 4; i++) sregs.interrupt_bitmap[i] = U64Arg(bm.As<Napi::Array>().Get(i), "interruptBitmap");
  }
  VCPU_IDLE_OR_RETURN(env);
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVM_SET_SREGS, &sregs) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// setCpuid2(entries): KVM_SET_CPUID2 — the CPUID leaves the guest sees (typically from
// Kvm#supportedCpuid, possibly edited). Entries: {function, index, flags, eax, ebx, ecx, edx}.
Napi::Value Vcpu::SetCpuid2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "setCpuid2: entries must be an array");
  Napi::Array a = info[0].As<Napi::Array>();
  if (a.Length() > 1024) throw Napi::RangeError::New(env, "setCpuid2: too many entries");
  std::vector<uint8_t> storage(sizeof(Cpuid2Header) + a.Length() * sizeof(kvm_cpuid_entry2), 0);
  reinterpret_cast<Cpuid2Header*>(storage.data())->nent = a.Length();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Object e = ObjectArg(a.Get(i), "cpuid entry");
    kvm_cpuid_entry2 d{};
    d.function = U32Arg(e.Get("function"), "function");
    d.index = U32Arg(e.Get("index"), "index");
    d.flags = U32Arg(e.Get("flags"), "flags");
    d.eax = U32Arg(e.Get("eax"), "eax");
    d.ebx = U32Arg(e.Get("ebx"), "ebx");
    d.ecx = U32Arg(e.Get("ecx"), "ecx");
    d.edx = U32Arg(e.Get("edx"), "edx");
    std::memcpy(storage.data() + sizeof(Cpuid2Header) + i * sizeof d, &d, sizeof d);
  }
  VCPU_IDLE_OR_RETURN(env);
  Outcome o;
  if (::ioctl(core_->fd->fd(), KVMIO_SET_CPUID2, storage.data()) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// run(async) → {exitReason, ...details}: KVM_RUN until the guest exits to userspace. Details by
// exit: IO {direction (0 in, 1 out), size, port, count, data}, MMIO {physAddr, length, isWrite,
// data}, FAIL_ENTRY {hardwareEntryFailureReason, cpu}, INTERNAL_ERROR {suberror, data},
// SYSTEM_EVENT {type, data}, HYPERCALL {nr, args, longMode}, ... errno EINTR = a signal
// interrupted the run (exitReason KVM_EXIT_INTR). One run at a time per vCPU (else EBUSY).
Napi::Value Vcpu::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool async = BoolArg(info, 0);
  if (!core_) return ErrnoOutcome(env, async, EBADF);
  if (running_) return ErrnoOutcome(env, async, EBUSY);
  std::shared_ptr<VcpuCore> core = core_;
  SharedVmMemory vmMemory = vmMemory_;
  Work work = [core, vmMemory]() {
    Outcome o;
    o.err = core->Run();
    return o;
  };
  Finish finish = [core](Napi::Env env, Napi::Object& out) { ExitToJs(env, *core, out); };
  auto pins = std::make_shared<Pins>();
  pins->Add(info.This());  // `this` must outlive the job: onSettled clears running_
  running_ = true;
  return RunIoctl(env, async, std::move(work), std::move(finish), pins, [this]() { running_ = false; });
}

// setIoData(bytes): completes an IO "in" exit — writes the bytes the guest's IN/INS reads into
// kvm_run's I/O data area; they are delivered by the next KVM_RUN. Length must be size × count.
Napi::Value Vcpu::SetIoData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = OptionalBytes(info[0], "setIoData data");
  if (!core_) throw Napi::Error::New(env, "setIoData: vcpu is closed");
  if (running_) throw Napi::Error::New(env, "setIoData: vcpu is running");
  auto* run = static_cast<kvm_run*>(core_->run);
  if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_IN) {
    throw Napi::Error::New(env, "setIoData: the last exit was not an IO in exit");
  }
  uint64_t n = uint64_t{run->io.size} * run->io.count;
  uint64_t off = run->io.data_offset;
  if (b.length != n || off > core_->size || n > core_->size - off) {
    throw Napi::RangeError::New(env, "setIoData: data must be size × count = " + std::to_string(n) + " bytes");
  }
  if (n) std::memcpy(static_cast<uint8_t*>(core_->run) + off, b.data, n);
  return env.Undefined();
}

// setHypercallResult(ret): completes a KVM_EXIT_HYPERCALL — kvm_run.hypercall.ret, which KVM
// reads on the next KVM_RUN (0, or a positive errno such as EINVAL).
Napi::Value Vcpu::SetHypercallResult(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ret = U64Arg(info[0], "setHypercallResult ret");
  if (!core_) throw Napi::Error::New(env, "setHypercallResult: vcpu is closed");
  if (running_) throw Napi::Error::New(env, "setHypercallResult: vcpu is running");
  auto* run = static_cast<kvm_run*>(core_->run);
  if (run->exit_reason != KVM_EXIT_HYPERCALL) throw Napi::Error::New(env, "setHypercallResult: the last exit was not a hypercall");
  run->hypercall.ret = ret;
  return env.Undefined();
}

// setSnpReqCertsResult(ret, npages): completes a KVM_EXIT_SNP_REQ_CERTS (7.2) — 0 when the
// certificates are in place, ENOSPC with the pages needed, EAGAIN or EIO.
Napi::Value Vcpu::SetSnpReqCertsResult(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ret = U64Arg(info[0], "setSnpReqCertsResult ret");
  uint64_t npages = U64Arg(info[1], "setSnpReqCertsResult npages");
  if (!core_) throw Napi::Error::New(env, "setSnpReqCertsResult: vcpu is closed");
  if (running_) throw Napi::Error::New(env, "setSnpReqCertsResult: vcpu is running");
  auto* run = static_cast<uapi::kvm_run_exits*>(core_->run);
  if (run->exit_reason != uapi::EXIT_SNP_REQ_CERTS) throw Napi::Error::New(env, "setSnpReqCertsResult: the last exit was not SNP_REQ_CERTS");
  run->snp_req_certs.ret = ret;
  run->snp_req_certs.npages = npages;
  return env.Undefined();
}

// setMmioData(bytes): completes an MMIO read exit — the value the guest's load returns.
Napi::Value Vcpu::SetMmioData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes b = OptionalBytes(info[0], "setMmioData data");
  if (!core_) throw Napi::Error::New(env, "setMmioData: vcpu is closed");
  if (running_) throw Napi::Error::New(env, "setMmioData: vcpu is running");
  auto* run = static_cast<kvm_run*>(core_->run);
  if (run->exit_reason != KVM_EXIT_MMIO || run->mmio.is_write) {
    throw Napi::Error::New(env, "setMmioData: the last exit was not an MMIO read");
  }
  if (b.length != run->mmio.len || b.length > sizeof run->mmio.data) {
    throw Napi::RangeError::New(env, "setMmioData: data must be " + std::to_string(run->mmio.len) + " bytes");
  }
  std::memcpy(run->mmio.data, b.data, b.length);
  return env.Undefined();
}

// kick(): interrupt a run in progress on the thread pool (it returns errno EINTR, exit INTR);
// with no run in progress, the next run returns EINTR at once (kvm_run.immediate_exit).
Napi::Value Vcpu::Kick(const Napi::CallbackInfo& info) {
  if (core_) core_->Kick();
  return info.Env().Undefined();
}

// close(): idempotent. The fd closes and kvm_run is unmapped once a run in flight has returned.
Napi::Value Vcpu::Close(const Napi::CallbackInfo& info) {
  core_.reset();
  vmMemory_.reset();
  return info.Env().Undefined();
}

Napi::Value Vcpu::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), core_ ? core_->fd->fd() : -1);
}
Napi::Value Vcpu::GetId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_); }
Napi::Value Vcpu::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !core_); }
Napi::Value Vcpu::GetRunning(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), running_); }

}  // namespace kvm
}  // namespace addon
