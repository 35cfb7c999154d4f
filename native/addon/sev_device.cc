#include "sev_device.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "ioctl_call.h"
#include "uapi/psp_sev.h"

namespace addon {

// A sub-command ready to issue: its id, the struct the kernel reads/writes (owned here so it
// outlives a worker thread), the JS buffers it points into, and how to report its outputs.
struct SevDevice::Command {
  uint32_t id = 0;
  std::shared_ptr<void> data;  // nullptr → sev_issue_cmd.data = 0
  void* rawData = nullptr;     // used when the data lives in a pinned JS buffer (IssueRaw)
  std::shared_ptr<Pins> pins = std::make_shared<Pins>();
  Finish finish;
};

void SevDevice::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "SevDevice",
      {
          InstanceMethod<&SevDevice::FactoryReset>("factoryReset"),
          InstanceMethod<&SevDevice::PlatformStatus>("platformStatus"),
          InstanceMethod<&SevDevice::PekGen>("pekGen"),
          InstanceMethod<&SevDevice::PekCsr>("pekCsr"),
          InstanceMethod<&SevDevice::PdhGen>("pdhGen"),
          InstanceMethod<&SevDevice::PdhCertExport>("pdhCertExport"),
          InstanceMethod<&SevDevice::PekCertImport>("pekCertImport"),
          InstanceMethod<&SevDevice::GetId>("getId"),
          InstanceMethod<&SevDevice::GetId2>("getId2"),
          InstanceMethod<&SevDevice::SnpPlatformStatus>("snpPlatformStatus"),
          InstanceMethod<&SevDevice::SnpCommit>("snpCommit"),
          InstanceMethod<&SevDevice::SnpSetConfig>("snpSetConfig"),
          InstanceMethod<&SevDevice::SnpVlekLoad>("snpVlekLoad"),
          InstanceMethod<&SevDevice::IssueRaw>("issueRaw"),
          InstanceMethod<&SevDevice::Close>("close"),
          InstanceAccessor<&SevDevice::GetFd>("fd"),
          InstanceAccessor<&SevDevice::GetClosed>("closed"),
          InstanceAccessor<&SevDevice::GetWritable>("writable"),
      });
  exports.Set("SevDevice", ctor);
}

// new SevDevice(path, writable): open(2) the device. Throws an Error carrying `errno` on failure.
SevDevice::SevDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SevDevice>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "SevDevice(path, writable): path must be a string");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  writable_ = BoolArg(info, 1);
  fd_ = ::open(path.c_str(), (writable_ ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    Napi::Error e = Napi::Error::New(env, std::string("open ") + path + ": " + strerror(err));
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  }
}

SevDevice::~SevDevice() {
  // Only reached once no worker holds a reference to this object (workers pin it via JS).
  if (fd_ >= 0) ::close(fd_);
}

Napi::Value SevDevice::Issue(const Napi::CallbackInfo& info, bool async, Command cmd) {
  Napi::Env env = info.Env();
  if (fd_ < 0 || closeRequested_) {
    Outcome closed;
    closed.err = EBADF;
    if (!async) return OutcomeObject(env, closed, nullptr);
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(OutcomeObject(env, closed, nullptr));
    return d.Promise();
  }
  if (!async) {
    // The synchronous path: the ioctl right here, on a stack struct — no pinned references, no
    // type-erased work object, no in-flight bookkeeping (nothing can close the fd meanwhile).
    uapi::sev_issue_cmd arg{};
    arg.cmd = cmd.id;
    arg.data = reinterpret_cast<uintptr_t>(cmd.data ? cmd.data.get() : cmd.rawData);
    Outcome o;
    if (::ioctl(fd_, uapi::SEV_ISSUE_CMD, &arg) < 0) o.err = errno;
    o.fwError = arg.error;
    return OutcomeObject(env, o, cmd.finish);
  }
  cmd.pins->Add(info.This());  // keep this object (and its fd) alive while a worker uses it
  int fd = fd_;
  uint32_t id = cmd.id;
  std::shared_ptr<void> data = cmd.data;
  void* dataPtr = cmd.data ? cmd.data.get() : cmd.rawData;
  Work work = [fd, id, data, dataPtr]() {
    uapi::sev_issue_cmd arg{};
    arg.cmd = id;
    arg.data = reinterpret_cast<uintptr_t>(dataPtr);
    Outcome o;
    if (::ioctl(fd, uapi::SEV_ISSUE_CMD, &arg) < 0) o.err = errno;
    o.fwError = arg.error;
    return o;
  };
  inFlight_++;
  return RunIoctl(env, async, std::move(work), std::move(cmd.finish), cmd.pins, [this]() {
    inFlight_--;
    ReleaseIfIdle();
  });
}

