/*
 * SEV-ES guest: reads the secret LAUNCH_SECRET put in its private memory (a NUL-terminated
 * string at 0x7000) and reports it to the host with one string-I/O request through the GHCB
 * (OUTSB to port 0x11 of the whole string, its bytes in the GHCB's shared buffer), then halts.
 */
#define SECRET 0x7000
#define MAXLEN 1024
#include "es_long_mode.inc"

main64:
        /* Copy the secret from private memory into the shared buffer */
        mov     $SECRET, %rsi
        mov     $GHCB_SHARED, %rdi
        xor     %ecx, %ecx
2:      mov     (%rsi, %rcx), %al
        test    %al, %al
        jz      3f
        mov     %al, (%rdi, %rcx)
        inc     %ecx
        cmp     $MAXLEN, %ecx
        jne     2b
3:      /* GHCB: IOIO, string, 8-bit, OUT to port 0x11, count, scratch = the shared buffer */
        movq    $0x7b, GHCB_EXIT_CODE
        movq    $((0x11 << 16) | (1 << 2) | (1 << 4)), GHCB_EXIT_INFO1
        mov     %rcx, GHCB_EXIT_INFO2
        movq    $GHCB_SHARED, GHCB_SCRATCH
        movb    $0x3c, GHCB_VALID + 14  /* valid: exit code, info 1, info 2, scratch */
        movw    $2, GHCB_VERSION
        movl    $0, GHCB_USAGE
        VMGEXIT
        cmpq    $0, GHCB_EXIT_INFO1     /* the hypervisor's verdict: 0 = done */
        jne     fail64
        hlt
