//! test-guest: a tiny 64-bit Xen PV kernel that writes a page pattern and reads it
//! back, so that mem_access tests have a guest whose memory accesses are known.
//!
//! # What it does
//!
//! 1. `_start` (asm below) clears the direction flag, zeroes `.bss`, moves to its
//!    own 64 KiB stack (end of `.bss`) and calls `kernel_main(start_info)` with the
//!    `start_info` pointer Xen left in `rsi`.
//! 2. Finds the PV console ring: `start_info.console.domU.mfn` is a machine frame;
//!    its pseudo-physical frame comes from the M2P table (checked against the P2M
//!    list, see `test_guest::frames`), and the bootstrap mapping puts pfn `p` at
//!    virtual `p * 4096`. Every line also goes to Xen's own console with
//!    `console_io` (accepted from a domU by a debug Xen only; ignored otherwise),
//!    so a debug Xen's serial log shows `(dN) TEST-GUEST ...` even if the ring
//!    does not work.
//! 3. Counts vCPUs with `VCPUOP_is_up` on ids 0, 1, ... until `-ENOENT`.
//! 4. In every mode, before the workload, publishes its P2M the way Linux PV guests
//!    do (`test_guest::p2m_tree`): it builds a frame-list page (the MFNs of the P2M
//!    array's pages, each found in the P2M itself) and a frame-list-list page (the
//!    frame list's MFN), two page-aligned statics in `.bss` (one frame-list page
//!    only: at most 512 * 512 pfns; more is a FAIL); maps the
//!    `shared_info` page (`start_info.shared_info`, a machine address, not mapped by
//!    the builder) over a third `.bss` page with `update_va_mapping(va, maddr |
//!    PRESENT | RW, UVMF_INVLPG)`, checks the new L1 entry with a page walk and never
//!    maps it back; then writes, volatile, `arch.max_pfn` = `nr_pages` and
//!    `arch.pfn_to_mfn_frame_list_list` = the frame-list-list page's MFN (offsets
//!    3088 and 3096 of `struct shared_info`) and prints `P2M-PUBLISHED`.
//! 5. Writes the pattern of `test_guest::workload` into a 16-page buffer at gfns
//!    0x200 to 0x20f (`BUFFER_GFN`; page 0 to 15, each byte in order, volatile
//!    byte writes), then
//!    reads every byte back in the same order with volatile reads and checks it.
//! 6. Prints the FNV-1a 64 checksum of what it read, waits (bounded, with
//!    `SCHEDOP_yield`) for xenconsoled to consume the ring, and shuts down with
//!    `SCHEDOP_shutdown` reason poweroff (crash on any failure).
//!
//! Words of the command line (`test_guest::cmdline`) add modes: `p2m` prints the P2M
//! before the workload; `pattern=<name>` replaces steps 5 and 6 by an access
//! pattern (see "Access patterns" below; `rounds=<decimal>` goes with `pattern=bench`,
//! `bench-xen-copy` and `bench-pingpong`, `pages=<decimal>` with `bench-events`,
//! `phases=<decimal>` with `bench-sweep`);
//! `ring-probe ring=0x<mfn>` tries, after
//! `DONE`, to map machine frame `<mfn>` (the monitor ring Xen owns) through every route of
//! `test_guest::probe`, one `PROBE` line each, then `PROBES DONE`; `heartbeat` then
//! repeats the workload until the domain is destroyed instead of powering off.
//!
//! # Console lines (the contract with the host harness)
//!
//! ```text
//! TEST-GUEST vcpus=<n> cmdline=<start_info cmd_line, non-printables as ?>
//! TEST-GUEST BUFFER gfn=0x200 pages=16
//! TEST-GUEST FRAMES <mfn 0x<hex> of each buffer page, 16 of them>
//! TEST-GUEST P2M-PUBLISHED max_pfn=0x<nr_pages> fll=0x<mfn of the frame-list-list>
//! TEST-GUEST DONE <checksum: 16 lowercase hex digits>
//! ```
//!
//! (`p2m` mode adds its `P2M pfn=0x<hex> mfn=0x<hex> count=<n>` lines between
//! `P2M-PUBLISHED` and `DONE`; `heartbeat` adds `HEARTBEAT <n>` lines after `DONE`.)
//!
//! and, with `ring-probe` (routes in this order; `<rc>` the decimal result, 0 or a
//! negative errno; `mapped=yes` only if Xen accepted AND the guest read the frame
//! through the new mapping, which it then undid):
//!
//! ```text
//! TEST-GUEST PROBE update_va_mapping rc=<rc> mapped=<yes|no>
//! TEST-GUEST PROBE mmu_update rc=<rc> mapped=<yes|no>
//! TEST-GUEST PROBE mmu_update-foreign-xen rc=<rc> mapped=<yes|no>
//! TEST-GUEST PROBE mmuext-pin rc=<rc> mapped=<yes|no>
//! TEST-GUEST PROBE grant-map rc=<rc> mapped=<yes|no>
//! TEST-GUEST PROBES DONE
//! ```
//!
//! Xen 4.17 refuses them with rc=-16, -16, -1, -22 and -1 (`test_guest::probe` says
//! which check does it).
//!
//! `DONE`'s checksum equals `test_guest::workload::expected_checksum()` when every
//! byte read back as written. `<n>` counts vCPUs that exist, up or down (only vCPU
//! 0 runs this kernel, except in the two-vCPU patterns: `multi-vcpu`, `xen-copy-race`,
//! `runstate-area`, and `bench-events` when the domain has a second vCPU). The buffer's
//! gfns are fixed by `guest.ld` (virtual = pseudo-physical), as are `bench-events`' area
//! right after it (gfns 0x210 to 0x40f) and the benchmarks' samples. On failure the last line is one of
//!
//! ```text
//! TEST-GUEST FAIL page=<p> offset=<o> expected=0x<hex> got=0x<hex>
//! TEST-GUEST FAIL <what> error=<errno>
//! TEST-GUEST PANIC <file>:<line>
//! ```
//!
//! (a P2M that cannot be published, see step 4, e.g. `FAIL P2M publish: map
//! shared_info error=<errno>`; `ring-probe` without a well-formed `ring=0x<hex>`, a
//! failed walk of the kernel's
//! own page tables, or a failed undo of a probe that succeeded are such FAILs; a probe
//! that Xen refuses is not.)
//!
//! and the domain shuts down with reason crash. A domain that stops without any
//! line crashed before its console was up (see "Boot state" below). If the ring
//! console lost output (reader gone for a million yields, or corrupt indexes), a
//! last `TEST-GUEST FAIL console lost=<bytes>` goes to Xen's console only and a
//! would-be poweroff becomes a crash.
//!
//! # Access patterns (`pattern=<name>`)
//!
//! After `P2M-PUBLISHED` (and the `p2m` mode's lines), instead of the workload, `DONE`,
//! `ring-probe` and `heartbeat` (all skipped: pattern mode has no `DONE` line), the
//! kernel runs one pattern of `test_guest::patterns` (which has the table of what each
//! touches) and powers off:
//!
//! 1. `READY go-pfn=0x<pfn>` (`pt-write` prints its `PT-SLOT` line first, see
//!    below): the pfn of the go page, a page-aligned page of `.bss`
//!    (not in the buffer). The kernel polls its first `u64` (volatile reads,
//!    `SCHEDOP_yield` between polls) until dom0 writes `0x4f47` ("GO" little-endian),
//!    for at most 10 minutes of Xen system time (`test_guest::handshake`).
//! 2. The pattern's touches, each access done first, then its line, in the plan's
//!    order (`test_guest::patterns::plan`, shared with the host tests). Accesses are
//!    single volatile accesses of one byte, except `exec`'s copy (one 8-byte write);
//!    a write stores the page index. `va` is the address used: the buffer's, or the
//!    alias's in `pt-write`. `generation` has two phases: its phase-1 touches, then
//!    `READY go-pfn=0x<same pfn> phase=2` and the same bounded wait (10 minutes again,
//!    from that line) for the go page's first `u64` to become `0x324f47` ("GO2"
//!    little-endian, written by dom0 once it changed the listener's default access),
//!    then its phase-2 touches. `bench` prints no `TOUCH` lines: its writes are
//!    repeated and timed, and one `BENCH` line reports them (see below); nor do
//!    `bench-xen-copy`, `bench-events`, `bench-pingpong` and `bench-sweep` (whose
//!    phases 2 to `K + 1` each wait for `"GO<n>"`, `test_guest::handshake::go_value`).
//! 3. `PATTERN-DONE <name> touches=<number of TOUCH lines, of every vCPU and phase>`
//!    (for `bench`, the number of writes, rounds x 16; for the other timed patterns see
//!    `test_guest::patterns::write_pattern_done`), then poweroff as usual.
//!
//! ```text
//! TEST-GUEST PT-SLOT l1-pfn=0x<hex> slot=<index> va=0x<alias> pte-va=0x<hex>   (pt-write, before READY)
//! TEST-GUEST READY go-pfn=0x<hex>
//! TEST-GUEST TOUCH <r|w|x> page=<0..15> offset=0x<hex> va=0x<hex>
//! TEST-GUEST READY go-pfn=0x<same hex> phase=2                              (generation)
//! TEST-GUEST TOUCH w page=<0..15> offset=0x<hex> va=0x<hex> vcpu=<0|1>      (multi-vcpu)
//! TEST-GUEST PT-WRITE <emulated|mmu_update> l1-pfn=0x<hex> slot=<index> va=0x<alias>
//! TEST-GUEST XEN-COPY rc=<rc> page=7 offset=0x40 text=<up to 16 characters>
//! TEST-GUEST VCPU 1 up
//! TEST-GUEST BALLOON pfn=0x<hex> old-mfn=0x<hex> new-mfn=0x<hex>
//! TEST-GUEST BENCH rounds=<R> pages=16 writes=<R*16> ns=<elapsed nanoseconds> tsc=<TSC ticks>   (bench)
//! TEST-GUEST HOSTILE <call> <target|-> rc=<rc>                          (hostile-calls)
//! TEST-GUEST HOSTILE-DONE calls=<n>                                     (hostile-calls)
//! TEST-GUEST RACE-XEN <pattern> calls=<n> landed=<n> right=<n> seen-early=<n>   (xen-copy-race, runstate-area: vCPU 1)
//! TEST-GUEST RACE-BAD <pattern> call=<i> rc=<rc> word=0x<hex>          (first wrong result of Xen's)
//! TEST-GUEST RACE-GUEST <pattern> stores=<n> early=<n>                 (vCPU 0, at the end)
//! TEST-GUEST BOUNCE kind=<int3|ud2|mov-ds|upcall> delivered=<n> right=<n>   (bounce-frame)
//! TEST-GUEST BOUNCE-BAD kind=<k> round=<n> field=<f> got=0x<hex> expected=0x<hex>   (bounce-frame, first wrong frame)
//! TEST-GUEST BENCH-XEN-COPY calls=<R> failed=<n> ns=<ns> tsc=<ticks>   (bench-xen-copy)
//! TEST-GUEST BENCH-AREA first-pfn=0x<hex> pages=<N>                   (bench-events, before READY)
//! TEST-GUEST VCPU 1 up                                                (bench-events with 2 vCPUs, before READY)
//! TEST-GUEST BENCH-EVENTS pages=<N> vcpus=<1|2> tsc=<ticks> ns=<ns>   (bench-events)
//! TEST-GUEST ECHO-PORT port=<p>                                       (bench-pingpong, before READY)
//! TEST-GUEST BENCH-PINGPONG rounds=<R> tsc=<ticks> ns=<ns>            (bench-pingpong)
//! TEST-GUEST READY go-pfn=0x<same hex> phase=<n>                      (bench-sweep, n = 2..=K+1)
//! TEST-GUEST SWEEP phase=<n> tsc=<ticks> ns=<ns>                      (bench-sweep, after each)
//! TEST-GUEST BENCH-SCALE mul=<tsc_to_system_mul> shift=<signed tsc_shift>   (bench-events, bench-pingpong)
//! TEST-GUEST BENCH-SAMPLES from=<index> <ticks> ... (16 per line)     (bench-events with 1 vCPU, bench-pingpong)
//! TEST-GUEST PATTERN-DONE <name> touches=<n>
//! ```
//!
//! - `hostile-calls` (`test_guest::hostile`): dom0 writes the guest's own domain id, another
//!   guest's and a frame of it into go-page words 1 to 3 before `GO`; the guest then asks
//!   Xen for the mem_access control interface (access ops, vm_event and monitor domctls,
//!   acquire_resource) against itself, `DOMID_SELF`, dom0, the other guest and a domain no
//!   one has, one `HOSTILE` line per call with Xen's raw result, then `HOSTILE-DONE`, then
//!   its one touch (w page 0 offset 0).
//!
//! - `pt-write` (`test_guest::pt_write`): before the handshake, the kernel chooses the
//!   alias and walks its page tables to the alias's L1 entry, then prints `PT-SLOT`,
//!   then `READY`: `l1-pfn` is the pfn of the L1 page-table page, `slot` the entry's
//!   index in it (decimal), `va` the alias, `pte-va` the entry's guest-virtual address
//!   (where the emulated route's plain store writes), so a test can restrict the L1
//!   page itself before it writes `GO`. After `GO`, per route, `PT-WRITE` (the same
//!   `l1-pfn`, `slot` and `va`) once the alias maps the route's buffer page, then the
//!   write's `TOUCH` with the alias address; the alias is unmapped after each route.
//!   The emulated route maps page 6 (`TOUCH w page=6 offset=0x100 va=<alias + 0x100>`),
//!   `mmu_update` page 9 (`TOUCH w page=9 offset=0x200 va=<alias + 0x200>`).
//! - `xen-copy`: `XEN-COPY` (`rc` the raw result of `xen_version(XENVER_extraversion)`
//!   into page 7 at 0x40, 0 or e.g. -14; `text` what the page then holds up to its
//!   first NUL, non-printables as `?`, read back with two 8-byte reads at 0x40 and 0x48
//!   that this line, not a `TOUCH` line, accounts for), then `TOUCH w page=7
//!   offset=0x80`. A failed copy is not a FAIL.
//! - `multi-vcpu` (needs `vcpus=2`): `VCPU 1 up` from vCPU 1 itself, then both vCPUs'
//!   `TOUCH ... vcpu=<n>` lines interleaved as they happen (each vCPU's own lines in
//!   plan order; lines are whole, a lock serialises them); vCPU 1 then goes down.
//! - `balloon` (`test_guest::balloon`): one `BALLOON` line per page 12 to 15 once it is
//!   mapped on its new frame (always another frame than `old-mfn`: the new ones are
//!   allocated before the old ones are given back, which needs 4 pages of room under
//!   the domain's `max_pages`, as libxl leaves), then the writes.
//! - `generation`: phase 1 writes pages 0 to 15 in order at offset `0x10 * page`
//!   (the lines of `write-sweep`), then `READY go-pfn=0x<same pfn> phase=2`; once dom0
//!   wrote `GO2`, phase 2 writes pages 0 to 15 in order at offset `0x800 + 0x10 *
//!   page`; then `PATTERN-DONE generation touches=32`.
//! - `xen-copy-race`, `runstate-area` (need `vcpus=2`; `test_guest::xen_writes`): vCPU 1
//!   has Xen write buffer page 10 (10^4 hypercall results, or its runstate area across
//!   10^4 yields) while vCPU 0 keeps storing at page 10 offset 0x800; vCPU 1 then prints
//!   `RACE-XEN` and `READY go-pfn=0x<same pfn> phase=2` and goes down; once dom0 wrote
//!   `GO2` (after making the page writable) vCPU 0 prints `RACE-GUEST` and its `TOUCH`.
//! - `bounce-frame` (`test_guest::traps`): a trap table and event callback for the
//!   pattern's time; 64 rounds of exceptions and an upcall with the stack on page 12;
//!   one `BOUNCE` line per kind, then `TOUCH w page=12 offset=0x10`.
//! - `bench-xen-copy`: `rounds=<R>` (default 256) `XENVER_extraversion` calls into
//!   buffer page `i % 16` at 0x40, timed as `bench`; `BENCH-XEN-COPY`, then
//!   `PATTERN-DONE bench-xen-copy touches=<R>`.
//! - `bench` (`test_guest::bench`), a benchmark of the guest's page writes, to be run
//!   unmonitored, monitored without restrictions and monitored with events: after
//!   `GO`, one volatile byte write to each buffer page 0 to 15 in order at offset
//!   `0x10 * page` (the bytes of `write-sweep`, storing the page index), repeated `R`
//!   times, `R` from the command line word `rounds=<decimal>` (default 256, 1 to
//!   65536), with no `TOUCH` lines. The loop is timed with Xen's system time from vCPU 0's
//!   `vcpu_time_info` in `shared_info` (the handshake's clock), interpolated with the
//!   TSC (`lfence; rdtsc`, read inside the record's seqlock) to the nanosecond, read
//!   just before the first write and just after the last. Then
//!   `BENCH rounds=<R> pages=16 writes=<R*16> ns=<elapsed> tsc=<ticks>` and `PATTERN-DONE bench
//!   touches=<R*16>`.
//! - `bench-events`, `bench-pingpong`, `bench-sweep` (`test_guest::bench_ops`, which has
//!   their lines and what each times): per-operation benchmarks timed with the TSC
//!   (`tsc=`), converted to `ns=` at vCPU 0's `vcpu_time_info` scale (printed as
//!   `BENCH-SCALE`, so the host converts the `BENCH-SAMPLES` ticks the same way).
//!   `bench-events` writes one byte of each of `pages=<N>` pages of its own area, one
//!   event each under a `rx` listener that relaxes pages; `bench-pingpong` makes
//!   `rounds=<R>` round trips on an event channel dom0 echoes (`ECHO-PORT`);
//!   `bench-sweep` times a write-then-read sweep of the buffer in each of phases 2 to
//!   `phases=<K>` + 1, dom0 changing access rights between them.
//!
//! Pattern FAILs: `FAIL unknown pattern <name> error=22`, `FAIL pattern needs more
//! vcpus error=2` (both before `READY`, as are `pt-write`'s FAILs in choosing its
//! alias), `FAIL no GO on the go page error=110`, `FAIL no GO<n> on the go page
//! error=110` (phase `n`'s go value, e.g. `generation`'s `GO2`), `FAIL bench needs
//! rounds=<1..65536> error=22` (a `rounds=` that is not a decimal from 1 to 65536, before
//! `READY`; also for `bench-xen-copy` and `bench-pingpong`), `FAIL bench-events needs
//! pages=<1..512> error=22`, `FAIL bench-sweep needs phases=<1..64> error=22` (both
//! before `READY`), `FAIL bench-pingpong: no echo error=110` (an echo that did not
//! come within 10 s), `FAIL page=<p> offset=<o> expected=0x<hex> got=0x<hex>` (a
//! `bench-sweep` byte that read back wrong), `FAIL exec returned=0x<hex> expected=0x1234`, and `FAIL <step> error=<errno>` for a step of `pt-write`,
//! `multi-vcpu`, `balloon`, `bench-events` (vCPU 1) or `bench-pingpong` (its event
//! channel) that Xen refused or that did not take effect.
//!
//! # Races and timing
//!
//! The kernel does not wait for anyone before its workload: it runs straight
//! through in well under a second. A mem_access listener must therefore be in
//! place before the domain runs (`xl create -p`, set up, `xl unpause`), or the
//! scenario uses a pattern, which waits for dom0's go.
//! xenconsoled reads the ring
//! asynchronously; the final flush waits for it (bounded), and anything it has not
//! read when the domain dies may be lost from the guest log (the `console_io`
//! copy on a debug Xen's serial line is synchronous).
//!
//! # Boot state it relies on (libxenguest `xg_dom_x86.c`, `vcpu_x86_64`)
//!
//! `rip` = `XEN_ELFNOTE_ENTRY`, `rsi` = `start_info` (virtual), `rsp` = top of the
//! builder's boot stack, event upcalls masked in `shared_info` for every vCPU (so no
//! event callback is registered and none may be unmasked: the kernel never uses
//! `SCHEDOP_block`), no trap table (any fault crashes the domain, which Xen logs;
//! the one fault the kernel makes on purpose, `pt-write`'s store to its read-only
//! page table, Xen emulates without delivering it). `bounce-frame` alone installs a
//! trap table (vectors 3, 6, 13) and an event callback, unmasks upcalls only inside its
//! trigger, and clears the trap table before it ends.
//! The hypercall page is checked to have been overwritten by Xen (it is built as
//! `int3` bytes); if not, the kernel executes `ud2` and the domain crashes.
//!
//! # Build
//!
//! `cargo build -p test-guest --release --target x86_64-unknown-none`, no
//! `RUSTFLAGS` (see `build.rs` and `guest.ld`). On the host this bin only explains
//! that and exits with status 2.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    eprintln!("test-guest is a Xen PV kernel: build it with --target x86_64-unknown-none");
    std::process::ExitCode::from(2)
}

