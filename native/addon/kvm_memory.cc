// GuestMemory: one anonymous mapping used as guest RAM, shown to JS as an external ArrayBuffer
// (zero copies). The mapping is a refcounted Mapping: this object, the ArrayBuffer's finalizer,
// every Vm memslot / encrypted region that uses it and every worker job hold a reference, so it
// is unmapped only when none of them needs it any more — whatever order GC and close() happen in.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "ioctl_call.h"
#include "kvm_classes.h"

namespace addon {
namespace kvm {

namespace {
constexpr size_t kHugePage = 2u << 20;
size_t PageSize() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }
}  // namespace

Napi::Function GuestMemory::Define(Napi::Env env, Classes* classes) {
  return DefineClass(env, "GuestMemory",
                     {
                         InstanceAccessor<&GuestMemory::GetBuffer>("buffer"),
                         InstanceAccessor<&GuestMemory::GetSize>("size"),
                         InstanceAccessor<&GuestMemory::GetAddress>("address"),
                         InstanceAccessor<&GuestMemory::GetReleased>("released"),
                         InstanceMethod<&GuestMemory::ReadFile>("readFile"),
                         InstanceMethod<&GuestMemory::Release>("release"),
                     },
                     classes);
}

// new GuestMemory(size, hugetlb, thp): mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|
// MAP_NORESERVE [|MAP_HUGETLB]) of `size` bytes (a multiple of the page size, of 2 MiB with
// hugetlb), then madvise(MADV_DONTFORK) so child processes never share or copy guest RAM, and
// madvise(MADV_HUGEPAGE) when `thp`. Throws an Error with `errno` when the kernel refuses.
GuestMemory::GuestMemory(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestMemory>(info) {
  Napi::Env env = info.Env();
  uint64_t size = U64Arg(info[0], "GuestMemory size");
  bool hugetlb = BoolArg(info, 1);
  bool thp = BoolArg(info, 2);
  size_t align = hugetlb ? kHugePage : PageSize();
  if (size == 0 || size % align != 0 || size > (uint64_t{1} << 46)) {
    throw Napi::RangeError::New(env, "GuestMemory size must be a non-zero multiple of " +
                                         std::to_string(align) + " bytes");
  }
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (hugetlb ? MAP_HUGETLB : 0);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) throw ErrnoError(env, "mmap guest memory", errno);
  mapping_ = std::make_shared<Mapping>(static_cast<uint8_t*>(p), size);  // owns p from here on
  ::madvise(p, size, MADV_DONTFORK);
  if (thp && ::madvise(p, size, MADV_HUGEPAGE) != 0) throw ErrnoError(env, "madvise(MADV_HUGEPAGE)", errno);
  size_ = size;
  address_ = reinterpret_cast<uintptr_t>(p);

  // The ArrayBuffer's finalizer holds its own reference to the mapping.
  // On failure node-addon-api itself releases `hint` (through the finalizer), so it is not
  // deleted here. The TS layer keeps sizes within buffer.constants.MAX_LENGTH, V8's limit.
  auto* hint = new SharedMapping(mapping_);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, p, size, [](Napi::Env, void*, SharedMapping* h) { delete h; }, hint);
  buffer_ = Napi::Persistent(ab);
  info.This().As<Napi::Object>().TypeTag(&kGuestMemoryTag);
}

GuestMemory::~GuestMemory() = default;

// buffer: the mapping as an ArrayBuffer (the same object every time); undefined once released.
Napi::Value GuestMemory::GetBuffer(const Napi::CallbackInfo& info) {
  if (!mapping_ || buffer_.IsEmpty()) return info.Env().Undefined();
  return buffer_.Value();
}

Napi::Value GuestMemory::GetSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(size_));
}

// address: the host virtual address of the mapping (diagnostics, /proc/self/maps checks).
Napi::Value GuestMemory::GetAddress(const Napi::CallbackInfo& info) {
  return Napi::BigInt::New(info.Env(), address_);
}

Napi::Value GuestMemory::GetReleased(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !mapping_);
}

// readFile(fd, fileOffset, memOffset, length, async) → {errno, bytesRead}: pread(2) loop from an
// open fd straight into guest memory (no intermediate buffer); stops early at end of file.
Napi::Value GuestMemory::ReadFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info[0], "readFile fd");
  uint64_t fileOffset = U64Arg(info[1], "readFile fileOffset");
  uint64_t memOffset = U64Arg(info[2], "readFile memOffset");
  uint64_t length = U64Arg(info[3], "readFile length");
  bool async = BoolArg(info, 4);
  if (!mapping_) return ErrnoOutcome(env, async, EBADF);
  if (!mapping_->Contains(memOffset, length)) {
    throw Napi::RangeError::New(env, "readFile: range is outside guest memory");
  }
  // The job reads through its own duplicate of the fd: if JS closes the fd meanwhile and the
  // number is reused, the job still reads the file it was given.
  int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return ErrnoOutcome(env, async, errno);
  SharedMapping mapping = mapping_;
  auto done = std::make_shared<uint64_t>(0);
  Work work = [mapping, fd = own, fileOffset, memOffset, length, done]() {
    Outcome o;
    struct CloseAtEnd {
      int fd;
      ~CloseAtEnd() { ::close(fd); }
    } closer{fd};
    uint8_t* dst = mapping->base() + memOffset;
    while (*done < length) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(length - *done, 1u << 30));
      ssize_t n = ::pread(fd, dst + *done, want, static_cast<off_t>(fileOffset + *done));
      if (n < 0) {
        if (errno == EINTR) continue;
        o.err = errno;
        break;
      }
      if (n == 0) break;  // end of file
      *done += static_cast<uint64_t>(n);
    }
    return o;
  };
  Finish finish = [done](Napi::Env env, Napi::Object& out) {
    out.Set("bytesRead", Napi::Number::New(env, static_cast<double>(*done)));
  };
  return RunIoctl(env, async, std::move(work), std::move(finish), std::make_shared<Pins>(), nullptr);
}

// release(): drops this object's hold on the mapping now instead of at GC. The ArrayBuffer is
// detached (every view of it becomes zero-length, so JS can no longer reach the memory) and the
// mapping is unmapped as soon as no Vm memslot / encrypted region / in-flight job uses it.
Napi::Value GuestMemory::Release(const Napi::CallbackInfo& info) {
  if (!buffer_.IsEmpty()) {
    Napi::ArrayBuffer ab = buffer_.Value();
    if (!ab.IsDetached()) ab.Detach();
    buffer_.Reset();
  }
  mapping_.reset();
  return info.Env().Undefined();
}

SharedMapping MappingArg(const Napi::Value& v, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kGuestMemoryTag)) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a GuestMemory");
  }
  GuestMemory* m = GuestMemory::Unwrap(v.As<Napi::Object>());
  return m ? m->mapping() : nullptr;
}

}  // namespace kvm
}  // namespace addon
