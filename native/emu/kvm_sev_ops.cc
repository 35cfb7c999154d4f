// KVM_MEMORY_ENCRYPT_OP and the encrypted-region ioctls, as arch/x86/kvm/svm/sev.c
// (sev_mem_enc_ioctl and the sev_* handlers it dispatches to) does them on top of the
// firmware: argument copies and their errnos, psp_copy_user_blob limits, pinning with the
// RLIMIT_MEMLOCK accounting, the length-query protocol, and `error` = the firmware status
// of the last firmware command (-EIO when it is not SUCCESS).
#include <cerrno>
#include <algorithm>
#include <vector>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "common.h"
#include "fault.h"
#include "firmware.h"
#include "guest_registry.h"
#include "kvm_emu.h"
#include "kvm_vm.h"
#include "real_libc.h"
#include "snp_launch.h"
#include "snp_messages.h"
#include "uapi/kvm_sev.h"
#include "uapi/psp_sev.h"
#include "user_mem.h"
#include "user_pin.h"
#include "vmsa.h"

namespace sevemu {

using namespace uapi;

namespace {

constexpr uint16_t kGhcbVersionMax = 2, kGhcbVersionDefault = 2, kGhcbVersionMin = 1;

// One KVM_MEMORY_ENCRYPT_OP in flight (kvm->lock held).
class SevCall {
 public:
  SevCall(VmState& vm, kvm_sev_cmd& cmd) : vm_(vm), cmd_(cmd), fault_(kvm_fault_for_call(cmd.id)) {}

  long guest_init(bool es);
  long guest_init2();
  long launch_start();
  long launch_update_data();
  long launch_update_vmsa();
  long launch_measure();
  long launch_secret();
  long launch_finish();
  long guest_status();
  long dbg_crypt(bool decrypt);
  long attestation_report();
  long send_start();
  long send_update_data();
  long receive_start();
  long receive_update_data();
  template <typename Fn>
  long migration_step(Fn fw_step);
  long snp_launch_start();
  long snp_launch_update();
  long snp_launch_finish();
  long snp_enable_certs();

 private:
  bool sev_guest() const { return vm_.active; }
  bool sev_es_guest() const { return vm_.active && vm_.es_active; }
  bool sev_snp_guest() const { return vm_.active && vm_.snp_active(); }
  long snp_launch_update_vmsa();
  long snp_populate_page(uint64_t gfn, uint8_t type, const uint8_t* src, uint64_t src_uaddr, uint32_t& fw_error);

  // __sev_issue_cmd: `sev_fd` must be an open /dev/sev (sev_issue_cmd_external_user), then
  // the firmware runs `fn` under the PSP lock; a non-zero status is -EIO with `error` set.
  template <typename Fn>
  long issue(int sev_fd, Fn fn) {
    auto obj = sev_fd >= 0 ? fd_table::lookup(sev_fd) : nullptr;
    if (!obj || strcmp(obj->kind(), "sev") != 0) return -EBADF;
    Fault f = fault_;
    fault_ = {};  // an injected fault hits the ioctl's first firmware command
    if (f.err) return -f.err;
    int status;
    try {
      std::lock_guard<std::mutex> psp(fw::cmd_mutex());
      status = f.status ? f.status : fn();
    } catch (const std::exception& e) {
      log_line("internal error in KVM_SEV_%s: %s", kvm_sev_command_name(cmd_.id), e.what());
      return -EIO;
    }
    cmd_.error = uint32_t(status);
    return status ? -EIO : 0;
  }
  // sev_issue_cmd: on the VM's guest (handle 0 before LAUNCH_START: INVALID_GUEST).
  template <typename Fn>
  long issue_guest(Fn fn) {
    return issue(vm_.sev_fd, [&] { return vm_.guest ? fn(*vm_.guest) : int(SEV_RET_INVALID_GUEST); });
  }

  template <typename T>
  bool copy_params(T& p) {
    return copy_from_user(&p, cmd_.data, sizeof p) == 0;
  }

  // psp_copy_user_blob.
  static long copy_blob(uint64_t uaddr, uint32_t len, Bytes& out) {
    if (!uaddr || !len || len > SEV_FW_BLOB_MAX_SIZE) return -EINVAL;
    out.resize(len);
    return copy_from_user(out.data(), uaddr, len) ? -EFAULT : 0;
  }

  // Holds `n` pinned pages (what sev_pin_memory or sev_pin_page returned: a count or -errno)
  // in sev->pages_locked around `body`, as the kernel does until it unpins them.
  template <typename Fn>
  long pinned(long n, Fn body) {
    if (n < 0) return n;
    vm_.pages_locked += uint64_t(n);
    long r = body();
    vm_.pages_locked -= uint64_t(n);
    return r;
  }

