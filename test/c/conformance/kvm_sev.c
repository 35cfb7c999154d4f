/* KVM_MEMORY_ENCRYPT_OP, the encrypted-region ioctls and the SEV device attributes
 * (arch/x86/kvm/svm/sev.c), driven as a VMM would: real SEV and SEV-ES launches on VMs of the
 * system's /dev/kvm with the firmware behind /dev/sev. Guests are launched without a guest
 * owner (no DH certificate: the firmware picks the transport keys), which every check here
 * allows. Each group closes its VMs, so ASIDs and guests do not pile up. */
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/kvm.h>
#include <linux/psp-sev.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "conformance.h"
#include "new_uapi.h"

#define PAGE 4096u
#define SENTINEL 0xdeadbeefu /* kvm_sev_cmd.error before each call: the kernel writes only firmware statuses */
#define POLICY_NODBG 0x1u
#define POLICY_ES 0x4u
#define POLICY_NOSEND 0x8u
#define SEV_FEAT_DEBUG_SWAP (1ull << 5) /* SVM_SEV_FEAT_DEBUG_SWAP, arch/x86/include/asm/svm.h */
#define BLOB_MAX 0x4000u                 /* SEV_FW_BLOB_MAX_SIZE */

static int kvm_fd = -1, sev_fd = -1;
static int last_err;       /* errno of the last op() */
static uint32_t last_fw;   /* kvm_sev_cmd.error after the last op() */

/* One KVM_MEMORY_ENCRYPT_OP: returns the ioctl result; *err = errno (0 on success), *fw = the
 * error field afterwards (SENTINEL when the kernel did not write it). */
static int op_on(int vm, uint32_t id, void* data, int sevfd, int* err, uint32_t* fw) {
  struct kvm_sev_cmd cmd = {.id = id, .data = (uint64_t)(uintptr_t)data, .error = SENTINEL,
                            .sev_fd = (uint32_t)sevfd};
  int r = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, &cmd);
  *err = last_err = r < 0 ? errno : 0;
  *fw = last_fw = cmd.error;
  return r;
}

static int op(int vm, uint32_t id, void* data, int* err, uint32_t* fw) {
  return op_on(vm, id, data, sev_fd, err, fw);
}

/* The call failed with errno `want` before any firmware command. */
static int refused(int r, int err, uint32_t fw, int want) { return r == -1 && err == want && fw == SENTINEL; }
/* The firmware answered `status`, which the kernel returns as EIO with `error` set. */
static int fw_failed(int r, int err, uint32_t fw, uint32_t status) { return r == -1 && err == EIO && fw == status; }
/* The same for the op() that is the first argument: a function's body runs after all its
 * arguments are evaluated, so it sees what that op() stored. */
static int refused_now(int r, int want) { return refused(r, last_err, last_fw, want); }
static int fw_failed_now(int r, uint32_t status) { return fw_failed(r, last_err, last_fw, status); }

static uint64_t uptr(const void* p) { return (uint64_t)(uintptr_t)p; }

static int new_vm(unsigned long type) { return ioctl(kvm_fd, KVM_CREATE_VM, type); }

static int init2(int vm, uint64_t features, uint16_t ghcb, uint32_t flags, int* err, uint32_t* fw) {
  struct kvm_sev_init init = {.vmsa_features = features, .flags = flags, .ghcb_version = ghcb};
  return op(vm, KVM_SEV_INIT2, &init, err, fw);
}

static int es_supported(void) {
  int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
  return types > 0 && (types & (1 << KVM_X86_SEV_ES_VM));
}

/* Anonymous memory: `pages` read-write pages of which the last `ro` are then made read-only. */
static uint8_t* map_pages(unsigned pages, unsigned ro) {
  uint8_t* p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  memset(p, 0, pages * PAGE);
  if (ro) mprotect(p + (pages - ro) * PAGE, ro * PAGE, PROT_READ);
  return p;
}

/* An address with nothing mapped there (mapped, then unmapped). */
static uint64_t unmapped_address(void) {
  void* p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(p, PAGE);
  return uptr(p);
}

/* A guest in LUPDATE: VM of `type` initialised (INIT2, or INIT / ES_INIT on a default VM),
 * LAUNCH_START with `policy`, and `pages` pages of `mem` (a pattern) through LAUNCH_UPDATE_DATA;
 * `plain` keeps the pattern, since the machine may encrypt the pages in place. */
struct guest {
  int vm, vcpu;
  uint8_t* mem;
  unsigned pages;
  uint8_t plain[2 * PAGE];
  uint32_t handle;
};

static int launch_guest(struct guest* g, unsigned long type, uint32_t policy, unsigned pages, int vcpu) {
  int err;
  uint32_t fw;
  memset(g, 0, sizeof *g);
  g->vcpu = -1;
  g->pages = pages;
  g->vm = new_vm(type);
  if (g->vm < 0) return -1;
  if (type == KVM_X86_DEFAULT_VM) {
    if (op(g->vm, policy & POLICY_ES ? KVM_SEV_ES_INIT : KVM_SEV_INIT, NULL, &err, &fw)) return -1;
  } else if (init2(g->vm, 0, 0, 0, &err, &fw)) {
    return -1;
  }
  if (vcpu && (g->vcpu = ioctl(g->vm, KVM_CREATE_VCPU, 0)) < 0) return -1;
  struct kvm_sev_launch_start start = {.policy = policy};
  if (op(g->vm, KVM_SEV_LAUNCH_START, &start, &err, &fw)) return -1;
  g->handle = start.handle;
  if (!pages) return 0;
  if (!(g->mem = map_pages(pages, 0))) return -1;
  for (unsigned i = 0; i < pages * PAGE; i++) g->mem[i] = (uint8_t)(i * 7 + 3);
  memcpy(g->plain, g->mem, pages * PAGE);
  struct kvm_sev_launch_update_data upd = {.uaddr = uptr(g->mem), .len = pages * PAGE};
  return op(g->vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw);
}

/* LUPDATE -> LSECRET -> RUNNING. */
static int finish_launch(struct guest* g) {
  int err;
  uint32_t fw;
  uint8_t m[48] = {0};
  struct kvm_sev_launch_measure measure = {.uaddr = uptr(m), .len = sizeof m};
  if (op(g->vm, KVM_SEV_LAUNCH_MEASURE, &measure, &err, &fw)) return -1;
  return op(g->vm, KVM_SEV_LAUNCH_FINISH, NULL, &err, &fw);
}

static void drop_guest(struct guest* g) {
  if (g->vcpu >= 0) close(g->vcpu);
  if (g->vm >= 0) close(g->vm);
  if (g->mem) munmap(g->mem, g->pages * PAGE);
  g->vm = g->vcpu = -1;
  g->mem = NULL;
}

