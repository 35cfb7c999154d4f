#include "sev_guest_device.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "ioctl_call.h"
#include "uapi/sev_guest.h"

namespace addon {

// One guest request ready to issue: the ioctl number, the snp_guest_request_ioctl the kernel reads
// and (when exitinfo2 is non-zero) writes back, the request struct when the addon owns it (the ext
// report's, which carries the certificate buffer's address), and the JS buffers it points into.
struct SevGuestDevice::Request {
  unsigned long ioctl = 0;
  std::shared_ptr<uapi::snp_guest_request_ioctl> arg = std::make_shared<uapi::snp_guest_request_ioctl>();
  std::shared_ptr<uapi::snp_ext_report_req> ext;  // SNP_GET_EXT_REPORT only
  std::shared_ptr<Pins> pins = std::make_shared<Pins>();
  Finish finish;
};

void SevGuestDevice::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "SevGuestDevice",
      {
          InstanceMethod<&SevGuestDevice::GetReport>("getReport"),
          InstanceMethod<&SevGuestDevice::GetDerivedKey>("getDerivedKey"),
          InstanceMethod<&SevGuestDevice::GetExtReport>("getExtReport"),
          InstanceMethod<&SevGuestDevice::Close>("close"),
          InstanceAccessor<&SevGuestDevice::GetFd>("fd"),
          InstanceAccessor<&SevGuestDevice::GetClosed>("closed"),
      });
  exports.Set("SevGuestDevice", ctor);
}

// new SevGuestDevice(path, flags): open(2) with `flags` (O_RDWR when omitted) | O_CLOEXEC. Throws an
// Error carrying `errno` on failure.
SevGuestDevice::SevGuestDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SevGuestDevice>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "SevGuestDevice(path, flags): path must be a string");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int flags = O_RDWR;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "SevGuestDevice(path, flags): flags must be a number");
    flags = info[1].As<Napi::Number>().Int32Value();
  }
  fd_ = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    Napi::Error e = Napi::Error::New(env, std::string("open ") + path + ": " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
}

SevGuestDevice::~SevGuestDevice() {
  // Only reached once no worker holds a reference to this object (workers pin it via JS).
  if (fd_ >= 0) ::close(fd_);
}

// A Buffer of exactly `size` bytes, or null/undefined (→ a null pointer, which the kernel refuses
// with EINVAL before touching memory).
static Bytes FixedBytes(const Napi::Value& v, size_t size, const char* what) {
  Bytes b = OptionalBytes(v, what);
  if (b.data != nullptr && b.length != size) {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be " + std::to_string(size) + " bytes");
  }
  return b;
}

static uint8_t MsgVersion(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "msgVersion must be a number");
  uint32_t v = info[0].As<Napi::Number>().Uint32Value();
  if (v > 0xff) throw Napi::RangeError::New(info.Env(), "msgVersion must fit in a byte");
  return static_cast<uint8_t>(v);
}

Napi::Value SevGuestDevice::Issue(const Napi::CallbackInfo& info, bool async, Request req) {
  Napi::Env env = info.Env();
  if (fd_ < 0 || closeRequested_) {
    Outcome closed;
    closed.err = EBADF;
    if (!async) return OutcomeObject(env, closed, nullptr);
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(OutcomeObject(env, closed, nullptr));
    return d.Promise();
  }
  req.pins->Add(info.This());  // keep this object (and its fd) alive while a worker uses it
  int fd = fd_;
  unsigned long nr = req.ioctl;
  auto arg = req.arg;
  auto ext = req.ext;
  Work work = [fd, nr, arg, ext]() {
    Outcome o;
    if (::ioctl(fd, nr, arg.get()) < 0) o.err = errno;
    o.fwError = arg->fw_error;
    return o;
  };
  Finish inner = std::move(req.finish);
  Finish finish = [arg, inner](Napi::Env env, Napi::Object& out) {
    out.Set("exitinfo2", Napi::BigInt::New(env, static_cast<uint64_t>(arg->exitinfo2)));
    out.Set("vmmError", Napi::Number::New(env, arg->vmm_error));
    if (inner) inner(env, out);
  };
  inFlight_++;
  return RunIoctl(env, async, std::move(work), std::move(finish), req.pins, [this]() {
    inFlight_--;
    ReleaseIfIdle();
  });
}

