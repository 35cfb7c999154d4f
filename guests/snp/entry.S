/*
 * The SEV-SNP demo guest's start, as firmware starts an SNP guest: from the x86 reset vector in
 * real mode (paging off: every access private), into 32-bit protected mode; the C-bit position
 * from the hypervisor (GHCB MSR protocol, CPUID); the four pages it shares with the host made
 * shared (MSR protocol page-state change); identity page tables with the C-bit set except on
 * those pages, plus the image at 4 GiB - 2 MiB; long mode; the GHCB registered (MSR protocol)
 * and installed; then snp_main (main.c) on the private stack.
 */
#include "layout.h"

#define VMGEXIT .byte 0xf3, 0x0f, 0x01, 0xd9   /* rep vmmcall */
#define MSR_PROTO_CPUID_REQ  0x004
#define MSR_PROTO_CPUID_RESP 0x005
#define MSR_PROTO_REG_REQ    0x012
#define MSR_PROTO_REG_RESP   0x013
#define MSR_PROTO_PSC_REQ    0x014
#define MSR_PROTO_PSC_RESP   0x015
#define PSC_OP_SHARED        2
#define PTE_P_RW             0x3
#define PDE_LARGE            0x83   /* present, writable, 2 MiB page */

        .section .text.entry, "ax"
        .code16
        .globl entry16
entry16:
        cli
        lgdtl   %cs:(gdtr - entry16)
        mov     %cr0, %eax
        or      $1, %eax                /* CR0.PE */
        mov     %eax, %cr0
        ljmpl   $0x08, $entry32

        /* Application processors (the SEV-ES reset block points here): this guest runs on one. */
        .globl ap_entry16
ap_entry16:
        cli
1:      hlt
        jmp     1b

        .code32
entry32:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss

        /* CPUID 0x8000001F EBX through the MSR protocol: [63:32] leaf, [31:30] register 1 */
        mov     $GHCB_MSR, %ecx
        mov     $(0x40000000 | MSR_PROTO_CPUID_REQ), %eax
        mov     $0x8000001f, %edx
        wrmsr
        VMGEXIT
        rdmsr
        mov     %eax, %ebx
        and     $0xfff, %ebx
        cmp     $MSR_PROTO_CPUID_RESP, %ebx
        jne     fail32
        mov     %edx, %ecx
        and     $0x3f, %ecx             /* the C-bit position */
        cmp     $32, %ecx
        jb      fail32
        sub     $32, %ecx
        mov     $1, %esi
        shl     %cl, %esi               /* the C-bit in the upper half of a table entry */

        /* The shared pages: one page-state change request each (GFN in [51:12], op in [55:52]) */
        mov     $SHARED_FIRST_GFN, %edi
2:      mov     $GHCB_MSR, %ecx
        mov     %edi, %eax
        shl     $12, %eax
        or      $MSR_PROTO_PSC_REQ, %eax
        mov     %edi, %edx
        shr     $20, %edx
        or      $(PSC_OP_SHARED << 20), %edx
        wrmsr
        VMGEXIT
        rdmsr
        cmp     $MSR_PROTO_PSC_RESP, %eax
        jne     fail32
        test    %edx, %edx              /* error code [63:32]: 0 = done */
        jne     fail32
        inc     %edi
        cmp     $SHARED_END_GFN, %edi
        jne     2b

        /* Page tables (zero pages at launch): PML4[0] -> PDPT; PDPT[0] -> PD low -> PT low (the
         * first 2 MiB in 4 KiB pages), PDPT[3] -> PD high, whose last entry maps 4 GiB - 2 MiB. */
        movl    $(PDPT + PTE_P_RW), PML4
        mov     %esi, PML4 + 4
        movl    $(PD_LOW + PTE_P_RW), PDPT
        mov     %esi, PDPT + 4
        movl    $(PD_HIGH + PTE_P_RW), PDPT + 3 * 8
        mov     %esi, PDPT + 3 * 8 + 4
        movl    $(PT_LOW + PTE_P_RW), PD_LOW
        mov     %esi, PD_LOW + 4
        movl    $(0xffe00000 + PDE_LARGE), PD_HIGH + 511 * 8
        mov     %esi, PD_HIGH + 511 * 8 + 4
        xor     %ecx, %ecx
3:      mov     %ecx, %eax
        shl     $12, %eax
        or      $PTE_P_RW, %eax
        mov     %eax, PT_LOW(, %ecx, 8)
        xor     %edx, %edx              /* shared: C-bit clear */
        cmp     $SHARED_FIRST_GFN, %ecx
        jb      4f
        cmp     $SHARED_END_GFN, %ecx
        jb      5f
4:      mov     %esi, %edx
5:      mov     %edx, PT_LOW + 4(, %ecx, 8)
        inc     %ecx
        cmp     $512, %ecx
        jne     3b

        /* Long mode: PAE, CR3, EFER.LME, paging; then the 64-bit code segment */
        mov     %cr4, %eax
        or      $0x20, %eax
        mov     %eax, %cr4
        mov     $PML4, %eax
        mov     %eax, %cr3
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000000, %eax
        mov     %eax, %cr0
        ljmp    $0x18, $long64

fail32: /* Termination request, reason set 0, code 1 */
        mov     $GHCB_MSR, %ecx
        mov     $0x10100, %eax
        xor     %edx, %edx
        wrmsr
        VMGEXIT
        hlt

        .code64
long64:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $STACK_TOP, %rsp
        /* Register the GHCB's GFN (MSR protocol), then install it */
        mov     $GHCB_MSR, %ecx
        mov     $(GHCB | MSR_PROTO_REG_REQ), %eax
        xor     %edx, %edx
        wrmsr
        VMGEXIT
        rdmsr
        cmp     $(GHCB | MSR_PROTO_REG_RESP), %eax
        jne     fail64
        mov     $GHCB, %eax
        xor     %edx, %edx
        wrmsr
        cld
        call    snp_main
6:      hlt
        jmp     6b

fail64: mov     $GHCB_MSR, %ecx
        mov     $0x10100, %eax
        xor     %edx, %edx
        wrmsr
        VMGEXIT
        hlt

        .p2align 3
gdt:    .quad   0
        .quad   0x00cf9b000000ffff      /* 0x08: 32-bit code */
        .quad   0x00cf93000000ffff      /* 0x10: data */
        .quad   0x00af9b000000ffff      /* 0x18: 64-bit code */
gdtr:   .word   gdtr - gdt - 1
        .long   gdt
        .section .note.GNU-stack,"",@progbits