/* sev_mem_enc_ioctl's own steps, and commands on a VM that is not an SEV guest. */
static void dispatch_checks(void) {
  int err;
  uint32_t fw;
  int vm = new_vm(KVM_X86_DEFAULT_VM);
  EXPECT("kvm-sev.mem-enc-op.null-arg", "sev_mem_enc_ioctl", ioctl(vm, KVM_MEMORY_ENCRYPT_OP, NULL) == 0,
         "a NULL argument asks whether SEV is enabled: 0");

  /* The command is copied back after any known sub-command (even one that failed), never after
   * an unknown one: with the struct in read-only memory that is EFAULT vs EINVAL. */
  struct kvm_sev_cmd* cmd = (struct kvm_sev_cmd*)map_pages(1, 0);
  cmd->id = KVM_SEV_GUEST_STATUS;
  mprotect(cmd, PAGE, PROT_READ);
  int known = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, cmd), known_err = errno;
  mprotect(cmd, PAGE, PROT_READ | PROT_WRITE);
  cmd->id = KVM_SEV_SEND_UPDATE_DATA + 1; /* KVM_SEV_SEND_UPDATE_VMSA: no handler */
  mprotect(cmd, PAGE, PROT_READ);
  int unknown = ioctl(vm, KVM_MEMORY_ENCRYPT_OP, cmd), unknown_err = errno;
  EXPECT("kvm-sev.mem-enc-op.copy-back", "sev_mem_enc_ioctl",
         known == -1 && known_err == EFAULT && unknown == -1 && unknown_err == EINVAL,
         "read-only kvm_sev_cmd: GUEST_STATUS (fails, then is copied back) -> %s (want EFAULT), id 10 -> %s "
         "(want EINVAL)", strerror(known_err), strerror(unknown_err));
  munmap(cmd, PAGE);

  static const uint32_t enotty_ids[] = {KVM_SEV_LAUNCH_START, KVM_SEV_LAUNCH_UPDATE_DATA, KVM_SEV_LAUNCH_MEASURE,
                                        KVM_SEV_LAUNCH_FINISH, KVM_SEV_GUEST_STATUS, KVM_SEV_DBG_DECRYPT,
                                        KVM_SEV_SEND_START, KVM_SEV_SEND_FINISH, KVM_SEV_RECEIVE_START,
                                        KVM_SEV_RECEIVE_FINISH, KVM_SEV_LAUNCH_UPDATE_VMSA};
  uint8_t junk[128] = {0};
  int all = 1;
  uint32_t bad = 0;
  for (size_t i = 0; i < sizeof enotty_ids / sizeof enotty_ids[0]; i++)
    if (!refused_now(op(vm, enotty_ids[i], junk, &err, &fw), ENOTTY)) all = 0, bad = enotty_ids[i];
  EXPECT("kvm-sev.not-sev.enotty", "sev_launch_start", all, "11 commands on a VM without KVM_SEV_INIT -> ENOTTY%s%u",
         all ? "" : ", not for id ", all ? 0 : bad);
  EXPECT("kvm-sev.not-sev.receive-update-data-einval", "sev_receive_update_data",
         refused_now(op(vm, KVM_SEV_RECEIVE_UPDATE_DATA, junk, &err, &fw), EINVAL),
         "RECEIVE_UPDATE_DATA on a VM without KVM_SEV_INIT -> %s (want EINVAL)", strerror(err));
  /* The SNP commands on a VM that is not an SNP guest (SNP is off): each its own errno, and the
     command is still copied back (known ids). */
  int start = refused_now(op(vm, KVM_SEV_SNP_LAUNCH_START, junk, &err, &fw), ENOTTY);
  int update = refused_now(op(vm, KVM_SEV_SNP_LAUNCH_UPDATE, junk, &err, &fw), EINVAL);
  int finish = refused_now(op(vm, KVM_SEV_SNP_LAUNCH_FINISH, junk, &err, &fw), ENOTTY);
  int certs = refused_now(op(vm, KVM_SEV_SNP_ENABLE_REQ_CERTS, NULL, &err, &fw), EINVAL);
  EXPECT("kvm-sev.not-snp.snp-commands", "snp_launch_start / snp_launch_update / snp_launch_finish / snp_enable_certs",
         start && update && finish && certs,
         "on a default VM: SNP_LAUNCH_START ENOTTY %d, SNP_LAUNCH_UPDATE EINVAL %d, SNP_LAUNCH_FINISH ENOTTY %d, "
         "SNP_ENABLE_REQ_CERTS EINVAL %d", start, update, finish, certs);
  close(vm);
}

/* KVM_SEV_INIT, KVM_SEV_ES_INIT, KVM_SEV_INIT2 (sev_guest_init, sev_guest_init2, __sev_guest_init). */
static void init_checks(void) {
  int err, r;
  uint32_t fw;
  int es = es_supported();
  int vm = new_vm(KVM_X86_SEV_VM);
  r = op(vm, KVM_SEV_INIT, NULL, &err, &fw);
  int r2 = op(vm, KVM_SEV_ES_INIT, NULL, &err, &fw);
  EXPECT("kvm-sev.init.sev-vm-type", "sev_guest_init", r == -1 && r2 == -1 && err == EINVAL,
         "KVM_SEV_INIT / ES_INIT on an SEV-type VM -> %d, %d %s (want EINVAL)", r, r2, strerror(err));
  EXPECT_ERRNO("kvm-sev.init2.bad-data", "sev_guest_init2", op(vm, KVM_SEV_INIT2, (void*)8, &err, &fw), EFAULT,
               "INIT2 with data at 8");
  EXPECT_ERRNO("kvm-sev.init2.flags", "__sev_guest_init", init2(vm, 0, 0, 1, &err, &fw), EINVAL, "INIT2 flags 1");
  EXPECT_ERRNO("kvm-sev.init2.sev-vmsa-features", "__sev_guest_init",
               init2(vm, SEV_FEAT_DEBUG_SWAP, 0, 0, &err, &fw), EINVAL, "INIT2 DEBUG_SWAP on a plain SEV VM");
  EXPECT_ERRNO("kvm-sev.init2.sev-ghcb-version", "__sev_guest_init", init2(vm, 0, 1, 0, &err, &fw), EINVAL,
               "INIT2 ghcb_version 1 on a plain SEV VM");
  r = init2(vm, 0, 0, 0, &err, &fw);
  EXPECT("kvm-sev.init2.error-untouched", "__sev_guest_init", r == 0 && fw == SENTINEL,
         "INIT2 -> %d, error 0x%x (the kernel writes it only when platform init fails)", r, fw);
  EXPECT("kvm-sev.init2.twice", "sev_guest_init2", refused_now(init2(vm, 0, 0, 0, &err, &fw), EINVAL),
         "second INIT2 -> %s (want EINVAL)", strerror(err));
  close(vm);

  vm = new_vm(KVM_X86_DEFAULT_VM);
  EXPECT_ERRNO("kvm-sev.init2.default-vm", "sev_guest_init2", init2(vm, 0, 0, 0, &err, &fw), EINVAL,
               "INIT2 on a default VM");
  r = op(vm, KVM_SEV_INIT, NULL, &err, &fw);
  EXPECT("kvm-sev.init.twice", "__sev_guest_init", r == 0 && refused_now(op(vm, KVM_SEV_INIT, NULL, &err, &fw), EINVAL),
         "KVM_SEV_INIT then again -> %s (want EINVAL)", strerror(err));
  close(vm);

  vm = new_vm(KVM_X86_SEV_VM);
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  EXPECT_ERRNO("kvm-sev.init2.after-vcpu", "__sev_guest_init", init2(vm, 0, 0, 0, &err, &fw), EINVAL,
               "INIT2 after KVM_CREATE_VCPU");
  close(vcpu);
  close(vm);

  if (!es) {
    EXPECT("kvm-sev.init2.es-ghcb-version", "__sev_guest_init", 0, "the host offers no SEV-ES VM type");
    return;
  }
  vm = new_vm(KVM_X86_SEV_ES_VM);
  int r3 = init2(vm, 0, 3, 0, &err, &fw), e3 = err;
  int r63 = init2(vm, 1ull << 63, 0, 0, &err, &fw), e63 = err;
  r = init2(vm, 0, 2, 0, &err, &fw);
  EXPECT("kvm-sev.init2.es-ghcb-version", "__sev_guest_init",
         r3 == -1 && e3 == EINVAL && r63 == -1 && e63 == EINVAL && r == 0,
         "SEV-ES INIT2: ghcb_version 3 -> %s, vmsa_features bit 63 -> %s (want EINVAL), ghcb_version 2 -> %d",
         strerror(e3), strerror(e63), r);
  close(vm);
}