void SevDevice::ReleaseIfIdle() {
  if (closeRequested_ && inFlight_ == 0 && fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

template <typename T>
static std::shared_ptr<T> NewStruct() {
  return std::make_shared<T>();  // value-initialised: all fields zero
}

// The firmware structs are packed: read a field by value before handing it to Napi (whose Set
// takes a reference, which to a packed uint32_t would be a misaligned load).
template <typename T>
static T Field(T value) {
  return value;
}

// FACTORY_RESET: no data.
Napi::Value SevDevice::FactoryReset(const Napi::CallbackInfo& info) {
  Command c;
  c.id = uapi::SEV_FACTORY_RESET;
  return Issue(info, BoolArg(info, 0), std::move(c));
}

// PLATFORM_STATUS → {apiMajor, apiMinor, state, flags, build, guestCount}.
Napi::Value SevDevice::PlatformStatus(const Napi::CallbackInfo& info) {
  auto s = NewStruct<uapi::sev_user_data_status>();
  Command c;
  c.id = uapi::SEV_PLATFORM_STATUS;
  c.data = s;
  c.finish = [s](Napi::Env env, Napi::Object& out) {
    out.Set("apiMajor", Field(s->api_major));
    out.Set("apiMinor", Field(s->api_minor));
    out.Set("state", Field(s->state));
    out.Set("flags", Field(s->flags));
    out.Set("build", Field(s->build));
    out.Set("guestCount", Field(s->guest_count));
  };
  return Issue(info, BoolArg(info, 0), std::move(c));
}

Napi::Value SevDevice::PekGen(const Napi::CallbackInfo& info) {
  Command c;
  c.id = uapi::SEV_PEK_GEN;
  return Issue(info, BoolArg(info, 0), std::move(c));
}

Napi::Value SevDevice::PdhGen(const Napi::CallbackInfo& info) {
  Command c;
  c.id = uapi::SEV_PDH_GEN;
  return Issue(info, BoolArg(info, 0), std::move(c));
}

// PEK_CSR(buffer | null): a null buffer asks the firmware for the length (INVALID_LEN + length).
Napi::Value SevDevice::PekCsr(const Napi::CallbackInfo& info) {
  Bytes buf = OptionalBytes(info[0], "pekCsr buffer");
  auto s = NewStruct<uapi::sev_user_data_pek_csr>();
  s->address = reinterpret_cast<uintptr_t>(buf.data);
  s->length = static_cast<uint32_t>(buf.length);
  Command c;
  c.id = uapi::SEV_PEK_CSR;
  c.data = s;
  c.pins->Add(info[0]);
  c.finish = [s](Napi::Env, Napi::Object& out) { out.Set("length", Field(s->length)); };
  return Issue(info, BoolArg(info, 1), std::move(c));
}

// PDH_CERT_EXPORT(pdh | null, chain | null) → {pdhLength, chainLength}.
Napi::Value SevDevice::PdhCertExport(const Napi::CallbackInfo& info) {
  Bytes pdh = OptionalBytes(info[0], "pdhCertExport pdh buffer");
  Bytes chain = OptionalBytes(info[1], "pdhCertExport chain buffer");
  auto s = NewStruct<uapi::sev_user_data_pdh_cert_export>();
  s->pdh_cert_address = reinterpret_cast<uintptr_t>(pdh.data);
  s->pdh_cert_len = static_cast<uint32_t>(pdh.length);
  s->cert_chain_address = reinterpret_cast<uintptr_t>(chain.data);
  s->cert_chain_len = static_cast<uint32_t>(chain.length);
  Command c;
  c.id = uapi::SEV_PDH_CERT_EXPORT;
  c.data = s;
  c.pins->Add(info[0]);
  c.pins->Add(info[1]);
  c.finish = [s](Napi::Env, Napi::Object& out) {
    out.Set("pdhLength", Field(s->pdh_cert_len));
    out.Set("chainLength", Field(s->cert_chain_len));
  };
  return Issue(info, BoolArg(info, 2), std::move(c));
}

// PEK_CERT_IMPORT(pek, oca): the OCA-signed PEK certificate and the OCA certificate.
Napi::Value SevDevice::PekCertImport(const Napi::CallbackInfo& info) {
  Bytes pek = OptionalBytes(info[0], "pekCertImport pek");
  Bytes oca = OptionalBytes(info[1], "pekCertImport oca");
  auto s = NewStruct<uapi::sev_user_data_pek_cert_import>();
  s->pek_cert_address = reinterpret_cast<uintptr_t>(pek.data);
  s->pek_cert_len = static_cast<uint32_t>(pek.length);
  s->oca_cert_address = reinterpret_cast<uintptr_t>(oca.data);
  s->oca_cert_len = static_cast<uint32_t>(oca.length);
  Command c;
  c.id = uapi::SEV_PEK_CERT_IMPORT;
  c.data = s;
  c.pins->Add(info[0]);
  c.pins->Add(info[1]);
  return Issue(info, BoolArg(info, 2), std::move(c));
}

// GET_ID (deprecated by the kernel): a fixed 128-byte struct, 64 bytes per socket.
Napi::Value SevDevice::GetId(const Napi::CallbackInfo& info) {
  auto s = NewStruct<uapi::sev_user_data_get_id>();
  Command c;
  c.id = uapi::SEV_GET_ID;
  c.data = s;
  c.finish = [s](Napi::Env env, Napi::Object& out) {
    out.Set("socket1", Napi::Buffer<uint8_t>::Copy(env, s->socket1, sizeof s->socket1));
    out.Set("socket2", Napi::Buffer<uint8_t>::Copy(env, s->socket2, sizeof s->socket2));
  };
  return Issue(info, BoolArg(info, 0), std::move(c));
}

// GET_ID2(buffer | null) → {length}: the firmware writes back the length it needs or wrote.
Napi::Value SevDevice::GetId2(const Napi::CallbackInfo& info) {
  Bytes buf = OptionalBytes(info[0], "getId2 buffer");
  auto s = NewStruct<uapi::sev_user_data_get_id2>();
  s->address = reinterpret_cast<uintptr_t>(buf.data);
  s->length = static_cast<uint32_t>(buf.length);
  Command c;
  c.id = uapi::SEV_GET_ID2;
  c.data = s;
  c.pins->Add(info[0]);
  c.finish = [s](Napi::Env, Napi::Object& out) { out.Set("length", Field(s->length)); };
  return Issue(info, BoolArg(info, 1), std::move(c));
}

// SNP_PLATFORM_STATUS → the fields of sev_user_data_snp_status (TCB versions as BigInt).
Napi::Value SevDevice::SnpPlatformStatus(const Napi::CallbackInfo& info) {
  auto s = NewStruct<uapi::sev_user_data_snp_status>();
  Command c;
  c.id = uapi::SNP_PLATFORM_STATUS;
  c.data = s;
  c.finish = [s](Napi::Env env, Napi::Object& out) {
    out.Set("apiMajor", Field(s->api_major));
    out.Set("apiMinor", Field(s->api_minor));
    out.Set("state", Field(s->state));
    out.Set("isRmpInitialized", (s->is_rmp_initialized & 1) != 0);
    out.Set("buildId", Field(s->build_id));
    out.Set("featureFlags", Field(s->feature_flags));
    out.Set("guestCount", Field(s->guest_count));
    out.Set("currentTcbVersion", Napi::BigInt::New(env, s->current_tcb_version));
    out.Set("reportedTcbVersion", Napi::BigInt::New(env, s->reported_tcb_version));
  };
  return Issue(info, BoolArg(info, 0), std::move(c));
}

Napi::Value SevDevice::SnpCommit(const Napi::CallbackInfo& info) {
  Command c;
  c.id = uapi::SNP_COMMIT;
  return Issue(info, BoolArg(info, 0), std::move(c));
}

// SNP_SET_CONFIG(reportedTcb: bigint, flags: number): flags bit 0 mask_chip_id, bit 1 mask_chip_key.
Napi::Value SevDevice::SnpSetConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBigInt() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "snpSetConfig(reportedTcb: bigint, flags: number, async)");
  }
  bool lossless = true;
  auto s = NewStruct<uapi::sev_user_data_snp_config>();
  s->reported_tcb = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  s->flags = info[1].As<Napi::Number>().Uint32Value();
  Command c;
  c.id = uapi::SNP_SET_CONFIG;
  c.data = s;
  return Issue(info, BoolArg(info, 2), std::move(c));
}