  int platform_init();
  long guest_init_common(kvm_sev_init data, uint32_t type);

  VmState& vm_;
  kvm_sev_cmd& cmd_;
  Fault fault_;
};

// sev_platform_init (_sev_platform_init_locked): SNP first where the host has it, then SEV
// INIT if the platform is still UNINIT. Returns -errno with cmd_.error set.
int SevCall::platform_init() {
  try {
    std::lock_guard<std::mutex> psp(fw::cmd_mutex());
    NvSession nv;
    Firmware fw(nv);
    fw.provision_if_needed();
    int status = 0;
    if (!fw.st().sev_init) {
      if (fw.host_snp() && fw.version_at_least(1, 51) && !fw.st().snp_init) status = fw.snp_init();
      if (!status) status = fw.init();
    }
    nv.commit();
    if (status) {
      cmd_.error = uint32_t(status);
      return -EIO;
    }
    return 0;
  } catch (const std::exception& e) {
    log_line("internal error in KVM_SEV_%s: %s", kvm_sev_command_name(cmd_.id), e.what());
    return -EIO;
  }
}

// sev_guest_init (KVM_SEV_INIT / KVM_SEV_ES_INIT): only on the default VM type; ES_INIT
// keeps the minimal GHCB version and no VMSA features.
long SevCall::guest_init(bool es) {
  if (vm_.vm_type != KVM_X86_DEFAULT_VM) return -EINVAL;
  kvm_sev_init data{};
  data.ghcb_version = es ? kGhcbVersionMin : 0;
  return guest_init_common(data, es ? KVM_X86_SEV_ES_VM : KVM_X86_SEV_VM);
}

// sev_guest_init2: once, on the SEV VM types, with the caller's struct kvm_sev_init.
long SevCall::guest_init2() {
  if (!vm_.need_init) return -EINVAL;
  if (vm_.vm_type != KVM_X86_SEV_VM && vm_.vm_type != KVM_X86_SEV_ES_VM && vm_.vm_type != KVM_X86_SNP_VM)
    return -EINVAL;
  kvm_sev_init data;
  if (!copy_params(data)) return -EFAULT;
  return guest_init_common(data, vm_.vm_type);
}

// __sev_guest_init: argument checks, then an ASID (sev_asid_new: SEV-ES and SNP guests 1 ..
// min_sev_asid - 1, SEV guests min_sev_asid .. max_sev_asid; EBUSY when all are taken),
// then sev_platform_init; all undone on failure. SNP guests need GHCB version 2 and get
// SNP_ACTIVE in their VMSA features.
long SevCall::guest_init_common(kvm_sev_init data, uint32_t type) {
  const KvmSevFacts& facts = kvm_sev_facts();
  const bool es = type != KVM_X86_SEV_VM, snp = type == KVM_X86_SNP_VM;
  uint64_t valid = es ? facts.vmsa_features : 0;
  if (!vm_.vcpus.empty() || data.flags || (data.vmsa_features & ~valid) ||
      data.ghcb_version > kGhcbVersionMax || (!es && data.ghcb_version))
    return -EINVAL;
  if (es && !data.ghcb_version) data.ghcb_version = kGhcbVersionDefault;
  if ((snp && data.ghcb_version < 2) || vm_.active) return -EINVAL;
  // ASID 0 is the host's: an EDX of 0 (no ES range) still leaves SEV guests 1 .. max.
  uint32_t min = es ? 1 : std::max<uint32_t>(facts.min_sev_asid, 1);
  uint32_t max = es ? facts.min_sev_asid - 1 : facts.max_sev_asid;
  if (min > max) return -ENOTTY;
  long r = 0;
  uint32_t asid = 0;
  try {
    std::lock_guard<std::mutex> psp(fw::cmd_mutex());
    NvSession nv;
    asid = registry::alloc_asid(nv, min, max);
    nv.commit();
  } catch (const std::exception& e) {
    log_line("internal error in KVM_SEV_%s: %s", kvm_sev_command_name(cmd_.id), e.what());
    return -EIO;
  }
  if (!asid) return -EBUSY;
  if ((r = platform_init())) {
    release_asid(asid);
    return r;
  }
  vm_.active = true;
  vm_.es_active = es;
  vm_.vmsa_features = data.vmsa_features | (snp ? kVmsaFeatureSnpActive : 0);
  vm_.ghcb_version = data.ghcb_version;
  vm_.asid = asid;
  vm_.need_init = false;
  return 0;
}

long SevCall::launch_start() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_launch_start params;
  if (!copy_params(params)) return -EFAULT;
  Bytes dh, session;
  long r;
  if (params.dh_uaddr && (r = copy_blob(params.dh_uaddr, params.dh_len, dh))) return r;
  if (params.session_uaddr && (r = copy_blob(params.session_uaddr, params.session_len, session)))
    return r;
  std::shared_ptr<fw::Guest> guest;
  bool activated = false;
  r = issue(int(cmd_.sev_fd), [&] {
    NvSession nv;
    fw::StartArgs a{params.handle, params.policy, params.dh_uaddr ? &dh : nullptr,
                    params.session_uaddr ? &session : nullptr, vm_.encrypts_memory};
    int status = fw::launch_start(nv, a, guest);
    if (status == 0) {
      // sev_bind_asid (ACTIVATE); on failure the kernel decommissions the new handle.
      bool es_asid = vm_.asid < kvm_sev_facts().min_sev_asid;
      status = fw::activate(nv, *guest, vm_.asid, es_asid);
      if (status) fw::decommission(nv, *guest);
      activated = status == 0;
    }
    nv.commit();
    return status;
  });
  if (r) return r;
  params.handle = guest->handle;
  if (copy_to_user(cmd_.data, &params, sizeof params)) {
    if (activated) release_guest(*guest);  // sev_unbind_asid
    return -EFAULT;
  }
  if (vm_.encrypts_memory) vm_.set_memory_key(guest->vek);
  vm_.guest = std::move(guest);
  vm_.sev_fd = int(cmd_.sev_fd);
  return 0;
}

long SevCall::launch_update_data() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_launch_update_data params;
  if (!copy_params(params)) return -EFAULT;
  // The kernel splits the range at physically discontiguous pages; the emulator treats
  // the pinned range as contiguous, so this is one firmware command.
  return pinned(sev_pin_memory(vm_.pages_locked, params.uaddr, params.len, true), [&] {
    return issue_guest([&](fw::Guest& g) { return fw::launch_update_data(g, params.uaddr, params.len); });
  });
}