/* LAUNCH_START, LAUNCH_UPDATE_DATA, LAUNCH_MEASURE, LAUNCH_FINISH, GUEST_STATUS. */
static void launch_checks(void) {
  int err, r;
  uint32_t fw;
  uint8_t blob[64] = {0};
  int vm = new_vm(KVM_X86_SEV_VM);
  init2(vm, 0, 0, 0, &err, &fw);

  /* sev->fd is 0 until LAUNCH_START: guest commands go to fd 0, which is not /dev/sev here. */
  struct kvm_sev_launch_measure m = {0};
  EXPECT("kvm-sev.before-launch-start.ebadf", "sev_issue_cmd",
         refused_now(op(vm, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw), EBADF),
         "LAUNCH_MEASURE before LAUNCH_START -> %s (want EBADF)", strerror(err));

  struct kvm_sev_launch_start start = {.policy = 0};
  EXPECT("kvm-sev.launch-start.sev-fd", "__sev_issue_cmd",
         refused_now(op_on(vm, KVM_SEV_LAUNCH_START, &start, kvm_fd, &err, &fw), EBADF),
         "LAUNCH_START with sev_fd = the /dev/kvm fd -> %s (want EBADF)", strerror(err));
  struct kvm_sev_launch_start len0 = {.dh_uaddr = uptr(blob), .dh_len = 0};
  struct kvm_sev_launch_start big = {.session_uaddr = uptr(blob), .session_len = BLOB_MAX + 1};
  int r0 = op(vm, KVM_SEV_LAUNCH_START, &len0, &err, &fw), e0 = err;
  r = op(vm, KVM_SEV_LAUNCH_START, &big, &err, &fw);
  EXPECT("kvm-sev.launch-start.blob-len", "psp_copy_user_blob", r0 == -1 && e0 == EINVAL && r == -1 && err == EINVAL,
         "dh_len 0 -> %s, session_len 16K+1 -> %s (want EINVAL)", strerror(e0), strerror(err));
  struct kvm_sev_launch_start fault = {.dh_uaddr = unmapped_address(), .dh_len = 64};
  EXPECT_ERRNO("kvm-sev.launch-start.blob-efault", "psp_copy_user_blob",
               op(vm, KVM_SEV_LAUNCH_START, &fault, &err, &fw), EFAULT, "DH blob at an unmapped address");
  struct kvm_sev_launch_start api = {.policy = 0xff000000u | 0x00ff0000u}; /* needs firmware API 255.255 */
  EXPECT("kvm-sev.launch-start.policy-api", "sev_launch_start",
         fw_failed_now(op(vm, KVM_SEV_LAUNCH_START, &api, &err, &fw), SEV_RET_POLICY_FAILURE),
         "policy asking for API 255.255 -> errno %s error 0x%x (want EIO, POLICY_FAILURE)", strerror(err), fw);
  r = op(vm, KVM_SEV_LAUNCH_START, &start, &err, &fw);
  EXPECT("kvm-sev.launch-start.ok", "sev_issue_cmd", r == 0 && fw == 0 && start.handle != 0,
         "LAUNCH_START -> %d, error %u (the firmware's SUCCESS), handle %u", r, fw, start.handle);
  struct kvm_sev_launch_start again = {.policy = 0};
  EXPECT("kvm-sev.launch-start.twice", "sev_bind_asid",
         fw_failed_now(op(vm, KVM_SEV_LAUNCH_START, &again, &err, &fw), SEV_RET_ASID_OWNED),
         "second LAUNCH_START: ACTIVATE on the VM's ASID -> errno %s error 0x%x (want EIO, ASID_OWNED)",
         strerror(err), fw);

  uint8_t* mem = map_pages(3, 1); /* the third page read-only */
  struct kvm_sev_launch_update_data upd = {.uaddr = uptr(mem), .len = 0};
  EXPECT("kvm-sev.launch-update-data.len-zero", "sev_pin_memory",
         refused_now(op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw), EINVAL), "len 0 -> %s", strerror(err));
  upd = (struct kvm_sev_launch_update_data){.uaddr = UINT64_MAX - 15, .len = 32};
  EXPECT("kvm-sev.launch-update-data.wraps", "sev_pin_memory",
         refused_now(op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw), EINVAL),
         "a range that wraps -> %s (want EINVAL)", strerror(err));
  upd = (struct kvm_sev_launch_update_data){.uaddr = unmapped_address(), .len = PAGE};
  EXPECT("kvm-sev.launch-update-data.unmapped", "sev_pin_user_pages",
         refused_now(op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw), ENOMEM),
         "unmapped memory -> %s (want ENOMEM)", strerror(err));
  upd = (struct kvm_sev_launch_update_data){.uaddr = uptr(mem + 2 * PAGE), .len = PAGE};
  EXPECT("kvm-sev.launch-update-data.readonly", "sev_launch_update_data",
         refused_now(op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw), ENOMEM),
         "read-only memory (pinned FOLL_WRITE) -> %s (want ENOMEM)", strerror(err));
  upd = (struct kvm_sev_launch_update_data){.uaddr = uptr(mem + 8), .len = 16};
  int ra = op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw);
  uint32_t fwa = fw;
  int ea = err;
  upd = (struct kvm_sev_launch_update_data){.uaddr = uptr(mem), .len = 15};
  r = op(vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw);
  EXPECT("kvm-sev.launch-update-data.alignment", "sev_launch_update_data",
         fw_failed(ra, ea, fwa, SEV_RET_INVALID_ADDRESS) && fw_failed(r, err, fw, SEV_RET_INVALID_LEN),
         "address +8 -> error 0x%x (want INVALID_ADDRESS 0x9), len 15 -> error 0x%x (want INVALID_LEN 0x4)", fwa, fw);

  uint8_t out[48];
  m = (struct kvm_sev_launch_measure){.uaddr = uptr(out), .len = BLOB_MAX + 1};
  EXPECT("kvm-sev.launch-measure.too-big", "sev_launch_measure",
         refused_now(op(vm, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw), EINVAL), "len 16K+1 -> %s", strerror(err));
  m = (struct kvm_sev_launch_measure){.uaddr = uptr(out), .len = 20};
  r = op(vm, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw);
  EXPECT("kvm-sev.launch-measure.short", "sev_launch_measure", fw_failed(r, err, fw, SEV_RET_INVALID_LEN) && m.len == 20,
         "len 20 -> error 0x%x, len %u (the kernel copies nothing back on failure: want INVALID_LEN, 20)", fw, m.len);
  m = (struct kvm_sev_launch_measure){.uaddr = uptr(out), .len = 0};
  r = op(vm, KVM_SEV_LAUNCH_MEASURE, &m, &err, &fw);
  EXPECT("kvm-sev.launch-measure.query", "sev_launch_measure", fw_failed(r, err, fw, SEV_RET_INVALID_LEN) && m.len == 48,
         "len 0 -> errno %s error 0x%x, len %u (want EIO, INVALID_LEN, 48)", strerror(err), fw, m.len);
  EXPECT("kvm-sev.launch-finish.wrong-state", "sev_launch_finish",
         fw_failed_now(op(vm, KVM_SEV_LAUNCH_FINISH, NULL, &err, &fw), SEV_RET_INVALID_GUEST_STATE),
         "LAUNCH_FINISH in LUPDATE -> error 0x%x (want INVALID_GUEST_STATE)", fw);
  struct kvm_sev_guest_status gs = {0};
  r = op(vm, KVM_SEV_GUEST_STATUS, &gs, &err, &fw);
  EXPECT("kvm-sev.guest-status", "sev_guest_status", r == 0 && fw == 0 && gs.handle == start.handle && gs.state == 1,
         "-> %d, handle %u state %u (want %u, LUPDATE 1)", r, gs.handle, gs.state, start.handle);
  munmap(mem, 3 * PAGE);
  close(vm);
}

