// SevDevice: one open /dev/sev fd. Each SEV_ISSUE_CMD sub-command is a method that marshals the
// kernel's struct (native/uapi/psp_sev.h), issues the ioctl (inline, or on a worker thread when the
// last argument is true) and reports {errno, fwError, ...outputs}. Lengths always come from the
// Buffers passed in, so the kernel can never be told to write past a JS buffer.
#pragma once

#include <napi.h>

namespace addon {

class SevDevice : public Napi::ObjectWrap<SevDevice> {
 public:
  static void Register(Napi::Env env, Napi::Object exports);
  explicit SevDevice(const Napi::CallbackInfo& info);
  ~SevDevice() override;

 private:
  struct Command;  // one SEV_ISSUE_CMD in preparation

  Napi::Value FactoryReset(const Napi::CallbackInfo& info);
  Napi::Value PlatformStatus(const Napi::CallbackInfo& info);
  Napi::Value PekGen(const Napi::CallbackInfo& info);
  Napi::Value PekCsr(const Napi::CallbackInfo& info);
  Napi::Value PdhGen(const Napi::CallbackInfo& info);
  Napi::Value PdhCertExport(const Napi::CallbackInfo& info);
  Napi::Value PekCertImport(const Napi::CallbackInfo& info);
  Napi::Value GetId(const Napi::CallbackInfo& info);
  Napi::Value GetId2(const Napi::CallbackInfo& info);
  Napi::Value SnpPlatformStatus(const Napi::CallbackInfo& info);
  Napi::Value SnpCommit(const Napi::CallbackInfo& info);
  Napi::Value SnpSetConfig(const Napi::CallbackInfo& info);
  Napi::Value SnpVlekLoad(const Napi::CallbackInfo& info);
  Napi::Value IssueRaw(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetFd(const Napi::CallbackInfo& info);
  Napi::Value GetClosed(const Napi::CallbackInfo& info);
  Napi::Value GetWritable(const Napi::CallbackInfo& info);

  Napi::Value Issue(const Napi::CallbackInfo& info, bool async, Command cmd);
  void ReleaseIfIdle();

  int fd_ = -1;
  bool writable_ = false;
  bool closeRequested_ = false;
  int inFlight_ = 0;  // async calls still using fd_: close() waits for them
};

}  // namespace addon
