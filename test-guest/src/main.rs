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
//! Each line the host reads is one type of `test_guest` (the table is in
//! `test_guest::lines`): its `Display` is what the kernel prints after `TEST-GUEST `,
//! its `Line::parse` what xtask reads back, and its doc the line's description. The
//! lists below only give the lines in the order they come; the types are the reference.
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
mod kernel;