long SevCall::launch_update_vmsa() {
  if (!sev_es_guest()) return -ENOTTY;
  bool with_fpu = vm_.vm_type != KVM_X86_DEFAULT_VM;
  for (const auto& vcpu : vm_.vcpus) {
    if (vcpu->guest_debug.load()) return -EINVAL;  // "KVM_SET_GUEST_DEBUG ... not supported"
    if (vcpu->state_protected.load()) return -EINVAL;  // sev_es_sync_vmsa: the VMSA is already encrypted
    uint8_t page[kVmsaSize];
    int rc = build_vmsa(vcpu->kernel_ioctl, vm_.vmsa_features, with_fpu, page);
    if (rc) return rc;
    long r = issue_guest([&](fw::Guest& g) { return fw::launch_update_vmsa(g, page, kVmsaSize); });
    if (r) return r;
    vcpu->state_protected.store(true);
  }
  return 0;
}

long SevCall::launch_measure() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_launch_measure params;
  if (!copy_params(params)) return -EFAULT;
  Bytes blob;
  uint32_t len = 0;
  if (params.len && params.uaddr) {
    if (params.len > SEV_FW_BLOB_MAX_SIZE) return -EINVAL;
    blob.assign(params.len, 0);
    len = params.len;
  }
  long r = issue_guest([&](fw::Guest& g) { return fw::launch_measure(g, blob.empty() ? nullptr : blob.data(), len); });
  if (params.len) {  // else: a length query, answered below whatever the firmware said
    if (r) return r;
    if (!blob.empty() && copy_to_user(params.uaddr, blob.data(), params.len)) r = -EFAULT;
  }
  params.len = len;
  if (copy_to_user(cmd_.data, &params, sizeof params)) r = -EFAULT;
  return r;
}

// sev_launch_secret: "The secret must be copied into contiguous memory region": the pinned pages
// must be physically consecutive (get_num_contig_pages), else EINVAL. Read from the page map;
// without PFNs (no CAP_SYS_ADMIN) the pages are taken as scattered, as anonymous memory is.
static bool physically_contiguous(uint64_t uaddr, uint64_t len) {
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t first = uaddr / page, last = (uaddr + len - 1) / page;
  if (len == 0 || first == last) return true;
  int fd = real::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = true;
  uint64_t prev = 0;
  for (uint64_t p = first; p <= last && ok; p++) {
    uint64_t entry = 0;
    if (pread(fd, &entry, sizeof entry, off_t(p * sizeof entry)) != ssize_t(sizeof entry)) ok = false;
    uint64_t pfn = entry & ((uint64_t{1} << 55) - 1);
    if (!(entry >> 63) || pfn == 0 || (p != first && pfn != prev + 1)) ok = false;
    prev = pfn;
  }
  real::close(fd);
  return ok;
}