// SNP_VLEK_LOAD(hashstick: Buffer): the wrapped VLEK hashstick KDS issued (432 bytes, checked in
// lib/platform), version 0; the kernel copies it in.
Napi::Value SevDevice::SnpVlekLoad(const Napi::CallbackInfo& info) {
  Bytes hashstick = OptionalBytes(info[0], "snpVlekLoad hashstick");
  auto s = NewStruct<uapi::sev_user_data_snp_vlek_load>();
  s->len = sizeof(uapi::sev_user_data_snp_vlek_load);
  s->vlek_wrapped_version = 0;
  s->vlek_wrapped_address = reinterpret_cast<uint64_t>(hashstick.data);
  Command c;
  c.id = uapi::SNP_VLEK_LOAD;
  c.data = s;
  c.pins->Add(info[0]);
  return Issue(info, BoolArg(info, 1), std::move(c));
}

// issueRaw(cmd, payload | null, pointers: [offset, Buffer][], async): for conformance tests only.
// Writes each Buffer's address as a u64 at `offset` inside payload, then passes payload as
// sev_issue_cmd.data. Callers must keep any length field within the Buffers they pass.
Napi::Value SevDevice::IssueRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "issueRaw: cmd must be a number");
  Bytes payload = OptionalBytes(info[1], "issueRaw payload");
  Command c;
  c.id = info[0].As<Napi::Number>().Uint32Value();
  c.rawData = payload.data;
  c.pins->Add(info[1]);
  if (info[2].IsArray()) {
    Napi::Array ptrs = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < ptrs.Length(); i++) {
      Napi::Value entry = ptrs.Get(i);
      if (!entry.IsArray() || !entry.As<Napi::Array>().Get(0u).IsNumber()) {
        throw Napi::TypeError::New(env, "issueRaw: pointers must be [offset, Buffer] pairs");
      }
      Napi::Array pair = entry.As<Napi::Array>();
      double where = pair.Get(0u).As<Napi::Number>().DoubleValue();
      Bytes target = OptionalBytes(pair.Get(1u), "issueRaw pointer target");
      // Bounds in double precision: no 32-bit wraparound for negative or huge offsets.
      if (!(where >= 0) || where + 8 > double(payload.length) || where != double(uint64_t(where))) {
        throw Napi::RangeError::New(env, "issueRaw: pointer offset outside the payload");
      }
      size_t offset = size_t(where);
      uint64_t addr = reinterpret_cast<uintptr_t>(target.data);
      std::memcpy(payload.data + offset, &addr, 8);
      c.pins->Add(pair.Get(1u));
    }
  }
  return Issue(info, BoolArg(info, 3), std::move(c));
}

// close(): idempotent. If async calls are still running, the fd is closed when the last ends.
Napi::Value SevDevice::Close(const Napi::CallbackInfo& info) {
  closeRequested_ = true;
  ReleaseIfIdle();
  return info.Env().Undefined();
}

Napi::Value SevDevice::GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
Napi::Value SevDevice::GetClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), closeRequested_);
}
Napi::Value SevDevice::GetWritable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), writable_);
}

}  // namespace addon
