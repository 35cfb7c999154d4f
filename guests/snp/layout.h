/*
 * The SEV-SNP demo guest's memory (guest-physical), shared by its assembly entry, its C code and
 * the host (scripts/guest-images.ts restates it: keep both in step).
 *   0xffff0000  the firmware image (64 KiB, launched as measured pages; runs from the reset vector)
 *   0x20000     page tables (PML4, PDPT, PD low, PT low, PD high): SEV metadata "SEC memory",
 *               launched as zero pages
 *   0x25000     GHCB, 0x26000 guest request, 0x27000 guest response, 0x28000 exchange page with
 *               the host, 0x29000 four pages for the certificates of an extended report: the
 *               guest makes these shared (page-state change) before using them
 *   0x2d000     stack (up to 0x30000): SEC memory
 *   0x30000     the secrets page (VMPCKs), 0x31000 the CPUID page
 *   0x32000     a page the guest validates itself (PVALIDATE)
 */
#define IMAGE_BASE        0xffff0000
#define PML4              0x20000
#define PDPT              0x21000
#define PD_LOW            0x22000
#define PT_LOW            0x23000
#define PD_HIGH           0x24000
#define GHCB              0x25000
#define REQ_PAGE          0x26000
#define RESP_PAGE         0x27000
#define XCHG              0x28000
#define CERTS             0x29000
#define CERTS_PAGES       4
#define SHARED_FIRST_GFN  0x25
#define SHARED_END_GFN    0x2d
#define STACK_TOP         0x30000
#define SECRETS           0x30000
#define CPUID_PAGE        0x31000
#define SPARE_PAGE        0x32000

#define GHCB_MSR          0xc0010130
#define MSR_EFER          0xc0000080

/* The exchange page: host -> guest NONCE (32) before the run; guest -> host PUB (its X25519
 * public key) and REPORT (its attestation report); host -> guest PEER (the verifier's X25519
 * public key), IV, TAG, CT_LEN and CT (the secret, AES-256-GCM). */
#define X_NONCE   0x000
#define X_PUB     0x040
#define X_REPORT  0x100
#define X_PEER    0x600
#define X_IV      0x620
#define X_TAG     0x630
#define X_CT_LEN  0x640
#define X_CT      0x650
#define X_CT_MAX  0x400

/* Ports: EVENT takes one byte (EVENT_REPORT_READY, or an EVENT_FAIL code); TEXT takes text. */
#define PORT_EVENT          0x10
#define PORT_TEXT           0x11
#define EVENT_REPORT_READY  1