long SevCall::launch_secret() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_launch_secret params;
  if (!copy_params(params)) return -EFAULT;
  return pinned(sev_pin_memory(vm_.pages_locked, params.guest_uaddr, params.guest_len, true), [&]() -> long {
    if (!physically_contiguous(params.guest_uaddr, params.guest_len)) return -EINVAL;
    Bytes trans, hdr;
    long r;
    if ((r = copy_blob(params.trans_uaddr, params.trans_len, trans))) return r;
    if ((r = copy_blob(params.hdr_uaddr, params.hdr_len, hdr))) return r;
    return issue_guest([&](fw::Guest& g) {
      return fw::launch_secret(g, hdr, trans, params.guest_uaddr, params.guest_len);
    });
  });
}

long SevCall::launch_finish() {
  if (!sev_guest()) return -ENOTTY;
  return issue_guest([](fw::Guest& g) { return fw::launch_finish(g); });
}

long SevCall::guest_status() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_guest_status params{};
  long r = issue_guest([&](fw::Guest& g) {
    params.handle = g.handle;
    params.policy = g.policy;
    params.state = g.state;
    return int(SEV_RET_SUCCESS);
  });
  if (r) return r;
  return copy_to_user(cmd_.data, &params, sizeof params) ? -EFAULT : 0;
}

// sev_dbg_crypt: in pieces that stay within one source and one destination page, each pinned
// (the source read-only, the destination for writing, so a read-only buffer for DBG_DECRYPT is
// ENOMEM). The kernel rounds unaligned pieces out to 16-byte blocks through a bounce buffer;
// fw::dbg does the same block arithmetic, so the caller sees the same bytes.
long SevCall::dbg_crypt(bool decrypt) {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_dbg debug;
  if (!copy_params(debug)) return -EFAULT;
  if (!debug.len || !debug.src_uaddr || !debug.dst_uaddr) return -EINVAL;
  if (debug.src_uaddr + debug.len < debug.src_uaddr || debug.dst_uaddr + debug.len < debug.dst_uaddr)
    return -EINVAL;
  const uint64_t offset_mask = kPageSize - 1;
  uint32_t len;
  for (uint32_t i = 0; i < debug.len; i += len) {
    uint64_t src = debug.src_uaddr + i, dst = debug.dst_uaddr + i;
    len = uint32_t(std::min({uint64_t(debug.len - i), kPageSize - (src & offset_mask),
                             kPageSize - (dst & offset_mask)}));
    bool fault = false;
    long r = pinned(sev_pin_page(vm_.pages_locked, src & ~offset_mask, false), [&] {
      return pinned(sev_pin_page(vm_.pages_locked, dst & ~offset_mask, true), [&] {
        return issue_guest([&](fw::Guest& g) { return fw::dbg(g, !decrypt, src, dst, len, &fault); });
      });
    });
    if (!r && fault) r = -EFAULT;
    if (r) return r;
  }
  return 0;
}

long SevCall::attestation_report() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_attestation_report params;
  if (!copy_params(params)) return -EFAULT;
  Bytes blob;
  uint32_t len = 0;
  uint8_t mnonce[16] = {};
  if (params.len && params.uaddr) {
    if (params.len > SEV_FW_BLOB_MAX_SIZE) return -EINVAL;
    blob.assign(params.len, 0);
    len = params.len;
    memcpy(mnonce, params.mnonce, 16);
  }
  long r = issue_guest([&](fw::Guest& g) {
    NvSession nv;
    return fw::attestation(nv, g, mnonce, blob.empty() ? nullptr : blob.data(), len);
  });
  if (params.len) {
    if (r) return r;
    if (!blob.empty() && copy_to_user(params.uaddr, blob.data(), params.len)) r = -EFAULT;
  }
  params.len = len;
  if (copy_to_user(cmd_.data, &params, sizeof params)) r = -EFAULT;
  return r;
}

// Migration (sev_send_* / sev_receive_*): the kernel's argument checks in its order, then the
// firmware, whose model checks guest state and policy but does not transfer guests (fw::send_start).

// kzalloc of a firmware buffer fails beyond KMALLOC_MAX_SIZE (4 MiB on x86-64).
constexpr uint64_t kKmallocMax = uint64_t{4} << 20;

// The kernel's "Check if we are crossing the page boundary" for SEND/RECEIVE_UPDATE_DATA.
static bool within_one_page(uint64_t uaddr, uint32_t len) {
  uint64_t offset = uaddr & (kPageSize - 1);
  return len <= kPageSize && len + offset <= kPageSize;
}