/* LAUNCH_UPDATE_VMSA (sev_launch_update_vmsa, __sev_launch_update_vmsa, sev_es_sync_vmsa). */
static void vmsa_checks(void) {
  int err, r;
  uint32_t fw;
  struct guest g;
  r = launch_guest(&g, KVM_X86_SEV_VM, 0, 0, 1);
  EXPECT("kvm-sev.update-vmsa.sev-guest", "sev_launch_update_vmsa",
         r == 0 && refused_now(op(g.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw), ENOTTY),
         "on a plain SEV guest -> %s (want ENOTTY)", strerror(err));
  drop_guest(&g);
  if (!es_supported()) {
    EXPECT("kvm-sev.update-vmsa.repeat", "sev_es_sync_vmsa", 0, "the host offers no SEV-ES VM type");
    return;
  }
  r = launch_guest(&g, KVM_X86_SEV_ES_VM, POLICY_ES, 0, 0);
  EXPECT("kvm-sev.update-vmsa.no-vcpus", "sev_launch_update_vmsa",
         r == 0 && op(g.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw) == 0 && fw == SENTINEL,
         "no vCPUs: nothing to encrypt -> 0, error 0x%x untouched", fw);
  drop_guest(&g);

  r = launch_guest(&g, KVM_X86_SEV_ES_VM, POLICY_ES, 0, 1);
  int first = op(g.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw);
  uint32_t first_fw = fw;
  int second = op(g.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw);
  EXPECT("kvm-sev.update-vmsa.repeat", "sev_es_sync_vmsa",
         r == 0 && first == 0 && first_fw == 0 && refused(second, err, fw, EINVAL),
         "first -> %d (error %u), again -> %s error 0x%x (the VMSA is already encrypted: want EINVAL, untouched)",
         first, first_fw, strerror(err), fw);
  drop_guest(&g);

  r = launch_guest(&g, KVM_X86_SEV_ES_VM, POLICY_ES, 0, 1);
  struct kvm_guest_debug dbg = {.control = KVM_GUESTDBG_ENABLE};
  int set = ioctl(g.vcpu, KVM_SET_GUEST_DEBUG, &dbg);
  EXPECT("kvm-sev.update-vmsa.guest-debug", "__sev_launch_update_vmsa",
         r == 0 && set == 0 && refused_now(op(g.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw), EINVAL),
         "after KVM_SET_GUEST_DEBUG(ENABLE) -> %s (want EINVAL)", strerror(err));
  drop_guest(&g);

  r = launch_guest(&g, KVM_X86_SEV_ES_VM, POLICY_ES, 0, 1);
  struct kvm_debugregs dr;
  memset(&dr, 0, sizeof dr);
  int got = ioctl(g.vcpu, KVM_GET_DEBUGREGS, &dr);
  dr.dr7 = 0x401; /* L0 enabled */
  set = ioctl(g.vcpu, KVM_SET_DEBUGREGS, &dr);
  EXPECT("kvm-sev.update-vmsa.dr7", "sev_es_sync_vmsa",
         r == 0 && got == 0 && set == 0 && refused_now(op(g.vm, KVM_SEV_LAUNCH_UPDATE_VMSA, NULL, &err, &fw), EINVAL),
         "DR7 0x401 -> %s (want EINVAL)", strerror(err));
  drop_guest(&g);
}

/* DBG_DECRYPT / DBG_ENCRYPT (sev_dbg_crypt and its slow paths). */
static void dbg_checks(void) {
  int err, r;
  uint32_t fw;
  struct guest g;
  r = launch_guest(&g, KVM_X86_SEV_VM, 0, 2, 0);
  uint8_t* host = map_pages(3, 1); /* two writable pages, then a read-only one */
  uint8_t* ro = host + 2 * PAGE;
  if (r != 0 || !host) {
    EXPECT("kvm-sev.dbg.launch", "sev_dbg_crypt", 0, "cannot launch an SEV guest");
    return;
  }
  struct kvm_sev_dbg d;
#define DBG(id, s, t, n) (d = (struct kvm_sev_dbg){.src_uaddr = (s), .dst_uaddr = (t), .len = (n)}, op(g.vm, id, &d, &err, &fw))
  EXPECT("kvm-sev.dbg.len-zero", "sev_dbg_crypt", refused_now(DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem), uptr(host), 0), EINVAL),
         "len 0 -> %s", strerror(err));
  EXPECT("kvm-sev.dbg.src-null", "sev_dbg_crypt", refused_now(DBG(KVM_SEV_DBG_DECRYPT, 0, uptr(host), 16), EINVAL),
         "src_uaddr 0 -> %s", strerror(err));
  EXPECT("kvm-sev.dbg.dst-null", "sev_dbg_crypt", refused_now(DBG(KVM_SEV_DBG_ENCRYPT, uptr(host), 0, 16), EINVAL),
         "dst_uaddr 0 -> %s", strerror(err));
  EXPECT("kvm-sev.dbg.wraps", "sev_dbg_crypt",
         refused_now(DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem), UINT64_MAX - 7, 16), EINVAL),
         "destination range wrapping -> %s (want EINVAL)", strerror(err));

  memset(host, 0, 2 * PAGE);
  r = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem + 3), uptr(host + 1), 5);
  EXPECT("kvm-sev.dbg.decrypt-unaligned", "sev_dbg_decrypt_slow", r == 0 && memcmp(host + 1, g.plain + 3, 5) == 0 && host[6] == 0,
         "5 bytes from guest offset 3 to host offset 1 -> %d, the image's bytes and nothing more", r);
  memset(host, 0, 2 * PAGE);
  r = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem + PAGE - 40), uptr(host + 7), 100);
  EXPECT("kvm-sev.dbg.decrypt-page-crossing", "sev_dbg_crypt", r == 0 && memcmp(host + 7, g.plain + PAGE - 40, 100) == 0,
         "100 bytes across the guest's page boundary -> %d, the image's bytes", r);
  static const uint8_t word[7] = {'A', 'B', 'C', 'D', 'E', 'F', 'G'};
  memcpy(host, word, sizeof word);
  int enc = DBG(KVM_SEV_DBG_ENCRYPT, uptr(host), uptr(g.mem + PAGE + 9), 7);
  uint8_t want[64];
  memcpy(want, g.plain + PAGE, 64);
  memcpy(want + 9, word, 7);
  memcpy(g.plain + PAGE + 9, word, 7);
  r = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem + PAGE), uptr(host + 100), 64);
  EXPECT("kvm-sev.dbg.encrypt-unaligned", "sev_dbg_encrypt_slow", enc == 0 && r == 0 && memcmp(host + 100, want, 64) == 0,
         "7 bytes encrypted at guest offset 4105 -> %d; the 64 bytes around them read back with only those changed", enc);

  memset(host, 0, 2 * PAGE);
  r = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem), uptr(ro), 16);
  EXPECT("kvm-sev.dbg.decrypt-readonly-dst", "sev_pin_page", refused(r, err, fw, ENOMEM),
         "DBG_DECRYPT into a read-only buffer (pinned FOLL_WRITE) -> %s (want ENOMEM)", strerror(err));
  r = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem + 32), uptr(ro - 8), 32);
  EXPECT("kvm-sev.dbg.decrypt-dst-into-readonly", "sev_dbg_crypt",
         r == -1 && err == ENOMEM && fw == 0 && memcmp(ro - 8, g.plain + 32, 8) == 0,
         "32 bytes to 8 before a read-only page -> %s error 0x%x (want ENOMEM, and 0 from the firmware command for "
         "the first piece), the first 8 bytes delivered", strerror(err), fw);
  r = DBG(KVM_SEV_DBG_DECRYPT, unmapped_address(), uptr(host), 16);
  EXPECT("kvm-sev.dbg.src-unmapped", "sev_pin_page", refused(r, err, fw, ENOMEM),
         "source not mapped -> %s (want ENOMEM)", strerror(err));
  enc = DBG(KVM_SEV_DBG_ENCRYPT, uptr(ro), uptr(g.mem + 32), 16);
  r = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem + 32), uptr(host), 16);
  static const uint8_t zero[16];
  EXPECT("kvm-sev.dbg.encrypt-readonly-src", "sev_dbg_crypt", enc == 0 && r == 0 && memcmp(host, zero, 16) == 0,
         "DBG_ENCRYPT from a read-only buffer (source pinned without FOLL_WRITE) -> %d", enc);
  drop_guest(&g);

  r = launch_guest(&g, KVM_X86_SEV_VM, POLICY_NODBG, 1, 0);
  int dec = DBG(KVM_SEV_DBG_DECRYPT, uptr(g.mem), uptr(host), 16);
  uint32_t dec_fw = fw;
  int dec_err = err;
  enc = DBG(KVM_SEV_DBG_ENCRYPT, uptr(host), uptr(g.mem + 5), 3); /* unaligned: the kernel decrypts first */
  EXPECT("kvm-sev.dbg.nodbg", "sev_issue_dbg_cmd",
         r == 0 && fw_failed(dec, dec_err, dec_fw, SEV_RET_POLICY_FAILURE) && fw_failed(enc, err, fw, SEV_RET_POLICY_FAILURE),
         "policy NODBG: DBG_DECRYPT -> error 0x%x, DBG_ENCRYPT -> error 0x%x (want EIO, POLICY_FAILURE 0x7)", dec_fw, fw);
  drop_guest(&g);

  int vm = new_vm(KVM_X86_SEV_VM);
  init2(vm, 0, 0, 0, &err, &fw);
  d = (struct kvm_sev_dbg){.src_uaddr = uptr(host), .dst_uaddr = uptr(host + PAGE), .len = 16};
  EXPECT("kvm-sev.dbg.before-launch-start", "sev_issue_cmd", refused_now(op(vm, KVM_SEV_DBG_DECRYPT, &d, &err, &fw), EBADF),
         "before LAUNCH_START (sev->fd 0) -> %s (want EBADF)", strerror(err));
  close(vm);
