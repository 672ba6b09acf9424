//! The Xen ELF notes, the entry point `_start` and the hypercall page.

use test_guest::frames::VIRT_BASE;
use test_guest::hypercall::HypercallPage;

/// What the hypercall page holds until Xen overwrites it: `int3`.
pub(super) const HYPERCALL_PAGE_POISON: u8 = 0xcc;

// The Xen ELF notes (xen/include/public/elfnote.h), in `.note.Xen`, which
// guest.ld puts in a PT_NOTE segment. Each note: namesz = 4, descsz, type (three
// 32-bit words), the name "Xen\0", the descriptor padded to 4 bytes. Strings are
// NUL-terminated; numbers are 8 bytes (libelf's elf_note_numeric reads 1, 2, 4
// or 8). libxenguest requires LOADER "generic" and XEN_VERSION "xen-3.0"
// (elf_xen_note_check); FEATURES lists what the kernel needs Xen to provide.
core::arch::global_asm!(
    r#"
    .macro xen_note_begin type
        .balign 4
        .long 4
        .long 3f - 2f
        .long \type
        .asciz "Xen"
    2:
    .endm
    .macro xen_note_end
    3:
        .balign 4
    .endm

    .pushsection .note.Xen, "a", @note
    xen_note_begin 6        /* XEN_ELFNOTE_GUEST_OS */
        .asciz "test-guest"
    xen_note_end
    xen_note_begin 7        /* XEN_ELFNOTE_GUEST_VERSION */
    "#,
    concat!(".asciz \"", env!("CARGO_PKG_VERSION"), "\""),
    r#"
    xen_note_end
    xen_note_begin 5        /* XEN_ELFNOTE_XEN_VERSION */
        .asciz "xen-3.0"
    xen_note_end
    xen_note_begin 8        /* XEN_ELFNOTE_LOADER */
        .asciz "generic"
    xen_note_end
    xen_note_begin 1        /* XEN_ELFNOTE_ENTRY */
        .quad _start
    xen_note_end
    xen_note_begin 2        /* XEN_ELFNOTE_HYPERCALL_PAGE */
        .quad hypercall_page
    xen_note_end
    xen_note_begin 3        /* XEN_ELFNOTE_VIRT_BASE */
        .quad {virt_base}
    xen_note_end
    xen_note_begin 4        /* XEN_ELFNOTE_PADDR_OFFSET */
        .quad 0
    xen_note_end
    xen_note_begin 10       /* XEN_ELFNOTE_FEATURES */
        .asciz "!writable_page_tables|pae_pgdir_above_4gb"
    xen_note_end
    xen_note_begin 9        /* XEN_ELFNOTE_PAE_MODE */
        .asciz "yes"
    xen_note_end
    .popsection
    "#,
    virt_base = const VIRT_BASE,
    options(att_syntax)
);

// Entry point and hypercall page.
//
// Xen enters `_start` in 64-bit mode, ring 3 (PV kernel mode), with rsi =
// start_info, a builder-made stack in rsp and the direction flag unspecified.
// rsi is kept in r12 while `.bss` is zeroed (libxenguest already zeroes the
// kernel segment; this also covers other loaders), then the own stack is set
// 16-byte aligned so that the call leaves rsp + 8 aligned, as the SysV ABI wants.
// `kernel_main` never returns; `ud2` crashes the domain if it somehow did.
core::arch::global_asm!(
    r#"
    .pushsection .text.entry, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    mov %rsi, %r12
    lea __bss_start(%rip), %rdi
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    lea __stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %r12, %rdi
    call {kernel_main}
    ud2
    .size _start, . - _start
    .popsection

    .pushsection .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl hypercall_page
    .type hypercall_page, @object
hypercall_page:
    .fill 4096, 1, {poison}
    .size hypercall_page, 4096
    .popsection
    "#,
    kernel_main = sym super::kernel_main,
    poison = const HYPERCALL_PAGE_POISON,
    options(att_syntax)
);

extern "C" {
    /// The hypercall page defined above, filled by Xen at domain build.
    static hypercall_page: [u8; 4096];
}

/// Xen, through the hypercall page.
pub(super) fn xen() -> HypercallPage {
    let page = core::ptr::addr_of!(hypercall_page).cast::<u8>();
    // SAFETY: `hypercall_page` is the page XEN_ELFNOTE_HYPERCALL_PAGE names;
    // `kernel_main` checks Xen filled it before anything makes a hypercall.
    unsafe { HypercallPage::new(page) }
}

/// Whether Xen overwrote the hypercall page's poison.
pub(super) fn hypercall_page_ready() -> bool {
    let page = core::ptr::addr_of!(hypercall_page).cast::<u8>();
    // SAFETY: the page is 4096 readable bytes of the kernel image; the read is
    // volatile because Xen, not Rust, wrote it.
    unsafe { page.read_volatile() != HYPERCALL_PAGE_POISON }
}