long SevCall::send_start() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_send_start params;
  if (!copy_params(params)) return -EFAULT;
  uint32_t session_len = 0;  // sev_data_send_start starts zeroed
  if (!params.session_len) {  // __sev_send_start_query_session_length
    long r = issue_guest([&](fw::Guest& g) { return fw::send_start(g, session_len); });
    params.session_len = session_len;
    return copy_to_user(cmd_.data, &params, sizeof params) ? -EFAULT : r;
  }
  if (!params.pdh_cert_uaddr || !params.pdh_cert_len || !params.session_uaddr ||
      params.session_len > SEV_FW_BLOB_MAX_SIZE)
    return -EINVAL;
  Bytes pdh, plat, amd;
  long r;
  if ((r = copy_blob(params.pdh_cert_uaddr, params.pdh_cert_len, pdh)) ||
      (r = copy_blob(params.plat_certs_uaddr, params.plat_certs_len, plat)) ||
      (r = copy_blob(params.amd_certs_uaddr, params.amd_certs_len, amd)))
    return r;
  session_len = params.session_len;
  r = issue_guest([&](fw::Guest& g) { return fw::send_start(g, session_len); });
  // The model never succeeds here, so no session is copied out; POLICY stays 0 as the firmware
  // leaves it on failure, SESSION_LEN is what the firmware wrote back.
  params.policy = 0;
  params.session_len = session_len;
  if (copy_to_user(cmd_.data, &params, sizeof params)) r = -EFAULT;
  return r;
}

long SevCall::send_update_data() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_send_update_data params;
  if (!copy_params(params)) return -EFAULT;
  if (!params.trans_len || !params.hdr_len) {  // __sev_send_update_data_query_lengths
    long r = issue_guest([](fw::Guest& g) { return fw::send_step(g); });
    params.hdr_len = params.trans_len = 0;  // only a guest in SUPDATE gets lengths
    return copy_to_user(cmd_.data, &params, sizeof params) ? -EFAULT : r;
  }
  if (!params.trans_uaddr || !params.guest_uaddr || !params.guest_len || !params.hdr_uaddr)
    return -EINVAL;
  if (!within_one_page(params.guest_uaddr, params.guest_len)) return -EINVAL;
  return pinned(sev_pin_page(vm_.pages_locked, params.guest_uaddr & ~(kPageSize - 1), false), [&]() -> long {
    if (params.hdr_len > kKmallocMax || params.trans_len > kKmallocMax) return -ENOMEM;
    // fw::send_step never succeeds, so there is no header or transport data to copy out.
    return issue_guest([](fw::Guest& g) { return fw::send_step(g); });
  });
}

long SevCall::receive_start() {
  if (!sev_guest()) return -ENOTTY;
  kvm_sev_receive_start params;
  if (!copy_params(params)) return -EFAULT;
  if (!params.pdh_uaddr || !params.pdh_len || !params.session_uaddr || !params.session_len)
    return -EINVAL;
  Bytes pdh, session;
  long r;
  if ((r = copy_blob(params.pdh_uaddr, params.pdh_len, pdh)) ||
      (r = copy_blob(params.session_uaddr, params.session_len, session)))
    return r;
  // On the caller's /dev/sev fd, as LAUNCH_START; fw::receive_start never creates a guest, so
  // there is no ASID to bind and no handle to return.
  return issue(int(cmd_.sev_fd), [&] {
    NvSession nv;
    fw::StartArgs a{params.handle, params.policy, &pdh, &session, vm_.encrypts_memory};
    int status = fw::receive_start(nv, a);
    nv.commit();
    return status;
  });
}

long SevCall::receive_update_data() {
  if (!sev_guest()) return -EINVAL;  // sic: the only migration command without ENOTTY here
  kvm_sev_receive_update_data params;
  if (!copy_params(params)) return -EFAULT;
  if (!params.hdr_uaddr || !params.hdr_len || !params.guest_uaddr || !params.guest_len ||
      !params.trans_uaddr || !params.trans_len)
    return -EINVAL;
  if (!within_one_page(params.guest_uaddr, params.guest_len)) return -EINVAL;
  Bytes hdr, trans;
  long r;
  if ((r = copy_blob(params.hdr_uaddr, params.hdr_len, hdr)) ||
      (r = copy_blob(params.trans_uaddr, params.trans_len, trans)))
    return r;
  return pinned(sev_pin_page(vm_.pages_locked, params.guest_uaddr & ~(kPageSize - 1), true), [&] {
    return issue_guest([](fw::Guest& g) { return fw::receive_step(g); });
  });
}

// SEND_FINISH, SEND_CANCEL, RECEIVE_FINISH: the handle's firmware command, nothing else.
template <typename Fn>
long SevCall::migration_step(Fn fw_step) {
  if (!sev_guest()) return -ENOTTY;
  return issue_guest(fw_step);
}

