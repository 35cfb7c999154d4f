/*
 * SEV-ES guest: executes an intercepted instruction (OUT) without the GHCB, which on SEV-ES
 * hardware raises #VC (vector 29) in the guest instead of exiting. Its #VC handler stores the
 * error code (the SVM exit code) and the faulting RIP in the shared GHCB page at +0x900, then
 * halts, so the host can read them.
 */
#include "es_long_mode.inc"
#define REPORT (GHCB + 0x900)
#define IDT 0x8000

main64:
        /* IDT entry 29: 64-bit interrupt gate to vc_handler, selector 0x08 */
        lea     vc_handler(%rip), %rax
        mov     %ax, IDT + 29 * 16
        movw    $0x08, IDT + 29 * 16 + 2
        movw    $0x8e00, IDT + 29 * 16 + 4
        shr     $16, %rax
        mov     %ax, IDT + 29 * 16 + 6
        shr     $16, %rax
        mov     %eax, IDT + 29 * 16 + 8
        movl    $0, IDT + 29 * 16 + 12
        lidt    idtr
        mov     $0x5a, %al
        .globl  out_insn
out_insn:
        out     %al, $0x11
        hlt                             /* not reached: the handler halts */

vc_handler:
        pop     %rax                    /* error code */
        mov     %rax, REPORT
        mov     (%rsp), %rax            /* RIP of the faulting instruction */
        mov     %rax, REPORT + 8
        hlt

        .p2align 3
idtr:   .word   256 * 16 - 1
        .quad   IDT