#undef DBG
  munmap(host, 3 * PAGE);
}

/* The effective-set bit of CAP_IPC_LOCK: capable() reads the effective set, so dropping it
 * there (and only there) makes the RLIMIT_MEMLOCK check apply to this process. */
static int set_ipc_lock(int on) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data)) return -1;
  if (on)
    data[0].effective |= data[0].permitted & (1u << CAP_IPC_LOCK);
  else
    data[0].effective &= ~(1u << CAP_IPC_LOCK);
  return (int)syscall(SYS_capset, &hdr, data);
}

static int reg_region(int vm, unsigned long req, uint64_t addr, uint64_t size) {
  struct kvm_enc_region reg = {.addr = addr, .size = size};
  return ioctl(vm, req, &reg);
}

/* sev_pin_memory and the encrypted-region ioctls (sev_mem_enc_register_region). */
static void pin_checks(void) {
  int err, r;
  uint32_t fw;
  int vm = new_vm(KVM_X86_DEFAULT_VM);
  EXPECT_ERRNO("kvm-sev.reg-region.not-sev", "sev_mem_enc_register_region",
               reg_region(vm, KVM_MEMORY_ENCRYPT_REG_REGION, 4096, 4096), ENOTTY, "REG_REGION on a non-SEV VM");
  EXPECT_ERRNO("kvm-sev.reg-region.efault", "kvm_arch_vm_ioctl", ioctl(vm, KVM_MEMORY_ENCRYPT_REG_REGION, (void*)8),
               EFAULT, "REG_REGION with the argument at 8 (copied before the SEV check)");
  close(vm);

  struct guest g;
  r = launch_guest(&g, KVM_X86_SEV_VM, 0, 0, 0);
  uint8_t* mem = map_pages(20, 2); /* 18 writable pages, then 2 read-only ones */
  EXPECT_ERRNO("kvm-sev.reg-region.size-zero", "sev_pin_memory",
               reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, uptr(mem), 0), EINVAL, "REG_REGION size 0");
  EXPECT_ERRNO("kvm-sev.unreg-region.unknown", "sev_mem_enc_unregister_region",
               reg_region(g.vm, KVM_MEMORY_ENCRYPT_UNREG_REGION, uptr(mem), PAGE), EINVAL, "UNREG_REGION never registered");
  int reg = reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, uptr(mem + 18 * PAGE), 2 * PAGE), reg_err = errno;
  int unreg = reg_region(g.vm, KVM_MEMORY_ENCRYPT_UNREG_REGION, uptr(mem + 18 * PAGE), 2 * PAGE);
  EXPECT("kvm-sev.reg-region.readonly", "sev_mem_enc_register_region", r == 0 && reg == 0 && unreg == 0,
         "a read-only mapping (pinned without FOLL_WRITE) -> %d %s, unregistered -> %d", reg, reg ? strerror(reg_err) : "",
         unreg);
  EXPECT_ERRNO("kvm-sev.reg-region.unmapped", "sev_pin_user_pages",
               reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, unmapped_address(), PAGE), ENOMEM, "REG_REGION of unmapped memory");
  uint8_t* none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_ERRNO("kvm-sev.reg-region.prot-none", "sev_pin_user_pages",
               reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, uptr(none), PAGE), ENOMEM, "REG_REGION of PROT_NONE memory");
  munmap(none, PAGE);

  /* Without CAP_IPC_LOCK and with a 16-page RLIMIT_MEMLOCK. */
  struct rlimit saved, small;
  getrlimit(RLIMIT_MEMLOCK, &saved);
  small = saved;
  small.rlim_cur = 16 * PAGE;
  int setup = set_ipc_lock(0) == 0 && setrlimit(RLIMIT_MEMLOCK, &small) == 0;
  struct sysinfo si;
  sysinfo(&si);
  uint64_t ram_pages = (uint64_t)si.totalram * si.mem_unit / PAGE;
  EXPECT_ERRNO("kvm-sev.pin.int-max", "sev_pin_memory",
               reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, PAGE, ((uint64_t)INT_MAX + 1) * PAGE), EINVAL,
               "INT_MAX + 1 pages: refused before the lock limit");
  EXPECT("kvm-sev.pin.totalram", "sev_check_pin_count",
         setup && ram_pages < INT_MAX &&
             reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, PAGE, (ram_pages + 1) * PAGE) == -1 && errno == EINVAL,
         "more pages than the machine's RAM (%llu) -> %s (want EINVAL, before the lock limit)",
         (unsigned long long)ram_pages, strerror(errno));
  int over = reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, uptr(mem), 17 * PAGE), over_err = errno;
  int fits = reg_region(g.vm, KVM_MEMORY_ENCRYPT_REG_REGION, uptr(mem), 16 * PAGE);
  EXPECT("kvm-sev.pin.memlock", "sev_check_pin_count", setup && over == -1 && over_err == ENOMEM && fits == 0,
         "RLIMIT_MEMLOCK 16 pages, no CAP_IPC_LOCK: 17 pages -> %s (want ENOMEM), 16 pages -> %d", strerror(over_err),
         fits);
  struct kvm_sev_launch_update_data upd = {.uaddr = uptr(mem + 17 * PAGE), .len = PAGE};
  int more = op(g.vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw), more_err = err;
  reg_region(g.vm, KVM_MEMORY_ENCRYPT_UNREG_REGION, uptr(mem), 16 * PAGE);
  int after = op(g.vm, KVM_SEV_LAUNCH_UPDATE_DATA, &upd, &err, &fw);
  EXPECT("kvm-sev.pin.counts-registered", "sev_check_pin_count", setup && more == -1 && more_err == ENOMEM && after == 0,
         "with 16 pages registered one more page -> %s (want ENOMEM); after UNREG_REGION -> %d", strerror(more_err), after);
  setrlimit(RLIMIT_MEMLOCK, &saved);
  set_ipc_lock(1);
  munmap(mem, 20 * PAGE);
  drop_guest(&g);
}

