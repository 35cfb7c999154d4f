// GuestMemfd: one guest_memfd fd (virt/kvm/guest_memfd.c), made by Vm#createGuestMemfd. The fd
// is shared (SharedFd) with the Vm's memslots bound to it, so it closes when the object is closed
// or collected *and* no memslot uses it.
#include <fcntl.h>
#include <linux/falloc.h>

#include <cerrno>

#include "ioctl_call.h"
#include "kvm_classes.h"

namespace addon {
namespace kvm {

Napi::Function GuestMemfd::Define(Napi::Env env, Classes* classes) {
  return DefineClass(env, "GuestMemfd",
                     {
                         InstanceMethod<&GuestMemfd::Fallocate>("fallocate", napi_default, classes),
                         InstanceMethod<&GuestMemfd::Close>("close", napi_default, classes),
                         InstanceAccessor<&GuestMemfd::GetFd>("fd", napi_default, classes),
                         InstanceAccessor<&GuestMemfd::GetSize>("size", napi_default, classes),
                         InstanceAccessor<&GuestMemfd::GetFlags>("flags", napi_default, classes),
                         InstanceAccessor<&GuestMemfd::GetClosed>("closed", napi_default, classes),
                     },
                     classes);
}

// Only Vm#createGuestMemfd constructs one (JS cannot make the External it passes).
GuestMemfd::GuestMemfd(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestMemfd>(info) {
  if (info.Length() < 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "GuestMemfd objects are created by Vm#createGuestMemfd()");
  }
  Init* init = info[0].As<Napi::External<Init>>().Data();
  fd_ = init->fd;
  size_ = init->size;
  flags_ = init->flags;
  info.This().As<Napi::Object>().TypeTag(&kGuestMemfdTag);
}

// fallocate(punchHole, offset, length) → {errno}: kvm_gmem_fallocate with FALLOC_FL_KEEP_SIZE
// (required), plus FALLOC_FL_PUNCH_HOLE to free the range (it reads as zeros when next faulted
// in) or without it to allocate the range (within the file's size). offset and length must be
// page-aligned (EINVAL).
Napi::Value GuestMemfd::Fallocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool punch = BoolArg(info, 0);
  uint64_t offset = U64Arg(info[1], "offset");
  uint64_t length = U64Arg(info[2], "length");
  if (!fd_) return ErrnoOutcome(env, false, EBADF);
  if (offset > INT64_MAX || length > INT64_MAX) return ErrnoOutcome(env, false, EINVAL);
  Outcome o;
  int mode = FALLOC_FL_KEEP_SIZE | (punch ? FALLOC_FL_PUNCH_HOLE : 0);
  if (::fallocate(fd_->fd(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) < 0) o.err = errno;
  return OutcomeObject(env, o, nullptr);
}

// Drops this object's reference to the fd (closed once no memslot is bound to it). Idempotent.
Napi::Value GuestMemfd::Close(const Napi::CallbackInfo& info) {
  fd_.reset();
  return info.Env().Undefined();
}

Napi::Value GuestMemfd::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_ ? fd_->fd() : -1);
}
Napi::Value GuestMemfd::GetSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(size_));
}
Napi::Value GuestMemfd::GetFlags(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(flags_));
}
Napi::Value GuestMemfd::GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !fd_); }

}  // namespace kvm
}  // namespace addon