// snp_launch_start: SNP_GCTX_CREATE (a failure there is ENOTTY), SNP_LAUNCH_START, then
// SNP_ACTIVATE on the VM's ASID; the context is decommissioned when either fails.
long SevCall::snp_launch_start() {
  if (!sev_snp_guest()) return -ENOTTY;
  kvm_sev_snp_launch_start params;
  if (!copy_params(params)) return -EFAULT;
  if (vm_.snp) return -EINVAL;  // one SNP context per VM
  if (params.flags || (params.policy & ~kSnpSupportedPolicyBits) || !(params.policy & fw::kSnpPolicyMbo))
    return -EINVAL;
  std::shared_ptr<fw::SnpGuest> guest;
  bool no_context = false;
  long r = issue(int(cmd_.sev_fd), [&] {
    NvSession nv;
    if (!nv.state().snp_init) {  // SNP_GCTX_CREATE
      no_context = true;
      return int(SEV_RET_INVALID_PLATFORM_STATE);
    }
    int status = fw::snp_launch_start(nv, params.policy, params.gosvw, guest);
    if (status == 0) {
      status = fw::snp_activate(nv, *guest, vm_.asid);
      if (status) fw::snp_decommission(nv, *guest);
    }
    nv.commit();
    return status;
  });
  if (no_context) return -ENOTTY;
  if (r) return r;
  if (vm_.encrypts_memory) vm_.set_memory_key(guest->vek);
  vm_.snp = std::move(guest);
  vm_.sev_fd = int(cmd_.sev_fd);
  return 0;
}

// sev_gmem_post_populate for one gfn: the page must be private and not yet assigned in the RMP
// (EEXIST); the source page is copied in, the page assigned to the guest at its GPA, then
// SNP_LAUNCH_UPDATE. On failure the page goes back to the host, and a refused CPUID page is
// copied back to the source so the VMM sees what the firmware accepts.
long SevCall::snp_populate_page(uint64_t gfn, uint8_t type, const uint8_t* src, uint64_t src_uaddr,
                                uint32_t& fw_error) {
  return vm_.gmem->with_gmem_page(gfn, [&](uint8_t* page, RmpEntry& rmp) -> long {
    if (rmp.assigned) return -EEXIST;
    if (src) memcpy(page, src, kPageSize);
    rmp = RmpEntry{true, false, false, vm_.asid, gfn * kPageSize};
    cmd_.error = 0;
    long r = issue(vm_.sev_fd, [&] { return fw::snp_launch_update(*vm_.snp, type, gfn * kPageSize, page); });
    fw_error = cmd_.error;
    if (r) {
      rmp = RmpEntry{};  // snp_page_reclaim
      if (type == KVM_SEV_SNP_PAGE_TYPE_CPUID && fw_error == SEV_RET_INVALID_PARAM)
        copy_to_user(src_uaddr, page, kPageSize);
      return r;
    }
    rmp.validated = true;
    return 0;
  });
}

// snp_launch_update + kvm_gmem_populate: page by page from gfn_start, at most to the end of the
// guest_memfd slot. When some pages were done before one failed, that is success with
// gfn_start/len/uaddr advanced past them (the VMM calls again); when the first page fails the
// ioctl is EIO with `error` the firmware status of that page (0 when it never reached it).
long SevCall::snp_launch_update() {
  if (!sev_snp_guest() || !vm_.snp) return -EINVAL;
  kvm_sev_snp_launch_update params;
  if (!copy_params(params)) return -EFAULT;
  const uint8_t type = params.type;
  const bool known = type == KVM_SEV_SNP_PAGE_TYPE_NORMAL || type == KVM_SEV_SNP_PAGE_TYPE_ZERO ||
                     type == KVM_SEV_SNP_PAGE_TYPE_UNMEASURED || type == KVM_SEV_SNP_PAGE_TYPE_SECRETS ||
                     type == KVM_SEV_SNP_PAGE_TYPE_CPUID;
  if (!params.len || params.len % kPageSize || params.flags || !known) return -EINVAL;
  const uint64_t src = type == KVM_SEV_SNP_PAGE_TYPE_ZERO ? 0 : params.uaddr;
  if (src % kPageSize) return -EINVAL;
  const uint64_t avail = vm_.gmem ? vm_.gmem->gmem_pages_from(params.gfn_start) : 0;
  if (!avail) return -EINVAL;  // not a guest_memfd slot
  const uint64_t npages = std::min<uint64_t>(params.len / kPageSize, avail);
  uint32_t fw_error = 0;
  long ret = 0;
  uint64_t done = 0;
  // The source is read 64 pages per copy rather than one; once a batch faults, the rest is read
  // a page at a time, so the pages before the bad one still launch (as per-page GUP has it).
  constexpr uint64_t kBatch = 64;
  std::vector<uint8_t> batch(src ? std::min(npages, kBatch) * kPageSize : 0);
  uint64_t batch_first = 0, batch_pages = 0;
  bool page_by_page = false;
  for (; done < npages; done++) {
    const uint64_t uaddr = src ? src + done * kPageSize : 0;
    const uint8_t* page = nullptr;
    if (src) {
      if (!page_by_page && done == batch_first + batch_pages) {
        batch_first = done;
        batch_pages = std::min(npages - done, kBatch);
        page_by_page = copy_from_user(batch.data(), uaddr, batch_pages * kPageSize) != 0;
      }
      uint8_t* own = batch.data() + (page_by_page ? 0 : (done - batch_first) * kPageSize);
      // get_user_pages_fast; a CPUID source must be writable (the firmware's answer is copied back).
      if (page_by_page && copy_from_user(own, uaddr, kPageSize)) {
        ret = -EFAULT;
        break;
      }
      if (type == KVM_SEV_SNP_PAGE_TYPE_CPUID && copy_to_user(uaddr, own, kPageSize)) {
        ret = -EFAULT;
        break;
      }
      page = own;
    }
    if ((ret = snp_populate_page(params.gfn_start + done, type, page, uaddr, fw_error))) break;
  }
  if (ret && done == 0) {
    cmd_.error = fw_error;
    return -EIO;
  }
  params.gfn_start += done;
  params.len -= done * kPageSize;
  if (type != KVM_SEV_SNP_PAGE_TYPE_ZERO) params.uaddr += done * kPageSize;
  return copy_to_user(cmd_.data, &params, sizeof params) ? -EFAULT : 0;
}