/* SEND_* / RECEIVE_*: the kernel's checks, then the firmware's answer for the guest's state. */
static void migration_checks(void) {
  int err, r;
  uint32_t fw;
  uint8_t blob[256] = {1};
  uint8_t* page = map_pages(2, 1);
  uint64_t guest_page = uptr(page), ro_page = uptr(page + PAGE);

  /* No guest yet: the commands on the guest go to sev->fd, still 0. */
  int vm = new_vm(KVM_X86_SEV_VM);
  init2(vm, 0, 0, 0, &err, &fw);
  struct kvm_sev_send_start ss = {.session_len = 0};
  r = op(vm, KVM_SEV_SEND_START, &ss, &err, &fw);
  int r2 = op(vm, KVM_SEV_SEND_FINISH, NULL, &err, &fw);
  EXPECT("kvm-sev.send.no-guest", "sev_send_start", r == -1 && r2 == -1 && err == EBADF && fw == SENTINEL,
         "SEND_START length query and SEND_FINISH before LAUNCH_START -> %s (want EBADF)", strerror(err));
  close(vm);

  struct guest g;
  r = launch_guest(&g, KVM_X86_SEV_VM, 0, 0, 0);
  ss = (struct kvm_sev_send_start){.session_len = 0};
  EXPECT("kvm-sev.send-start.query-lupdate", "__sev_send_start_query_session_length",
         r == 0 && fw_failed_now(op(g.vm, KVM_SEV_SEND_START, &ss, &err, &fw), SEV_RET_INVALID_GUEST_STATE) &&
             ss.session_len == 0,
         "length query on a guest in LUPDATE -> errno %s error 0x%x (want EIO, INVALID_GUEST_STATE)", strerror(err), fw);
  struct kvm_sev_send_start args[5];
  for (int i = 0; i < 5; i++)
    args[i] = (struct kvm_sev_send_start){.pdh_cert_uaddr = uptr(blob), .pdh_cert_len = 64, .plat_certs_uaddr = uptr(blob),
                                          .plat_certs_len = 64, .amd_certs_uaddr = uptr(blob), .amd_certs_len = 64,
                                          .session_uaddr = uptr(blob), .session_len = 128};
  args[0].pdh_cert_uaddr = 0;
  args[1].pdh_cert_len = 0;
  args[2].session_uaddr = 0;
  args[3].session_len = BLOB_MAX + 1;
  args[4].plat_certs_len = 0; /* psp_copy_user_blob refuses an empty blob */
  int all = 1, which = -1;
  for (int i = 0; i < 5; i++)
    if (!refused_now(op(g.vm, KVM_SEV_SEND_START, &args[i], &err, &fw), EINVAL)) all = 0, which = i;
  EXPECT("kvm-sev.send-start.args", "sev_send_start", all, "PDH address/length 0, session address 0, session 16K+1, "
         "empty platform certificates -> EINVAL%s%d", all ? "" : "; not case ", all ? 0 : which);
  struct kvm_sev_send_start full = args[0];
  full.pdh_cert_uaddr = uptr(blob);
  full.amd_certs_uaddr = unmapped_address();
  EXPECT("kvm-sev.send-start.efault", "psp_copy_user_blob", refused_now(op(g.vm, KVM_SEV_SEND_START, &full, &err, &fw), EFAULT),
         "AMD certificates at an unmapped address -> %s (want EFAULT)", strerror(err));
  full.amd_certs_uaddr = uptr(blob);
  EXPECT("kvm-sev.send-start.lupdate", "sev_send_start",
         fw_failed_now(op(g.vm, KVM_SEV_SEND_START, &full, &err, &fw), SEV_RET_INVALID_GUEST_STATE),
         "SEND_START on a guest in LUPDATE -> error 0x%x (want INVALID_GUEST_STATE)", fw);

  struct kvm_sev_send_update_data su = {.hdr_uaddr = uptr(blob), .hdr_len = 0, .trans_len = 5};
  r = op(g.vm, KVM_SEV_SEND_UPDATE_DATA, &su, &err, &fw);
  EXPECT("kvm-sev.send-update-data.query", "__sev_send_update_data_query_lengths",
         fw_failed(r, err, fw, SEV_RET_INVALID_GUEST_STATE) && su.hdr_len == 0 && su.trans_len == 0,
         "hdr_len 0 (length query) in LUPDATE -> error 0x%x; lengths copied back as the firmware left them (%u, %u)", fw,
         su.hdr_len, su.trans_len);
  struct kvm_sev_send_update_data sud[3];
  for (int i = 0; i < 3; i++)
    sud[i] = (struct kvm_sev_send_update_data){.hdr_uaddr = uptr(blob), .hdr_len = 52, .guest_uaddr = guest_page,
                                               .guest_len = 16, .trans_uaddr = uptr(blob), .trans_len = 16};
  sud[0].trans_uaddr = 0;
  sud[1].guest_len = PAGE + 1;
  sud[2].guest_uaddr = guest_page + PAGE - 8; /* 16 bytes crossing into the next page */
  all = 1;
  for (int i = 0; i < 3; i++)
    if (!refused_now(op(g.vm, KVM_SEV_SEND_UPDATE_DATA, &sud[i], &err, &fw), EINVAL)) all = 0, which = i;
  EXPECT("kvm-sev.send-update-data.args", "sev_send_update_data", all,
         "transport address 0, guest_len 4097, a range crossing a page -> EINVAL%s%d", all ? "" : "; not case ",
         all ? 0 : which);
  struct kvm_sev_send_update_data ok = sud[1];
  ok.guest_len = 16;
  ok.guest_uaddr = unmapped_address();
  EXPECT("kvm-sev.send-update-data.unmapped", "sev_pin_page",
         refused_now(op(g.vm, KVM_SEV_SEND_UPDATE_DATA, &ok, &err, &fw), ENOMEM),
         "guest page not mapped -> %s (want ENOMEM)", strerror(err));
  ok.guest_uaddr = ro_page; /* pinned without FOLL_WRITE: the firmware only reads it */
  EXPECT("kvm-sev.send-update-data.lupdate", "sev_send_update_data",
         fw_failed_now(op(g.vm, KVM_SEV_SEND_UPDATE_DATA, &ok, &err, &fw), SEV_RET_INVALID_GUEST_STATE),
         "SEND_UPDATE_DATA from a read-only page of a guest in LUPDATE -> errno %s error 0x%x (want EIO, "
         "INVALID_GUEST_STATE)", strerror(err), fw);
  r = op(g.vm, KVM_SEV_SEND_FINISH, NULL, &err, &fw);
  int finish_err = err;
  uint32_t finish_fw = fw;
  r2 = op(g.vm, KVM_SEV_SEND_CANCEL, NULL, &err, &fw);
  EXPECT("kvm-sev.send-finish.lupdate", "sev_send_finish",
         fw_failed(r, finish_err, finish_fw, SEV_RET_INVALID_GUEST_STATE) &&
             fw_failed(r2, err, fw, SEV_RET_INVALID_GUEST_STATE),
         "SEND_FINISH, SEND_CANCEL without SEND_START -> error 0x%x, 0x%x (want INVALID_GUEST_STATE)", finish_fw, fw);

  struct kvm_sev_receive_update_data ru[4];
  for (int i = 0; i < 4; i++)
    ru[i] = (struct kvm_sev_receive_update_data){.hdr_uaddr = uptr(blob), .hdr_len = 52, .guest_uaddr = guest_page,
                                                 .guest_len = 16, .trans_uaddr = uptr(blob), .trans_len = 16};
  ru[0].hdr_len = 0;
  ru[1].trans_uaddr = 0;
  ru[2].guest_uaddr = guest_page + PAGE - 8;
  ru[3].trans_len = BLOB_MAX + 1;
  all = 1;
  for (int i = 0; i < 4; i++)
    if (!refused_now(op(g.vm, KVM_SEV_RECEIVE_UPDATE_DATA, &ru[i], &err, &fw), EINVAL)) all = 0, which = i;
  EXPECT("kvm-sev.receive-update-data.args", "sev_receive_update_data", all,
         "header length 0, transport address 0, a range crossing a page, transport 16K+1 -> EINVAL%s%d",
         all ? "" : "; not case ", all ? 0 : which);
  struct kvm_sev_receive_update_data rok = ru[0];
  rok.hdr_len = 52;
  rok.guest_uaddr = ro_page;
  EXPECT("kvm-sev.receive-update-data.readonly", "sev_receive_update_data",
         refused_now(op(g.vm, KVM_SEV_RECEIVE_UPDATE_DATA, &rok, &err, &fw), ENOMEM),
         "into a read-only page (pinned FOLL_WRITE) -> %s (want ENOMEM)", strerror(err));
  rok.guest_uaddr = guest_page;
  r = op(g.vm, KVM_SEV_RECEIVE_UPDATE_DATA, &rok, &err, &fw);
  uint32_t fw1 = fw;
  int err1 = err;
  r2 = op(g.vm, KVM_SEV_RECEIVE_FINISH, NULL, &err, &fw);
  EXPECT("kvm-sev.receive.lupdate", "sev_receive_update_data",
         fw_failed(r, err1, fw1, SEV_RET_INVALID_GUEST_STATE) && fw_failed(r2, err, fw, SEV_RET_INVALID_GUEST_STATE),
         "RECEIVE_UPDATE_DATA, RECEIVE_FINISH on a launched guest -> error 0x%x, 0x%x (want INVALID_GUEST_STATE)", fw1, fw);

  struct kvm_sev_receive_start rs[3];
  for (int i = 0; i < 3; i++)
    rs[i] = (struct kvm_sev_receive_start){.pdh_uaddr = uptr(blob), .pdh_len = 64, .session_uaddr = uptr(blob),
                                           .session_len = 128};
  rs[0].pdh_uaddr = 0;
  rs[1].session_len = 0;
  rs[2].pdh_len = BLOB_MAX + 1;
  all = 1;
  for (int i = 0; i < 3; i++)
    if (!refused_now(op(g.vm, KVM_SEV_RECEIVE_START, &rs[i], &err, &fw), EINVAL)) all = 0, which = i;
  EXPECT("kvm-sev.receive-start.args", "sev_receive_start", all,
         "PDH address 0, session length 0, PDH 16K+1 -> EINVAL%s%d", all ? "" : "; not case ", all ? 0 : which);
  struct kvm_sev_receive_start rsok = rs[0];
  rsok.pdh_uaddr = uptr(blob);
  EXPECT("kvm-sev.receive-start.sev-fd", "__sev_issue_cmd",
         refused_now(op_on(g.vm, KVM_SEV_RECEIVE_START, &rsok, kvm_fd, &err, &fw), EBADF),
         "sev_fd = the /dev/kvm fd -> %s (want EBADF)", strerror(err));
  rsok.handle = 0x7fffffff;
  EXPECT("kvm-sev.receive-start.unknown-handle", "sev_receive_start",
         fw_failed_now(op(g.vm, KVM_SEV_RECEIVE_START, &rsok, &err, &fw), SEV_RET_INVALID_GUEST),
         "sharing the keys of a handle that does not exist -> errno %s error 0x%x (want EIO, INVALID_GUEST)",
         strerror(err), fw);

  /* RUNNING: SEND_START's length query is answered; NOSEND refuses; the later steps need SUPDATE. */
  r = finish_launch(&g);
  ss = (struct kvm_sev_send_start){.session_len = 0};
  r2 = op(g.vm, KVM_SEV_SEND_START, &ss, &err, &fw);
  EXPECT("kvm-sev.send-start.query-running", "__sev_send_start_query_session_length",
         r == 0 && fw_failed(r2, err, fw, SEV_RET_INVALID_LEN) && ss.session_len != 0,
         "length query on a RUNNING guest -> errno %s error 0x%x, session_len %u (want EIO, INVALID_LEN, the length)",
         strerror(err), fw, ss.session_len);
  ok.guest_uaddr = guest_page;
  EXPECT("kvm-sev.send-update-data.running", "sev_send_update_data",
         fw_failed_now(op(g.vm, KVM_SEV_SEND_UPDATE_DATA, &ok, &err, &fw), SEV_RET_INVALID_GUEST_STATE),
         "SEND_UPDATE_DATA without SEND_START -> error 0x%x (want INVALID_GUEST_STATE)", fw);
  drop_guest(&g);

  r = launch_guest(&g, KVM_X86_SEV_VM, POLICY_NOSEND, 0, 0);
  if (r == 0) r = finish_launch(&g);
  ss = (struct kvm_sev_send_start){.session_len = 0};
  EXPECT("kvm-sev.send-start.nosend", "sev_send_start",
         r == 0 && fw_failed_now(op(g.vm, KVM_SEV_SEND_START, &ss, &err, &fw), SEV_RET_POLICY_FAILURE),
         "policy NOSEND, RUNNING -> errno %s error 0x%x (want EIO, POLICY_FAILURE)", strerror(err), fw);
  drop_guest(&g);
  munmap(page, 2 * PAGE);
}