#[cfg(target_os = "none")]
mod kernel {
    use core::cell::UnsafeCell;
    use core::panic::PanicInfo;
    use core::sync::atomic::{fence, AtomicBool, Ordering};

    use test_guest::cmdline;
    use test_guest::console::{Console, ConsoleRing, EvtchnBackend, XenconsInterface};
    use test_guest::frames::{self, Mfn, Pfn, PAGE_SIZE, VIRT_BASE};
    use test_guest::hypercall::{self, HypercallPage, ShutdownReason, XenError, UVMF_INVLPG};
    use test_guest::p2m_tree::{self, ListPage, ENTRIES_PER_PAGE};
    use test_guest::pagewalk;
    use test_guest::probe;
    use test_guest::start_info::StartInfo;
    use test_guest::text::{LineBuf, Sink};
    use test_guest::workload::{self, BUFFER_BYTES, BUFFER_GFN, BUFFER_PAGES};

    mod patterns;

    /// Most vCPU ids asked about when counting.
    const MAX_VCPUS: u32 = 1024;

    /// Yields in a row without the console reader making progress before the
    /// console gives up (a dead xenconsoled must not hang the guest forever).
    const CONSOLE_MAX_WAITS: u32 = 1_000_000;

    /// What the hypercall page holds until Xen overwrites it: `int3`.
    const HYPERCALL_PAGE_POISON: u8 = 0xcc;

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
        kernel_main = sym kernel_main,
        poison = const HYPERCALL_PAGE_POISON,
        options(att_syntax)
    );

    extern "C" {
        /// The hypercall page defined above, filled by Xen at domain build.
        static hypercall_page: [u8; 4096];
    }

    /// Xen, through the hypercall page.
    fn xen() -> HypercallPage {
        let page = core::ptr::addr_of!(hypercall_page).cast::<u8>();
        // SAFETY: `hypercall_page` is the page XEN_ELFNOTE_HYPERCALL_PAGE names;
        // `kernel_main` checks Xen filled it before anything makes a hypercall.
        unsafe { HypercallPage::new(page) }
    }

    /// Whether Xen overwrote the hypercall page's poison.
    fn hypercall_page_ready() -> bool {
        let page = core::ptr::addr_of!(hypercall_page).cast::<u8>();
        // SAFETY: the page is 4096 readable bytes of the kernel image; the read is
        // volatile because Xen, not Rust, wrote it.
        unsafe { page.read_volatile() != HYPERCALL_PAGE_POISON }
    }

    /// The ring console plus the `console_io` mirror.
    struct Output {
        ring: Option<Console<EvtchnBackend<HypercallPage>>>,
        mirror: LineBuf<128>,
    }

    impl Output {
        fn mirror(&mut self, bytes: &[u8]) {
            let hv = xen();
            // `-EPERM` on a release Xen: the ring is the real console.
            self.mirror.push(bytes, |piece| {
                let _ = hypercall::console_io_write(&hv, piece);
            });
        }

        fn end_line(&mut self) {
            if let Some(ring) = &mut self.ring {
                ring.end_line();
            }
            self.mirror(b"\n");
            let hv = xen();
            self.mirror.drain(|piece| {
                let _ = hypercall::console_io_write(&hv, piece);
            });
        }

        fn flush(&mut self) {
            if let Some(ring) = &mut self.ring {
                ring.flush();
            }
        }

        /// Bytes the ring console could not deliver (its reader stopped, or the
        /// ring is corrupt), if any.
        fn lost(&self) -> Option<u64> {
            let ring = self.ring.as_ref()?;
            (ring.dropped() > 0 || ring.corrupt().is_some()).then(|| ring.dropped())
        }
    }

    impl core::fmt::Write for Output {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            if let Some(ring) = &mut self.ring {
                ring.write(s.as_bytes());
            }
            self.mirror(s.as_bytes());
            Ok(())
        }
    }

    /// The one `Output`, reachable from the panic handler.
    ///
    /// # Invariants
    ///
    /// `output` is only accessed inside [`Slot::with`] or [`Slot::with_wait`] while
    /// `busy` is held: `busy` is the lock that serialises console output between vCPUs.
    struct Slot {
        busy: AtomicBool,
        output: UnsafeCell<Option<Output>>,
    }

    // SAFETY: `with` and `with_wait` hand out the contents to one user at a time (the
    // `busy` flag, taken with Acquire and released with Release, so a vCPU sees what
    // the previous holder wrote), so neither a second vCPU (`multi-vcpu`) nor a panic
    // inside `with` can create a second `&mut`. No events are delivered to any vCPU.
    unsafe impl Sync for Slot {}

    impl Slot {
        /// Runs `f` on the contents, unless they are already in use (a panic while
        /// printing): then returns `None` without running it.
        fn with<R>(&self, f: impl FnOnce(&mut Option<Output>) -> R) -> Option<R> {
            if self.busy.swap(true, Ordering::Acquire) {
                return None;
            }
            // SAFETY: `busy` was clear and is now ours: no other reference to the
            // contents exists until we clear it below.
            let result = f(unsafe { &mut *self.output.get() });
            self.busy.store(false, Ordering::Release);
            Some(result)
        }

        /// Runs `f` on the contents once no other vCPU uses them (a spin lock). Not
        /// for the panic handler: a panic while this vCPU holds the lock would spin
        /// forever.
        fn with_wait<R>(&self, f: impl FnOnce(&mut Option<Output>) -> R) -> R {
            while self
                .busy
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                core::hint::spin_loop();
            }
            // SAFETY: `busy` was clear and is now ours, as in `with`.
            let result = f(unsafe { &mut *self.output.get() });
            self.busy.store(false, Ordering::Release);
            result
        }
    }

    static OUTPUT: Slot = Slot {
        busy: AtomicBool::new(false),
        output: UnsafeCell::new(None),
    };

    /// Prints one `TEST-GUEST ...` line; `body` writes what follows the prefix. Waits
    /// while another vCPU prints, so lines never interleave.
    fn line(body: impl FnOnce(&mut Output)) {
        OUTPUT.with_wait(|output| {
            if let Some(out) = output {
                out.put_str("TEST-GUEST ");
                body(out);
                out.end_line();
            }
        });
    }

    /// Prints `TEST-GUEST FAIL <what> error=<errno>` and crashes.
    fn fail(what: &str, error: XenError) -> ! {
        line(|out| {
            out.put_str("FAIL ");
            out.put_str(what);
            out.put_str(" error=");
            out.put_dec(error.errno());
        });
        shutdown(ShutdownReason::Crash)
    }

    /// Lets the console drain, then asks Xen to end the domain. Never returns.
    ///
    /// A poweroff becomes a crash if the ring console lost output: the harness
    /// must not take a clean exit for a pass when the lines it needs are missing.
    fn shutdown(mut reason: ShutdownReason) -> ! {
        let lost = OUTPUT
            .with(|output| {
                output.as_mut().and_then(|out| {
                    out.flush();
                    out.lost()
                })
            })
            .flatten();
        if let (ShutdownReason::Poweroff, Some(lost)) = (reason, lost) {
            let mut out = XenConsole;
            out.put_str("TEST-GUEST FAIL console lost=");
            out.put_dec(lost);
            out.put_str("\n");
            reason = ShutdownReason::Crash;
        }
        let hv = xen();
        let _ = hypercall::sched_shutdown(&hv, reason);
        // Only reached if Xen refused: stay harmless (never SCHEDOP_block, which
        // would unmask events this kernel cannot take).
        loop {
            let _ = hypercall::sched_yield(&hv);
        }
    }

    /// Reads the M2P entry of `mfn`.
    fn read_m2p(mfn: Mfn) -> Option<u64> {
        let entry = frames::m2p_entry_addr(mfn)? as *const u64;
        // SAFETY: Xen maps the read-only machine-to-phys table at
        // MACH2PHYS_VIRT_START in every 64-bit PV guest (xen-x86_64.h); `mfn` is a
        // frame Xen gave this domain, so its entry is inside the mapped table.
        Some(unsafe { entry.read_volatile() })
    }

    /// The guest's P2M list (pfn -> mfn), as the domain builder left it or as the
    /// `balloon` pattern changed it.
    ///
    /// Only the `balloon` pattern writes the list (`patterns::balloon`, through raw
    /// pointers), on vCPU 0 and while no slice from here is in use: every user takes
    /// a fresh slice and none keeps one across that pattern's writes.
    fn p2m(si: &StartInfo) -> Option<&'static [u64]> {
        let p2m_ptr = si.mfn_list as *const u64;
        let p2m_len = usize::try_from(si.nr_pages).ok()?;
        // SAFETY: the builder maps the P2M list (`mfn_list`, one 8-byte entry per
        // page of the domain) read-write in the bootstrap region (xen.h,
        // "Start-of-day memory layout", item c) for the life of the domain; only
        // this kernel writes it, never while the slice is in use (see above).
        Some(unsafe { core::slice::from_raw_parts(p2m_ptr, p2m_len) })
    }

    /// The console ring named by `start_info`, if its frame can be found.
    fn console_ring(si: &StartInfo) -> Option<Console<EvtchnBackend<HypercallPage>>> {
        let p2m = p2m(si)?;
        let pfn: Pfn = frames::resolve_pfn(si.console_mfn(), read_m2p, p2m)?;
        let intf = pfn.to_virt() as *mut XenconsInterface;
        // SAFETY: the console page is a bootstrap element (item f of the same
        // layout), mapped read-write at VIRT_BASE + pfn * 4096 for the life of the
        // domain; xenconsoled is its only other user and follows the ring protocol;
        // this is the only producer, created once.
        let ring = unsafe { ConsoleRing::new(intf) };
        let backend = EvtchnBackend::new(xen(), si.console_evtchn(), CONSOLE_MAX_WAITS);
        Some(Console::new(ring, backend))
    }

    /// The workload's buffer: `BUFFER_PAGES` page-aligned pages.
    #[repr(C, align(4096))]
    struct PageBuffer(UnsafeCell<[u8; BUFFER_BYTES]>);

    // SAFETY: the buffer is only touched through raw pointers (`buffer_byte`), never
    // through a reference; with two vCPUs (`multi-vcpu`) each writes its own pages.
    unsafe impl Sync for PageBuffer {}

    /// In its own section, which guest.ld puts at gfn `BUFFER_GFN` (`kernel_main`
    /// checks).
    #[link_section = ".test_buffer"]
    static BUFFER: PageBuffer = PageBuffer(UnsafeCell::new([0; BUFFER_BYTES]));

    /// Address of byte `offset` of page `page` of the buffer.
    fn buffer_byte(page: usize, offset: usize) -> *mut u8 {
        BUFFER
            .0
            .get()
            .cast::<u8>()
            .wrapping_add(page * PAGE_SIZE + offset)
    }

    /// The Rust entry point, called by `_start` with Xen's `start_info`: `rsi` at
    /// entry, the virtual address of the builder's start_info page (item d of
    /// xen.h's start-of-day layout), mapped read-write for the life of the domain
    /// and never written by Xen after boot, hence `&'static`.
    extern "C" fn kernel_main(start_info: &'static StartInfo) -> ! {
        if !hypercall_page_ready() {
            // No hypercalls, hence no console and no shutdown: crash loudly.
            // SAFETY: `ud2` only raises #UD, which (no trap table) makes Xen crash
            // the domain.
            unsafe { core::arch::asm!("ud2", options(noreturn)) };
        }
        let ring = console_ring(start_info);
        let have_ring = ring.is_some();
        OUTPUT.with(|output| {
            *output = Some(Output {
                ring,
                mirror: LineBuf::new(),
            });
        });
        if !have_ring {
            fail("console ring not found", XenError::ENOENT);
        }
        if !start_info.magic_ok() {
            fail("start_info magic", XenError::EINVAL);
        }

        let hv = xen();
        let vcpus = match hypercall::count_vcpus(&hv, MAX_VCPUS) {
            Ok(n) => n,
            Err(e) => fail("vcpu_op is_up", e),
        };
        line(|out| {
            out.put_str("vcpus=");
            out.put_dec(u64::from(vcpus));
            out.put_str(" cmdline=");
            out.put_sanitized(start_info.cmdline());
        });

        let first = Pfn::from_virt(buffer_byte(0, 0) as u64);
        if first.0 != BUFFER_GFN {
            fail("buffer not at BUFFER_GFN", XenError::EINVAL);
        }
        line(|out| {
            out.put_str("BUFFER gfn=");
            out.put_hex(first.0);
            out.put_str(" pages=");
            out.put_dec(BUFFER_PAGES as u64);
        });

        // The buffer's machine frames, which a PV listener names in XENMEM_access_op.
        let frames = p2m(start_info).and_then(|p2m| {
            let start = usize::try_from(BUFFER_GFN).ok()?;
            p2m.get(start..start + BUFFER_PAGES)
        });
        match frames {
            Some(frames) => line(|out| {
                out.put_str("FRAMES");
                for mfn in frames {
                    out.put_str(" ");
                    out.put_hex(*mfn);
                }
            }),
            None => fail("buffer frames not in the P2M", XenError::EINVAL),
        }

        publish_p2m(&hv, start_info);

        if cmdline::has_word(start_info.cmdline(), cmdline::P2M) {
            print_p2m_runs(start_info);
        }
        if let Some(name) = cmdline::arg(start_info.cmdline(), cmdline::PATTERN) {
            patterns::run(&hv, start_info, name, vcpus)
        }
        let sum = workload();
        line(|out| {
            out.put_str("DONE ");
            out.put_hex16(sum);
        });
        if cmdline::has_word(start_info.cmdline(), cmdline::RING_PROBE) {
            ring_probe(&hv, start_info);
        }
        if cmdline::has_word(start_info.cmdline(), cmdline::HEARTBEAT) {
            heartbeat(&hv)
        }
        shutdown(ShutdownReason::Poweroff)
    }

    /// The `p2m` mode: the P2M as runs of consecutive machine frames.
    fn print_p2m_runs(start_info: &StartInfo) {
        let Some(p2m) = p2m(start_info) else {
            fail("no P2M list", XenError::EINVAL)
        };
        for run in frames::runs(p2m) {
            line(|out| {
                out.put_str("P2M pfn=");
                out.put_hex(run.first_pfn);
                out.put_str(" mfn=");
                out.put_hex(run.first_mfn);
                out.put_str(" count=");
                out.put_dec(run.count);
            });
        }
    }

    /// Writes the pattern into the buffer and reads it back; returns its checksum, or
    /// crashes the domain with a FAIL line naming the first wrong byte.
    fn workload() -> u64 {
        workload::fill(|page, offset, byte| {
            // SAFETY: `page < BUFFER_PAGES` and `offset < PAGE_SIZE`, so the byte is
            // inside BUFFER, which nothing else references. Volatile: the write must
            // reach memory (it is what mem_access watches).
            unsafe { buffer_byte(page, offset).write_volatile(byte) }
        });
        let checked = workload::verify(|page, offset| {
            // SAFETY: as above; volatile so the value is read from memory, not
            // forwarded from the writes.
            unsafe { buffer_byte(page, offset).read_volatile() }
        });
        match checked {
            Ok(sum) => sum,
            Err(m) => {
                line(|out| {
                    out.put_str("FAIL page=");
                    out.put_dec(m.page as u64);
                    out.put_str(" offset=");
                    out.put_dec(m.offset as u64);
                    out.put_str(" expected=");
                    out.put_hex(u64::from(m.expected));
                    out.put_str(" got=");
                    out.put_hex(u64::from(m.got));
                });
                shutdown(ShutdownReason::Crash)
            }
        }
    }

    /// The `heartbeat` mode: the workload again and again, a HEARTBEAT line every
    /// [`ROUNDS_PER_BEAT`] rounds, yielding the CPU between rounds. Never returns: the
    /// scenario destroys the guest.
    fn heartbeat(hv: &HypercallPage) -> ! {
        const ROUNDS_PER_BEAT: u64 = 64;
        let mut round: u64 = 0;
        loop {
            workload();
            round += 1;
            if round % ROUNDS_PER_BEAT == 0 {
                line(|out| {
                    out.put_str("HEARTBEAT ");
                    out.put_dec(round / ROUNDS_PER_BEAT);
                });
            }
            if let Err(e) = hypercall::sched_yield(hv) {
                fail("sched_op yield", e);
            }
        }
    }

    /// The `ring-probe` mode: tries to map the frame named by `ring=0x<mfn>` at the
    /// buffer's last page by every route of `test_guest::probe`, one `PROBE` line each,
    /// then `PROBES DONE`. Crashes (FAIL line) only when the command line has no usable
    /// `ring=`, when the page walk fails, or when undoing a success fails.
    fn ring_probe(hv: &HypercallPage, si: &StartInfo) {
        let Some(ring) = cmdline::hex_arg(si.cmdline(), cmdline::RING) else {
            fail("ring-probe needs ring=0x<mfn>", XenError::EINVAL)
        };
        let Some(p2m) = p2m(si) else {
            fail("no P2M list", XenError::EINVAL)
        };
        let va = buffer_byte(BUFFER_PAGES - 1, 0) as u64;
        let slot = l1_slot(si, p2m, va);
        let mut env = GuestEnv {
            target: va as *const u64,
            l1e: slot.entry_virt as *const u64,
        };
        // SAFETY: the target is the buffer's last page, which only `workload` touches
        // (through raw pointers), and not while the probes run; `slot` was just read
        // from the running page tables and maps it. `probe::run` puts the original
        // entry back before it returns Ok; otherwise the domain crashes below.
        let target = unsafe { probe::Target::new(va, slot) };
        let done = probe::run(hv, &mut env, Mfn(ring), &target, |outcome| {
            line(|out| outcome.write(out));
        });
        if let Err(e) = done {
            line(|out| {
                out.put_str("FAIL probe ");
                out.put_str(e.route.name());
                out.put_str(" undo: ");
                out.put_str(e.what);
                out.put_str(" error=");
                out.put_dec(e.error.errno());
            });
            shutdown(ShutdownReason::Crash)
        }
        line(|out| out.put_str("PROBES DONE"));
    }

    /// The L1 entry that maps `va` in the running (bootstrap) page tables; a failed
    /// walk is a FAIL.
    fn l1_slot(si: &StartInfo, p2m: &[u64], va: u64) -> pagewalk::L1Slot {
        l2_and_l1_slots(si, p2m, va).1
    }

    /// The L2 entry and the L1 entry on the way to `va` in the running (bootstrap)
    /// page tables (`pagewalk::walk_to_l2_and_l1`); a failed walk is a FAIL.
    fn l2_and_l1_slots(
        si: &StartInfo,
        p2m: &[u64],
        va: u64,
    ) -> (pagewalk::L1Slot, pagewalk::L1Slot) {
        let slot = pagewalk::walk_to_l2_and_l1(
            va,
            si.pt_base,
            |entry| {
                // SAFETY: the walk reads only 8-byte aligned entries inside the L4
                // page at `pt_base` or inside a table the closure below returned: pages
                // of the bootstrap page-table region, which the builder maps (read-only)
                // for the life of the domain. Volatile: Xen writes them.
                unsafe { (entry as *const u64).read_volatile() }
            },
            |mfn| {
                let virt = frames::resolve_pfn(mfn, read_m2p, p2m)?.to_virt();
                pagewalk::in_table_region(virt, si.pt_base, si.nr_pt_frames).then_some(virt)
            },
        );
        match slot {
            Ok(slot) => slot,
            Err(e) => fail(e.what(), XenError::EINVAL),
        }
    }

    /// A page-aligned page of `.bss`, only ever accessed through raw pointers.
    #[repr(C, align(4096))]
    struct BssPage(UnsafeCell<ListPage>);

    // SAFETY: these pages are only touched through raw pointers from vCPU 0: the P2M
    // tree pages once, in `publish_p2m`; the shared_info page and the go page with
    // volatile accesses (Xen and dom0 write them). No events are delivered.
    unsafe impl Sync for BssPage {}

    impl BssPage {
        const fn new() -> Self {
            Self(UnsafeCell::new([0; ENTRIES_PER_PAGE]))
        }

        /// The page's virtual address.
        fn virt(&self) -> u64 {
            self.0.get() as u64
        }
    }

    /// The frame-list page of the published P2M tree (MFNs of the P2M array's pages).
    static FRAME_LIST: BssPage = BssPage::new();

    /// The frame-list-list page (MFN of [`FRAME_LIST`]); its MFN goes to shared_info.
    static FRAME_LIST_LIST: BssPage = BssPage::new();

    /// The virtual page `shared_info` is mapped at, for the life of the domain (its
    /// original backing frame is no longer used through this address).
    static SHARED_INFO: BssPage = BssPage::new();

    /// Publishes the P2M as a Linux PV guest does: builds the frame-list tree in
    /// [`FRAME_LIST`] and [`FRAME_LIST_LIST`], maps `shared_info` at [`SHARED_INFO`]
    /// and writes `arch.max_pfn` and `arch.pfn_to_mfn_frame_list_list` there; prints
    /// `P2M-PUBLISHED`. Any failure is a FAIL (crash).
    fn publish_p2m(hv: &HypercallPage, si: &StartInfo) {
        let Some(p2m) = p2m(si) else {
            fail("no P2M list", XenError::EINVAL)
        };
        let mfn_of = |page: &BssPage| {
            let pfn = usize::try_from(Pfn::from_virt(page.virt()).0).ok()?;
            p2m.get(pfn).map(|&mfn| Mfn(mfn))
        };
        let (Some(list_mfn), Some(fll_mfn)) = (mfn_of(&FRAME_LIST), mfn_of(&FRAME_LIST_LIST))
        else {
            fail("P2M publish: list page not in the P2M", XenError::EINVAL)
        };
        // SAFETY: the two statics are distinct pages that nothing else references
        // (`BssPage`'s Sync contract: this runs once, on vCPU 0), so these are the only
        // references to their contents.
        let (list, fll) = unsafe { (&mut *FRAME_LIST.0.get(), &mut *FRAME_LIST_LIST.0.get()) };
        let built = p2m_tree::build_tree(
            p2m_tree::p2m_pages(si.nr_pages),
            |page| p2m_tree::p2m_page_mfn(p2m, si.mfn_list, page),
            core::slice::from_mut(list),
            &[list_mfn],
            fll,
        );
        if let Err(e) = built {
            fail(e.what(), XenError::EINVAL);
        }

        let Some(pte) = p2m_tree::shared_info_pte(si.shared_info) else {
            fail("P2M publish: shared_info address", XenError::EINVAL)
        };
        let va = SHARED_INFO.virt();
        // SAFETY: nothing Rust relies on lives in SHARED_INFO's page: it is never read
        // or referenced, only written below through raw pointers, after the remap. It is
        // never mapped back: from now on it is the shared_info page.
        if let Err(e) = unsafe { hypercall::update_va_mapping(hv, va, pte, UVMF_INVLPG) } {
            fail("P2M publish: map shared_info", e);
        }
        let now = l1_slot(si, p2m, va).value;
        if !pagewalk::pte_present(now) || pagewalk::pte_mfn(now) != pagewalk::pte_mfn(pte) {
            fail("P2M publish: shared_info mapping check", XenError::EINVAL);
        }
        // The tree's pages are complete in memory before it is published.
        fence(Ordering::SeqCst);
        let shared = SHARED_INFO.0.get().cast::<u8>();
        // SAFETY: `va` now maps the 4096-byte shared_info page (just checked); both
        // fields are 8-byte aligned `unsigned long`s inside it that the guest owns
        // (`struct arch_shared_info`); volatile because dom0 reads them.
        unsafe {
            shared
                .add(p2m_tree::SHARED_INFO_MAX_PFN)
                .cast::<u64>()
                .write_volatile(si.nr_pages);
            fence(Ordering::SeqCst);
            shared
                .add(p2m_tree::SHARED_INFO_FRAME_LIST_LIST)
                .cast::<u64>()
                .write_volatile(fll_mfn.0);
        }
        line(|out| {
            out.put_str("P2M-PUBLISHED max_pfn=");
            out.put_hex(si.nr_pages);
            out.put_str(" fll=");
            out.put_hex(fll_mfn.0);
        });
    }

    /// The probes' view of memory: the buffer's last page and its L1 entry.
    ///
    /// # Invariants
    ///
    /// `target` is the first byte of the buffer's last page (page aligned) and `l1e`
    /// the virtual address of the L1 entry that maps it, in a bootstrap page table.
    struct GuestEnv {
        target: *const u64,
        l1e: *const u64,
    }

    impl probe::Env for GuestEnv {
        fn read_target(&mut self) -> u64 {
            // SAFETY: `probe` reads the target only while its L1 entry is present (the
            // trait's contract), so the page is mapped: to the buffer page or to the
            // frame a probe just mapped there. Aligned (type invariant). Nothing holds a
            // reference into BUFFER (only raw pointers); volatile because the frame may
            // be one Xen writes.
            unsafe { self.target.read_volatile() }
        }

        fn read_l1e(&mut self) -> u64 {
            // SAFETY: by the type invariant `l1e` is an aligned entry of a bootstrap
            // page table, mapped read-only for the life of the domain; volatile because
            // Xen writes it.
            unsafe { self.l1e.read_volatile() }
        }
    }

    /// Xen's own console alone (`console_io`), for when `OUTPUT` is unusable.
    struct XenConsole;

    impl core::fmt::Write for XenConsole {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            // Best effort: refused by a release Xen.
            let _ = hypercall::console_io_write(&xen(), s.as_bytes());
            Ok(())
        }
    }

    /// Writes `PANIC <file>:<line>` (without the `TEST-GUEST ` prefix).
    fn panic_body(out: &mut impl Sink, info: &PanicInfo<'_>) {
        out.put_str("PANIC ");
        match info.location() {
            Some(loc) => {
                out.put_str(loc.file());
                out.put_str(":");
                out.put_dec(u64::from(loc.line()));
            }
            None => out.put_str("unknown"),
        }
    }

    #[panic_handler]
    fn panic(info: &PanicInfo<'_>) -> ! {
        let printed = OUTPUT
            .with(|output| match output {
                Some(out) => {
                    out.put_str("TEST-GUEST ");
                    panic_body(out, info);
                    out.end_line();
                    true
                }
                None => false,
            })
            .unwrap_or(false);
        if !printed && hypercall_page_ready() {
            // The panic came from inside `OUTPUT` (or before it existed): the ring
            // may be half-written, so only Xen's console gets the line.
            let mut out = XenConsole;
            out.put_str("TEST-GUEST ");
            panic_body(&mut out, info);
            out.put_str("\n");
        }
        shutdown(ShutdownReason::Crash)
    }
}