void SevGuestDevice::ReleaseIfIdle() {
  if (closeRequested_ && inFlight_ == 0 && fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

// SNP_GET_REPORT and SNP_GET_DERIVED_KEY: (msgVersion, req: fixed-size request | null, resp:
// fixed-size buffer | null, async); the kernel fills resp (the firmware's response payload) on success.
Napi::Value SevGuestDevice::PlainRequest(const Napi::CallbackInfo& info, unsigned long ioctl, size_t reqSize,
                                         size_t respSize, const char* what) {
  Request r;
  r.ioctl = ioctl;
  r.arg->msg_version = MsgVersion(info);
  Bytes req = FixedBytes(info[1], reqSize, (std::string(what) + " request").c_str());
  Bytes resp = FixedBytes(info[2], respSize, (std::string(what) + " response").c_str());
  r.arg->req_data = reinterpret_cast<uintptr_t>(req.data);
  r.arg->resp_data = reinterpret_cast<uintptr_t>(resp.data);
  r.arg->exitinfo2 = 0;
  r.pins->Add(info[1]);
  r.pins->Add(info[2]);
  return Issue(info, BoolArg(info, 3), std::move(r));
}

// getReport(msgVersion, req: 96-byte snp_report_req | null, resp: 4000-byte buffer | null, async).
Napi::Value SevGuestDevice::GetReport(const Napi::CallbackInfo& info) {
  return PlainRequest(info, uapi::SNP_GET_REPORT, sizeof(uapi::snp_report_req), sizeof(uapi::snp_report_resp),
                      "getReport");
}

// getDerivedKey(msgVersion, req: 32-byte snp_derived_key_req | null, resp: 64-byte buffer | null, async).
Napi::Value SevGuestDevice::GetDerivedKey(const Napi::CallbackInfo& info) {
  return PlainRequest(info, uapi::SNP_GET_DERIVED_KEY, sizeof(uapi::snp_derived_key_req),
                      sizeof(uapi::snp_derived_key_resp), "getDerivedKey");
}

// getExtReport(msgVersion, req: 96-byte snp_report_req | null, resp: 4000-byte buffer | null,
// certs: Buffer | null, certsLen: number, async) → {..., certsLen}: SNP_GET_EXT_REPORT with an
// snp_ext_report_req around req whose certs_address is certs and certs_len is certsLen (at most
// certs.length, so the kernel never writes past it; the kernel itself wants 0 or a page-aligned
// length ≤ 16 KiB). certsLen in the result is the request's certs_len afterwards: the length the
// kernel asks for when it failed with vmm_error INVALID_LEN. req == null passes req_data = 0.
Napi::Value SevGuestDevice::GetExtReport(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Request r;
  r.ioctl = uapi::SNP_GET_EXT_REPORT;
  r.arg->msg_version = MsgVersion(info);
  Bytes req = FixedBytes(info[1], sizeof(uapi::snp_report_req), "getExtReport request");
  Bytes resp = FixedBytes(info[2], sizeof(uapi::snp_report_resp), "getExtReport response");
  Bytes certs = OptionalBytes(info[3], "getExtReport certificate buffer");
  if (!info[4].IsNumber()) throw Napi::TypeError::New(env, "getExtReport: certsLen must be a number");
  double len = info[4].As<Napi::Number>().DoubleValue();
  if (!(len >= 0) || len > double(UINT32_MAX) || len != double(uint64_t(len))) {
    throw Napi::RangeError::New(env, "getExtReport: certsLen must be a 32-bit unsigned integer");
  }
  if (certs.data != nullptr && len > double(certs.length)) {
    throw Napi::RangeError::New(env, "getExtReport: certsLen exceeds the certificate buffer");
  }
  if (req.data != nullptr) {
    r.ext = std::make_shared<uapi::snp_ext_report_req>();
    std::memcpy(&r.ext->data, req.data, sizeof r.ext->data);
    r.ext->certs_address = reinterpret_cast<uintptr_t>(certs.data);
    r.ext->certs_len = static_cast<uint32_t>(len);
  }
  r.arg->req_data = reinterpret_cast<uintptr_t>(r.ext.get());
  r.arg->resp_data = reinterpret_cast<uintptr_t>(resp.data);
  r.arg->exitinfo2 = 0;
  r.pins->Add(info[2]);
  r.pins->Add(info[3]);
  auto ext = r.ext;
  r.finish = [ext](Napi::Env env, Napi::Object& out) {
    out.Set("certsLen", Napi::Number::New(env, ext ? ext->certs_len : 0));
  };
  return Issue(info, BoolArg(info, 5), std::move(r));
}

// close(): idempotent. If async calls are still running, the fd is closed when the last ends.
Napi::Value SevGuestDevice::Close(const Napi::CallbackInfo& info) {
  closeRequested_ = true;
  ReleaseIfIdle();
  return info.Env().Undefined();
}

Napi::Value SevGuestDevice::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
Napi::Value SevGuestDevice::GetClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), closeRequested_);
}

}  // namespace addon