/* KVM_GET_DEVICE_ATTR / KVM_HAS_DEVICE_ATTR on /dev/kvm (kvm_x86_dev_get_attr, sev_dev_get_attr). */
static int dev_attr(unsigned long req, uint32_t group, uint64_t attr, uint64_t addr) {
  struct kvm_device_attr a = {.group = group, .attr = attr, .addr = addr};
  return ioctl(kvm_fd, req, &a);
}

static void attr_checks(void) {
  int types = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
  uint64_t val = ~0ull;
  int has = dev_attr(KVM_HAS_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, 0);
  int get = dev_attr(KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, uptr(&val));
  EXPECT("kvm-sev.dev-attr.vmsa-features", "sev_dev_get_attr",
         has == 0 && get == 0 && (val & ~SEV_FEAT_DEBUG_SWAP) == 0 && (es_supported() || val == 0),
         "HAS -> %d, GET -> %d value 0x%llx (at most DEBUG_SWAP, and only with SEV-ES)", has, get, (unsigned long long)val);
  int snp = types > 0 && (types & (1 << KVM_X86_SNP_VM));
  val = ~0ull;
  has = dev_attr(KVM_HAS_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SNP_POLICY_BITS, 0);
  get = dev_attr(KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SNP_POLICY_BITS, uptr(&val));
  EXPECT("kvm-sev.dev-attr.snp-policy-bits", "sev_dev_get_attr", !snp && has == 0 && get == 0 && val == 0,
         "no SNP VM type (VM types 0x%x): HAS -> %d, GET -> %d value 0x%llx (want 0, 0, 0)", types, has, get,
         (unsigned long long)val);
  val = ~0ull;
  has = dev_attr(KVM_HAS_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SEV_SNP_REQ_CERTS, 0);
  get = dev_attr(KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SEV_SNP_REQ_CERTS, uptr(&val));
  EXPECT("kvm-sev.dev-attr.snp-req-certs", "sev_dev_get_attr", !snp && has == 0 && get == 0 && val == 0,
         "SNP off: HAS -> %d, GET -> %d value 0x%llx (want 0, 0, 0)", has, get, (unsigned long long)val);
  int h3 = dev_attr(KVM_HAS_DEVICE_ATTR, KVM_X86_GRP_SEV, 3, 0), e3 = errno;
  int g3 = dev_attr(KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV, 3, uptr(&val)), eg3 = errno;
  int grp = dev_attr(KVM_GET_DEVICE_ATTR, 2, 0, uptr(&val)), egrp = errno;
  EXPECT("kvm-sev.dev-attr.unknown", "sev_dev_get_attr",
         h3 == -1 && e3 == ENXIO && g3 == -1 && eg3 == ENXIO && grp == -1 && egrp == ENXIO,
         "attribute 3: HAS %s, GET %s; group 2: %s (want ENXIO)", strerror(e3), strerror(eg3), strerror(egrp));
  get = dev_attr(KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, 8);
  int eget = errno;
  has = dev_attr(KVM_HAS_DEVICE_ATTR, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, 8);
  EXPECT("kvm-sev.dev-attr.bad-addr", "kvm_x86_dev_get_attr", get == -1 && eget == EFAULT && has == 0,
         "addr 8: GET -> %s (want EFAULT), HAS -> %d (stores nothing)", strerror(eget), has);
}

