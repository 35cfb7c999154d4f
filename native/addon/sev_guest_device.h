// SevGuestDevice: one open /dev/sev-guest fd (inside an SEV-SNP guest). Each ioctl is a method
// that builds the kernel's struct (native/uapi/sev_guest.h) around caller-provided buffers, issues
// the ioctl (inline, or on a worker thread when the last argument is true) and reports
// {errno, exitinfo2, fwError, vmmError, ...}. Buffer sizes are checked against the kernel's fixed
// struct sizes, so the kernel can never be told to read or write past a JS buffer.
#pragma once

#include <napi.h>

namespace addon {

class SevGuestDevice : public Napi::ObjectWrap<SevGuestDevice> {
 public:
  static void Register(Napi::Env env, Napi::Object exports);
  explicit SevGuestDevice(const Napi::CallbackInfo& info);
  ~SevGuestDevice() override;

 private:
  struct Request;

  Napi::Value GetReport(const Napi::CallbackInfo& info);
  Napi::Value GetDerivedKey(const Napi::CallbackInfo& info);
  Napi::Value PlainRequest(const Napi::CallbackInfo& info, unsigned long ioctl, size_t reqSize, size_t respSize,
                           const char* what);
  Napi::Value GetExtReport(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);

  Napi::Value Issue(const Napi::CallbackInfo& info, bool async, Request req);
  void ReleaseIfIdle();

  int fd_ = -1;
  bool closeRequested_ = false;
  int inFlight_ = 0;  // async calls still using fd_: close() waits for them
};

}  // namespace addon