// snp_launch_update_vmsa: every vCPU's VMSA (sev_es_sync_vmsa) is measured as a VMSA page at
// INITIAL_VMSA_GPA, and its state becomes protected.
long SevCall::snp_launch_update_vmsa() {
  for (const auto& vcpu : vm_.vcpus) {
    if (vcpu->state_protected.load()) return -EINVAL;
    uint8_t page[kVmsaSize];
    int rc = build_vmsa(vcpu->kernel_ioctl, vm_.vmsa_features, true, page);
    if (rc) return rc;
    long r = issue(vm_.sev_fd, [&] { return fw::snp_launch_update(*vm_.snp, fw::kSnpPageVmsa, fw::kSnpVmsaGpa, page); });
    if (r) return r;
    vcpu->state_protected.store(true);
  }
  return 0;
}

// snp_launch_finish: the VMSAs first, then SNP_LAUNCH_FINISH with the ID block and ID auth
// (psp_copy_user_blob of their fixed sizes) when id_block_en.
long SevCall::snp_launch_finish() {
  if (!sev_snp_guest()) return -ENOTTY;
  if (!vm_.snp) return -EINVAL;
  kvm_sev_snp_launch_finish params;
  if (!copy_params(params)) return -EFAULT;
  if (params.flags) return -EINVAL;
  if (long r = snp_launch_update_vmsa()) return r;
  Bytes id_block, id_auth;
  if (params.id_block_en) {
    long r;
    if ((r = copy_blob(params.id_block_uaddr, KVM_SEV_SNP_ID_BLOCK_SIZE, id_block))) return r;
    if ((r = copy_blob(params.id_auth_uaddr, KVM_SEV_SNP_ID_AUTH_SIZE, id_auth))) return r;
  }
  return issue(vm_.sev_fd, [&] {
    return fw::snp_launch_finish(*vm_.snp, params.id_block_en ? id_block.data() : nullptr,
                                 params.id_block_en ? id_auth.data() : nullptr, params.id_block_en && params.auth_key_en,
                                 params.vcek_disabled, params.host_data);
  });
}

// snp_enable_certs: before any vCPU exists, on an SNP guest.
long SevCall::snp_enable_certs() {
  if (!vm_.vcpus.empty() || !sev_snp_guest()) return -EINVAL;
  vm_.snp_certs_enabled = true;
  return 0;
}

}  // namespace