/* sev_asid_new: SEV-ES guests take ASIDs 1 .. min_sev_asid - 1, SEV guests min_sev_asid ..
 * max_sev_asid; a full range is EBUSY; closing a VM frees its ASID (sev_vm_destroy). */
#define MAX_VMS 2048
static int fill_range(unsigned long type, int* vms, int* n, int* last_err, uint32_t* last_fw) {
  uint32_t fw = SENTINEL;
  int err = 0;
  *n = 0;
  while (*n < MAX_VMS) {
    int vm = new_vm(type);
    if (vm < 0) return -1;
    if (type == KVM_X86_DEFAULT_VM ? op(vm, KVM_SEV_INIT, NULL, &err, &fw) : init2(vm, 0, 0, 0, &err, &fw)) {
      close(vm);
      break;
    }
    vms[(*n)++] = vm;
  }
  *last_err = err;
  *last_fw = fw;
  return 0;
}

static void asid_checks(void) {
  static int es_vms[MAX_VMS], sev_vms[MAX_VMS];
  int n_es = 0, n_sev = 0, es_err = 0, sev_err = 0, err;
  uint32_t es_fw = 0, sev_fw = 0, fw;
  if (!es_supported()) {
    EXPECT("kvm-sev.asid.es-range", "sev_asid_new", 0, "the host offers no SEV-ES VM type");
    return;
  }
  fill_range(KVM_X86_SEV_ES_VM, es_vms, &n_es, &es_err, &es_fw);
  EXPECT("kvm-sev.asid.es-range", "sev_asid_new", n_es > 0 && n_es < MAX_VMS && es_err == EBUSY && es_fw == SENTINEL,
         "%d SEV-ES VMs, the next INIT2 -> %s error 0x%x (want EBUSY, untouched)", n_es, strerror(es_err), es_fw);
  int vm = new_vm(KVM_X86_DEFAULT_VM);
  int es_init = op(vm, KVM_SEV_ES_INIT, NULL, &err, &fw);
  EXPECT("kvm-sev.asid.es-init-range", "sev_asid_new", es_init == -1 && err == EBUSY,
         "KVM_SEV_ES_INIT with the SEV-ES ASIDs taken -> %s (want EBUSY)", strerror(err));
  close(vm);
  fill_range(KVM_X86_SEV_VM, sev_vms, &n_sev, &sev_err, &sev_fw);
  EXPECT("kvm-sev.asid.sev-range", "sev_asid_new", n_sev > 0 && n_sev < MAX_VMS && sev_err == EBUSY && sev_fw == SENTINEL,
         "with every SEV-ES ASID taken still %d SEV VMs (their own range), then INIT2 -> %s (want EBUSY)", n_sev,
         strerror(sev_err));
  vm = new_vm(KVM_X86_DEFAULT_VM);
  int sev_init = op(vm, KVM_SEV_INIT, NULL, &err, &fw);
  int sev_init_err = err;
  close(vm);
  close(es_vms[--n_es]);
  vm = new_vm(KVM_X86_SEV_ES_VM);
  int again = init2(vm, 0, 0, 0, &err, &fw);
  EXPECT("kvm-sev.asid.freed-on-close", "sev_vm_destroy", sev_init == -1 && sev_init_err == EBUSY && again == 0,
         "KVM_SEV_INIT with all ASIDs taken -> %s (want EBUSY); after closing one SEV-ES VM, INIT2 -> %d",
         strerror(sev_init_err), again);
  close(vm);
  while (n_es) close(es_vms[--n_es]);
  while (n_sev) close(sev_vms[--n_sev]);
}

void kvm_sev_checks(void) {
  /* fd 0 must not be /dev/sev: guest commands before LAUNCH_START go to fd 0. */
  if (fcntl(0, F_GETFD) < 0) open("/dev/null", O_RDONLY);
  kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  sev_fd = open("/dev/sev", O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0 || sev_fd < 0) {
    EXPECT("kvm-sev.open", "sev_mem_enc_ioctl", 0, "cannot open /dev/kvm or /dev/sev: %s", strerror(errno));
    return;
  }
  dispatch_checks();
  init_checks();
  launch_checks();
  vmsa_checks();
  dbg_checks();
  pin_checks();
  migration_checks();
  attr_checks();
  asid_checks();
  close(kvm_fd);
  close(sev_fd);
}