long sev_mem_enc_ioctl(VmState& vm, unsigned long arg) {
  const KvmSevFacts& facts = kvm_sev_facts();
  if (!facts.sev) return -ENOTTY;
  if (!arg) return 0;
  kvm_sev_cmd cmd;
  if (copy_from_user(&cmd, arg, sizeof cmd)) return -EFAULT;
  std::lock_guard<std::mutex> lock(vm.lock);
  // Once KVM_SEV_INIT2 made it an SNP guest, only the SNP commands.
  if (vm.snp_active() && cmd.id < KVM_SEV_SNP_LAUNCH_START) return -EPERM;
  long r;
  {
    SevCall c(vm, cmd);
    switch (cmd.id) {
      case KVM_SEV_ES_INIT:
        if (!facts.es) return -ENOTTY;
        [[fallthrough]];
      case KVM_SEV_INIT: r = c.guest_init(cmd.id == KVM_SEV_ES_INIT); break;
      case KVM_SEV_INIT2: r = c.guest_init2(); break;
      case KVM_SEV_LAUNCH_START: r = c.launch_start(); break;
      case KVM_SEV_LAUNCH_UPDATE_DATA: r = c.launch_update_data(); break;
      case KVM_SEV_LAUNCH_UPDATE_VMSA: r = c.launch_update_vmsa(); break;
      case KVM_SEV_LAUNCH_MEASURE: r = c.launch_measure(); break;
      case KVM_SEV_LAUNCH_FINISH: r = c.launch_finish(); break;
      case KVM_SEV_GUEST_STATUS: r = c.guest_status(); break;
      case KVM_SEV_DBG_DECRYPT: r = c.dbg_crypt(true); break;
      case KVM_SEV_DBG_ENCRYPT: r = c.dbg_crypt(false); break;
      case KVM_SEV_LAUNCH_SECRET: r = c.launch_secret(); break;
      case KVM_SEV_GET_ATTESTATION_REPORT: r = c.attestation_report(); break;
      case KVM_SEV_SEND_START: r = c.send_start(); break;
      case KVM_SEV_SEND_UPDATE_DATA: r = c.send_update_data(); break;
      case KVM_SEV_SEND_FINISH:
      case KVM_SEV_SEND_CANCEL: r = c.migration_step([](fw::Guest& g) { return fw::send_step(g); }); break;
      case KVM_SEV_RECEIVE_START: r = c.receive_start(); break;
      case KVM_SEV_RECEIVE_UPDATE_DATA: r = c.receive_update_data(); break;
      case KVM_SEV_RECEIVE_FINISH: r = c.migration_step([](fw::Guest& g) { return fw::receive_step(g); }); break;
      case KVM_SEV_SNP_LAUNCH_START: r = c.snp_launch_start(); break;
      case KVM_SEV_SNP_LAUNCH_UPDATE: r = c.snp_launch_update(); break;
      case KVM_SEV_SNP_LAUNCH_FINISH: r = c.snp_launch_finish(); break;
      case KVM_SEV_SNP_ENABLE_REQ_CERTS: r = c.snp_enable_certs(); break;
      default:
        return -EINVAL;  // not copied back
    }
  }
  if (copy_to_user(arg, &cmd, sizeof cmd)) r = -EFAULT;
  if (trace_enabled()) {
    const char* name = kvm_sev_command_name(cmd.id);
    log_line("KVM_SEV_%s -> %ld (error=0x%x)", name ? name : "?", r, cmd.error);
  }
  return r;
}

long snp_guest_request(VmState& vm, const uint8_t* req, uint8_t* resp, uint32_t* fw_err) {
  *fw_err = 0;
  if (!vm.snp_active() || !vm.snp) return -EINVAL;
  std::lock_guard<std::mutex> one(vm.guest_req_mutex);
  auto obj = vm.sev_fd >= 0 ? fd_table::lookup(vm.sev_fd) : nullptr;
  if (!obj || strcmp(obj->kind(), "sev") != 0) return -EBADF;
  try {
    std::lock_guard<std::mutex> psp(fw::cmd_mutex());
    NvSession nv;
    int status = fw::snp_guest_request(nv, *vm.snp, req, resp);
    nv.commit();
    *fw_err = uint32_t(status);
    return status ? -EIO : 0;
  } catch (const std::exception& e) {
    log_line("internal error in SNP_GUEST_REQUEST: %s", e.what());
    return -EIO;
  }
}

// sev_mem_enc_register_region / sev_mem_enc_unregister_region.
long sev_mem_enc_region(VmState& vm, bool reg, unsigned long arg) {
  kvm_enc_region range;
  if (copy_from_user(&range, arg, sizeof range)) return -EFAULT;
  std::lock_guard<std::mutex> lock(vm.lock);
  if (!vm.active) return -ENOTTY;
  if (reg) {
    // FOLL_LONGTERM without FOLL_WRITE: a read-only mapping can be registered.
    long n = sev_pin_memory(vm.pages_locked, range.addr, range.size, false);
    if (n < 0) return n;
    vm.pages_locked += uint64_t(n);
    vm.regions.push_back({range.addr, range.size, uint64_t(n)});
    return 0;
  }
  for (auto it = vm.regions.begin(); it != vm.regions.end(); ++it) {
    if (it->addr == range.addr && it->size == range.size) {
      vm.pages_locked -= it->npages;
      vm.regions.erase(it);
      return 0;
    }
  }
  return -EINVAL;
}

}  // namespace sevemu
