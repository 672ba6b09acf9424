//! The access patterns chosen by `pattern=<name>` on the command line: which buffer
//! pages the guest touches, how, in which order, and the console lines that account
//! for each touch.
//!
//! (Not to be confused with [`crate::workload`], the byte pattern of the ordinary
//! workload.) A mem_access test restricts the guest's pages from dom0, lets the guest
//! run one pattern and compares the listener's event trace with the guest's own
//! account. That account must therefore be exact: [`plan`] is the one list of touches,
//! used by the kernel to do them and by the tests (and the harness) to know them.
//! (The timed patterns are the exception: `bench` repeats its plan, one round, many
//! times and prints no `TOUCH` lines, see [`crate::bench`]; `bench-xen-copy` lists
//! where Xen writes; `bench-sweep`'s plan is one sweep, repeated once per timed phase;
//! `bench-events` and `bench-pingpong` touch no buffer page and have empty plans, see
//! [`crate::bench_ops`].)
//!
//! # Touches
//!
//! A touch is one access to buffer page `page` (0 to 15, gfn `BUFFER_GFN + page`) at
//! byte `offset`, through the virtual address `va` the guest used. The kernel does the
//! access first, then prints
//!
//! ```text
//! TEST-GUEST TOUCH <r|w|x> page=<page> offset=0x<hex> va=0x<hex>[ vcpu=<n>]
//! ```
//!
//! (`vcpu=` only in `multi-vcpu`). Reads and writes are single volatile accesses of
//! [`Touch::size`] bytes: one byte everywhere except `exec`'s copy (one 8-byte write).
//! A write stores the page index in every byte it writes (`exec`'s copy stores code
//! instead). `x` is a call into the page (6 bytes of code fetched).
//!
//! One guest access is not a touch: `xen-copy` reads back the 16 bytes Xen wrote
//! ([`XEN_COPY_READS`]: two 8-byte volatile reads at page 7 offsets 0x40 and 0x48, after
//! the hypercall) to print them in its `XEN-COPY` line; that line accounts for them. A
//! test that restricts reads of page 7 must expect them from the `XEN-COPY` line.
//!
//! # Phases
//!
//! Every pattern starts with the go-page handshake ([`crate::handshake`]): `READY
//! go-pfn=0x<pfn>`, then the guest waits for [`GO`](crate::handshake::GO). That opens
//! phase 1. A pattern with more phases ([`Pattern::phases`]: `generation` two,
//! `pt-hypercall` four; `bench-sweep` `phases=<K>` + 1) makes its phase-1 touches, then
//! hands over again on the same go page before each further phase `n`:
//!
//! ```text
//! TEST-GUEST READY go-pfn=0x<same pfn> phase=<n>
//! ```
//!
//! and waits, by the same rules, for the go page's first `u64` to become
//! [`handshake::go_value(n)`](crate::handshake::go_value) (`"GO<n>"`: `"GO2"` for phase 2), which
//! dom0 writes once it has changed what it wanted to change (for `generation`: the
//! listener's default access). [`Touch::phase`] says which phase a touch belongs to.
//!
//! # Patterns
//!
//! | name | touches |
//! | --- | --- |
//! | `read-sweep` | r pages 0..15 in order, offset `0x10 * page` |
//! | `write-sweep` | w pages 0..15 in order, offset `0x10 * page` |
//! | `exec` | w page 3 offset 0x100 (the copy of [`EXEC_CODE`]), x page 3 offset 0x100 |
//! | `stride` | w pages 0, 2, .. 14, the i-th at offset `0x100 * i` |
//! | `repeat` | w page 5 eight times, offsets 0, 8, .. 56 |
//! | `pt-write` | w page 6 offset 0x100 through an alias mapped by an emulated PTE write, w page 9 offset 0x200 through the alias mapped by `mmu_update` ([`crate::pt_write`]; the alias is chosen, and its `PT-SLOT` line printed, before `READY`) |
//! | `xen-copy` | (Xen writes page 7 offset 0x40..0x4f; the guest reads it back for the `XEN-COPY` line, see above) w page 7 offset 0x80 |
//! | `multi-vcpu` | vCPU 0: w pages 0..7, vCPU 1: w pages 8..15 at the same time, each page at offset 0 then 0x800 |
//! | `balloon` | (pages 12..15 get new machine frames, [`crate::balloon`]) w pages 12..15, offset `0x10 * page` |
//! | `generation` | phase 1: w pages 0..15 in order, offset `0x10 * page` (as `write-sweep`); `READY ... phase=2`, wait for `"GO2"`; phase 2: w pages 0..15 in order, offset `0x800 + 0x10 * page` ([`GENERATION_PHASE2_OFFSET`]) |
//! | `hostile-calls` | (after `GO`: the calls of [`crate::hostile`], one `HOSTILE` line each, then `HOSTILE-DONE calls=<n>`) w page 0 offset 0 |
//! | `pt-hypercall` | (phase `n`, 1 to 4, is step `n` of [`crate::pt_hypercall`]: a page-table write by hypercall, each after its own `READY`) phases 1-3: w page 1 offset 0x110, page 2 offset 0x220, page 3 offset 0x330, each through the alias that phase's hypercall mapped; phase 4 (the L2 entry's rewrite) touches nothing |
//! | `bench` | w pages 0..15 in order, offset `0x10 * page` (as `write-sweep`), repeated `rounds=<R>` times (default 256), timed, **without** `TOUCH` lines: its plan is one round; a `BENCH` line gives the time ([`crate::bench`]) and `PATTERN-DONE bench touches=<R*16>` counts the writes |
//! | `xen-copy-race` | (two vCPUs: vCPU 1 has Xen write page 10 at 0x0 by 10^4 hypercalls while vCPU 0 keeps writing it, [`crate::xen_writes`]) w page 10 offset 0x800 by vCPU 0, once it landed |
//! | `runstate-area` | (two vCPUs: vCPU 1's runstate area at page 10 offset 0x0, 10^4 yields, while vCPU 0 keeps writing the page, [`crate::xen_writes`]) w page 10 offset 0x800 by vCPU 0, once it landed |
//! | `bounce-frame` | (the stack on page 12: exceptions and event upcalls whose frames Xen writes there, [`crate::traps`]) w page 12 offset 0x10 |
//! | `bench-xen-copy` | (`rounds=<R>` hypercalls, each having Xen write 16 bytes into page `i % 16` at 0x40, timed, without `TOUCH` lines: Xen's writes, not the guest's; a `BENCH-XEN-COPY` line gives the time) the plan lists the 16 places Xen writes |
//! | `bench-events` | no buffer touch (empty plan): `BENCH-AREA` before `READY`; after `GO` a read of each page, then one timed w at offset 0 of each of the first `pages=<N>` (default 256, at most 512) pages of an area of its own after the buffer, split between vCPUs 0 and 1 if the domain has two; no `TOUCH` lines; `BENCH-EVENTS`, `BENCH-SCALE`, `BENCH-SAMPLES` ([`crate::bench_ops`]); `PATTERN-DONE bench-events touches=<N>` |
//! | `bench-pingpong` | nothing (empty plan): `ECHO-PORT` before `READY`, then `rounds=<R>` timed event-channel round trips with dom0's echo; `BENCH-PINGPONG`, `BENCH-SCALE`, `BENCH-SAMPLES` ([`crate::bench_ops`]); `PATTERN-DONE bench-pingpong touches=0` |
//! | `bench-sweep` | in each phase `n` = 2 to `K + 1` (`phases=<K>`, default 8, at most 64; each after `READY ... phase=<n>` and `"GO<n>"`), timed, without `TOUCH` lines: w pages 0..15 in order at offset `0x10 * page` (as `write-sweep`), then r the same bytes in the same order (its plan: one sweep); one `SWEEP` line per phase ([`crate::bench_ops`]); `PATTERN-DONE bench-sweep touches=<16*K>` |

use core::fmt;

use crate::frames::{Pfn, PAGE_SIZE};
use crate::lines::{Line, Words};
use crate::text::Sink;
use crate::workload::{BUFFER_GFN, BUFFER_PAGES};

/// One of the access patterns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Read every page once, in order.
    ReadSweep,
    /// Write every page once, in order.
    WriteSweep,
    /// Copy a tiny function into a page and call it.
    Exec,
    /// Write every other page.
    Stride,
    /// Write one page eight times.
    Repeat,
    /// Write a page through an alias mapped by writing the guest's own page table.
    PtWrite,
    /// Make Xen write into a page, then write it.
    XenCopy,
    /// Two vCPUs write different pages at the same time.
    MultiVcpu,
    /// Give four pages back to Xen, get new frames for them, write them.
    Balloon,
    /// Write every page, hand over to dom0 a second time (it changes the default
    /// access), write every page again.
    Generation,
    /// Write every page in order, many rounds, timed; no `TOUCH` lines
    /// ([`crate::bench`]).
    Bench,
    /// Ask Xen for the control interface an unprivileged guest may not use, one
    /// `HOSTILE` line per call ([`crate::hostile`]), then write page 0.
    HostileCalls,
    /// Write the guest's own L1 and L2 page tables by hypercall, one phase per way
    /// ([`crate::pt_hypercall`]), and write pages through the aliases so mapped.
    PtHypercall,
    /// Xen writes a page for vCPU 1 (hypercall results) while vCPU 0 tries to write it
    /// ([`crate::xen_writes`]).
    XenCopyRace,
    /// Xen updates vCPU 1's runstate area in a page while vCPU 0 tries to write it
    /// ([`crate::xen_writes`]).
    RunstateArea,
    /// Exceptions and upcalls delivered onto a stack on a buffer page
    /// ([`crate::traps`]).
    BounceFrame,
    /// Hypercalls that have Xen write into buffer pages, many, timed.
    BenchXenCopy,
    /// One timed write to each of up to 512 pages of an area outside the buffer, one
    /// event each when monitored; per-write samples ([`crate::bench_ops`]).
    BenchEvents,
    /// Event-channel round trips with dom0's echo, timed, per-round samples
    /// ([`crate::bench_ops`]).
    BenchPingpong,
    /// A timed write-then-read sweep of the buffer in each of `phases=<K>` phases, dom0
    /// changing access rights between them ([`crate::bench_ops`]).
    BenchSweep,
}

impl Pattern {
    /// Every pattern, in the order of the table above.
    pub const ALL: [Self; 20] = [
        Self::ReadSweep,
        Self::WriteSweep,
        Self::Exec,
        Self::Stride,
        Self::Repeat,
        Self::PtWrite,
        Self::XenCopy,
        Self::MultiVcpu,
        Self::Balloon,
        Self::Generation,
        Self::Bench,
        Self::HostileCalls,
        Self::PtHypercall,
        Self::XenCopyRace,
        Self::RunstateArea,
        Self::BounceFrame,
        Self::BenchXenCopy,
        Self::BenchEvents,
        Self::BenchPingpong,
        Self::BenchSweep,
    ];

    /// The name in `pattern=<name>` and in `PATTERN-DONE`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ReadSweep => "read-sweep",
            Self::WriteSweep => "write-sweep",
            Self::Exec => "exec",
            Self::Stride => "stride",
            Self::Repeat => "repeat",
            Self::PtWrite => "pt-write",
            Self::XenCopy => "xen-copy",
            Self::MultiVcpu => "multi-vcpu",
            Self::Balloon => "balloon",
            Self::Generation => "generation",
            Self::Bench => "bench",
            Self::HostileCalls => "hostile-calls",
            Self::PtHypercall => "pt-hypercall",
            Self::XenCopyRace => "xen-copy-race",
            Self::RunstateArea => "runstate-area",
            Self::BounceFrame => "bounce-frame",
            Self::BenchXenCopy => "bench-xen-copy",
            Self::BenchEvents => "bench-events",
            Self::BenchPingpong => "bench-pingpong",
            Self::BenchSweep => "bench-sweep",
        }
    }

    /// The pattern called `name` (exactly, case included).
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|pattern| pattern.name().as_bytes() == name)
    }

    /// How many vCPUs the domain needs for this pattern (`bench-events` needs one and
    /// uses a second one if the domain has it).
    pub const fn vcpus_needed(self) -> u32 {
        match self {
            Self::MultiVcpu | Self::XenCopyRace | Self::RunstateArea => 2,
            _ => 1,
        }
    }

    /// How many phases the pattern has, each opened by a go-page handshake (see
    /// "Phases" above): 2 for `generation`, 4 for `pt-hypercall`, 1 for the others.
    /// (`bench-sweep` has `K + 1`, `K` from its `phases=` word,
    /// [`crate::bench_ops::sweep_phases`]: its plan is one sweep, the same in each of
    /// phases 2 to `K + 1`, so its touches are all listed as phase 1.)
    pub const fn phases(self) -> u32 {
        match self {
            Self::Generation => 2,
            Self::PtHypercall => 4,
            _ => 1,
        }
    }
}

/// The kind of a touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read.
    Read,
    /// A write.
    Write,
    /// An instruction fetch (a call into the page).
    Exec,
}

impl Access {
    /// The letter in `TOUCH` lines (and in the listener's `access` field).
    pub const fn letter(self) -> &'static str {
        match self {
            Self::Read => "r",
            Self::Write => "w",
            Self::Exec => "x",
        }
    }
}

/// Which virtual address a touch goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The buffer's own address, [`buffer_va`].
    Buffer,
    /// The `pt-write` alias: another virtual address mapping the same frame.
    Alias,
}

/// One access to the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touch {
    /// Read, write or execute.
    pub access: Access,
    /// The buffer page, 0 to 15.
    pub page: usize,
    /// The byte offset in the page.
    pub offset: usize,
    /// Bytes read or written by the one access (code bytes fetched for `x`).
    pub size: usize,
    /// The virtual address used.
    pub via: Via,
    /// The vCPU that does it, in `multi-vcpu` (printed as `vcpu=`); `None` otherwise.
    pub vcpu: Option<u32>,
    /// The phase it belongs to (see "Phases" above): 1, or 2 for `generation`'s
    /// touches after `READY ... phase=2`. Not printed: a touch's phase is told by the
    /// `READY` line before it.
    pub phase: u32,
}

impl Touch {
    const fn new(access: Access, page: usize, offset: usize) -> Self {
        Self {
            access,
            page,
            offset,
            size: 1,
            via: Via::Buffer,
            vcpu: None,
            phase: 1,
        }
    }

    const fn sized(self, size: usize) -> Self {
        Self { size, ..self }
    }

    /// The byte a write stores (every byte of it): the page index.
    pub const fn value(&self) -> u8 {
        self.page as u8
    }

    /// The touched byte's address in the buffer (for [`Via::Alias`] the frame is the
    /// same, the address used is not).
    pub const fn buffer_va(&self) -> u64 {
        buffer_va(self.page, self.offset)
    }
}

/// Virtual address of byte `offset` of buffer page `page` (virtual = pseudo-physical,
/// the buffer at gfn [`BUFFER_GFN`]).
pub const fn buffer_va(page: usize, offset: usize) -> u64 {
    Pfn(BUFFER_GFN).to_virt() + (page * PAGE_SIZE + offset) as u64
}

/// The most touches a pattern makes (`multi-vcpu`: 2 vCPUs x 8 pages x 2;
/// `generation`: 2 phases x 16 pages; `bench-sweep`'s sweep: 16 writes, 16 reads).
pub const MAX_TOUCHES: usize = 32;

/// `exec`'s page and offset.
pub const EXEC_PAGE: usize = 3;
/// See [`EXEC_PAGE`].
pub const EXEC_OFFSET: usize = 0x100;
/// `exec`'s function: `mov eax, 0x1234; ret` (`b8 34 12 00 00 c3`), padded to one
/// 8-byte write with two `int3`.
pub const EXEC_CODE: [u8; 8] = [0xb8, 0x34, 0x12, 0x00, 0x00, 0xc3, 0xcc, 0xcc];
/// Bytes of [`EXEC_CODE`] that execute.
pub const EXEC_CODE_LEN: usize = 6;
/// What the function returns.
pub const EXEC_RESULT: u32 = 0x1234;

/// `pt-write`'s pages, one per route in [`crate::pt_write::Route::ALL`]'s order: the
/// emulated route maps page 6, the `mmu_update` route page 9.
pub const PT_WRITE_PAGES: [usize; 2] = [6, 9];
/// `pt-write`'s offsets, one per route as [`PT_WRITE_PAGES`].
pub const PT_WRITE_OFFSETS: [usize; 2] = [0x100, 0x200];
/// `pt-hypercall`'s pages, one per step that maps the alias (phases 1 to 3, in
/// [`crate::pt_hypercall::Step::ALL`]'s order).
pub const PT_HYPERCALL_PAGES: [usize; 3] = [1, 2, 3];
/// `pt-hypercall`'s offsets, one per page of [`PT_HYPERCALL_PAGES`].
pub const PT_HYPERCALL_OFFSETS: [usize; 3] = [0x110, 0x220, 0x330];
/// `xen-copy`'s page.
pub const XEN_COPY_PAGE: usize = 7;
/// Where Xen copies its extra version string in `xen-copy`'s page.
pub const XEN_COPY_OFFSET: usize = 0x40;
/// The offsets in `xen-copy`'s page of the guest's two 8-byte reads of what Xen copied
/// (accounted for by the `XEN-COPY` line, not by `TOUCH` lines).
pub const XEN_COPY_READS: [usize; 2] = [XEN_COPY_OFFSET, XEN_COPY_OFFSET + 8];
/// `bounce-frame`'s page: the stack the exceptions' frames go on.
pub const BOUNCE_PAGE: usize = 12;
/// `bounce-frame`'s final write, once every delivery is done.
pub const BOUNCE_TOUCH_OFFSET: usize = 0x10;
/// `bounce-frame`'s rounds, each delivering every kind of frame once.
pub const BOUNCE_ROUNDS: u64 = 64;
/// Where `bench-xen-copy`'s hypercalls have Xen write in each page.
pub const BENCH_XEN_COPY_OFFSET: usize = 0x40;
/// `repeat`'s page.
pub const REPEAT_PAGE: usize = 5;
/// `balloon`'s pages.
pub const BALLOON_PAGES: [usize; 4] = [12, 13, 14, 15];
/// `multi-vcpu`'s offsets, written in this order in each page.
pub const MULTI_VCPU_OFFSETS: [usize; 2] = [0, 0x800];
/// Where `generation`'s phase-2 writes start in each page: page `p` is written at
/// `0x800 + 0x10 * p`, clear of its phase-1 byte at `0x10 * p`.
pub const GENERATION_PHASE2_OFFSET: usize = 0x800;

/// The touches of one pattern, in the order they happen (per vCPU for `multi-vcpu`,
/// whose two vCPUs run at the same time: vCPU 0's come first here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    touches: [Touch; MAX_TOUCHES],
    len: usize,
}

impl Plan {
    const fn empty() -> Self {
        Self {
            touches: [Touch::new(Access::Read, 0, 0); MAX_TOUCHES],
            len: 0,
        }
    }

    /// Adds a touch (the plans below stay within [`MAX_TOUCHES`]; a host test checks).
    fn push(&mut self, touch: Touch) {
        self.touches[self.len] = touch;
        self.len += 1;
    }

    /// All touches.
    pub fn touches(&self) -> &[Touch] {
        &self.touches[..self.len]
    }

    /// The touches vCPU `vcpu` makes, in order (all of them for a one-vCPU pattern
    /// and vCPU 0).
    pub fn of_vcpu(&self, vcpu: u32) -> impl Iterator<Item = &Touch> {
        self.touches()
            .iter()
            .filter(move |touch| touch.vcpu.unwrap_or(0) == vcpu)
    }

    /// The touches of phase `phase`, in order (all of them for a one-phase pattern
    /// and phase 1).
    pub fn of_phase(&self, phase: u32) -> impl Iterator<Item = &Touch> {
        self.touches()
            .iter()
            .filter(move |touch| touch.phase == phase)
    }
}

/// The touches of `pattern`.
pub fn plan(pattern: Pattern) -> Plan {
    use Access::{Exec, Read, Write};
    let mut plan = Plan::empty();
    match pattern {
        Pattern::ReadSweep => {
            (0..BUFFER_PAGES).for_each(|p| plan.push(Touch::new(Read, p, 0x10 * p)))
        }
        Pattern::WriteSweep | Pattern::Bench => {
            (0..BUFFER_PAGES).for_each(|p| plan.push(Touch::new(Write, p, 0x10 * p)));
        }
        Pattern::Exec => {
            plan.push(Touch::new(Write, EXEC_PAGE, EXEC_OFFSET).sized(EXEC_CODE.len()));
            plan.push(Touch::new(Exec, EXEC_PAGE, EXEC_OFFSET).sized(EXEC_CODE_LEN));
        }
        Pattern::Stride => {
            (0..BUFFER_PAGES / 2).for_each(|i| plan.push(Touch::new(Write, 2 * i, 0x100 * i)))
        }
        Pattern::Repeat => (0..8).for_each(|i| plan.push(Touch::new(Write, REPEAT_PAGE, 8 * i))),
        Pattern::PtWrite => {
            for (page, offset) in PT_WRITE_PAGES.into_iter().zip(PT_WRITE_OFFSETS) {
                let touch = Touch::new(Write, page, offset);
                plan.push(Touch {
                    via: Via::Alias,
                    ..touch
                });
            }
        }
        Pattern::PtHypercall => {
            let pages = PT_HYPERCALL_PAGES.into_iter().zip(PT_HYPERCALL_OFFSETS);
            for (phase, (page, offset)) in (1..).zip(pages) {
                let touch = Touch::new(Write, page, offset);
                plan.push(Touch {
                    via: Via::Alias,
                    phase,
                    ..touch
                });
            }
        }
        Pattern::XenCopy => plan.push(Touch::new(Write, XEN_COPY_PAGE, 0x80)),
        Pattern::HostileCalls => plan.push(Touch::new(Write, 0, 0)),
        Pattern::XenCopyRace | Pattern::RunstateArea => plan.push(Touch::new(
            Write,
            crate::xen_writes::RACE_PAGE,
            crate::xen_writes::MARKER_OFFSET,
        )),
        Pattern::BounceFrame => plan.push(Touch::new(Write, BOUNCE_PAGE, BOUNCE_TOUCH_OFFSET)),
        Pattern::BenchXenCopy => (0..BUFFER_PAGES).for_each(|p| {
            plan.push(
                Touch::new(Write, p, BENCH_XEN_COPY_OFFSET)
                    .sized(crate::hypercall::XEN_EXTRAVERSION_LEN),
            )
        }),
        // Their accesses are no buffer touches: the event area's pages, or none.
        Pattern::BenchEvents | Pattern::BenchPingpong => {}
        Pattern::BenchSweep => {
            let sweep = (0..BUFFER_PAGES).map(crate::bench_ops::sweep_byte);
            sweep
                .clone()
                .for_each(|(p, offset)| plan.push(Touch::new(Write, p, offset)));
            sweep.for_each(|(p, offset)| plan.push(Touch::new(Read, p, offset)));
        }
        Pattern::MultiVcpu => {
            for vcpu in [0, 1] {
                let pages = BUFFER_PAGES / 2;
                for page in vcpu as usize * pages..(vcpu as usize + 1) * pages {
                    for offset in MULTI_VCPU_OFFSETS {
                        let touch = Touch::new(Write, page, offset);
                        plan.push(Touch {
                            vcpu: Some(vcpu),
                            ..touch
                        });
                    }
                }
            }
        }
        Pattern::Balloon => BALLOON_PAGES
            .into_iter()
            .for_each(|p| plan.push(Touch::new(Write, p, 0x10 * p))),
        Pattern::Generation => {
            (0..BUFFER_PAGES).for_each(|p| plan.push(Touch::new(Write, p, 0x10 * p)));
            for p in 0..BUFFER_PAGES {
                let touch = Touch::new(Write, p, GENERATION_PHASE2_OFFSET + 0x10 * p);
                plan.push(Touch { phase: 2, ..touch });
            }
        }
    }
    plan
}

/// `READY go-pfn=0x<pfn>` for the handshake that opens phase 1, `READY
/// go-pfn=0x<pfn> phase=<n>` for a later phase `n` (see "Phases" above): the guest
/// waits on the go page at `pfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The go page's pfn.
    pub go_pfn: u64,
    /// The phase the handshake opens (1 is not printed).
    pub phase: u32,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "READY go-pfn={:#x}", self.go_pfn)?;
        if self.phase > 1 {
            write!(f, " phase={}", self.phase)?;
        }
        Ok(())
    }
}

impl Line<'_> for Ready {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "READY")?;
        let go_pfn = words.hex("go-pfn")?;
        let phase = match words.next() {
            None => 1,
            Some(word) => match word.strip_prefix("phase=")?.parse().ok()? {
                phase if phase > 1 => phase,
                _ => return None,
            },
        };
        words.end()?;
        Some(Ready { go_pfn, phase })
    }
}

/// Writes [`Ready`] (after the `TEST-GUEST ` prefix).
pub fn write_ready(out: &mut (impl Sink + ?Sized), go_pfn: Pfn, phase: u32) {
    let _ = write!(
        out,
        "{}",
        Ready {
            go_pfn: go_pfn.0,
            phase
        }
    );
}

/// Writes the [`TouchLine`] of `touch` through `va`, the address the access used.
pub fn write_touch(out: &mut (impl Sink + ?Sized), touch: &Touch, va: u64) {
    let line = TouchLine {
        access: touch.access.letter().chars().next().unwrap_or('?'),
        page: touch.page,
        offset: touch.offset,
        va,
        vcpu: touch.vcpu,
    };
    let _ = write!(out, "{line}");
}

/// `TOUCH <r|w|x> page=<page> offset=0x<hex> va=0x<hex>[ vcpu=<n>]`: one touch (see
/// "Touches" above), printed after the access; `vcpu=` only in `multi-vcpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TouchLine {
    /// `r`, `w` or `x`.
    pub access: char,
    /// The buffer page.
    pub page: usize,
    /// The byte offset in the page.
    pub offset: usize,
    /// The virtual address the access used.
    pub va: u64,
    /// The vCPU, in `multi-vcpu`.
    pub vcpu: Option<u32>,
}

impl fmt::Display for TouchLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TOUCH {} page={} offset={:#x} va={:#x}",
            self.access, self.page, self.offset, self.va
        )?;
        if let Some(vcpu) = self.vcpu {
            write!(f, " vcpu={vcpu}")?;
        }
        Ok(())
    }
}

impl Line<'_> for TouchLine {
    /// Every word in its place, numbers in the base `Display` uses.
    fn parse(body: &str) -> Option<TouchLine> {
        let mut words = Words::after(body, "TOUCH")?;
        let access = match words.next()? {
            "r" => 'r',
            "w" => 'w',
            "x" => 'x',
            _ => return None,
        };
        let page = words.dec("page")?;
        let offset = usize::try_from(words.hex("offset")?).ok()?;
        let va = words.hex("va")?;
        let vcpu = match words.next() {
            None => None,
            Some(word) => Some(word.strip_prefix("vcpu=")?.parse().ok()?),
        };
        words.end()?;
        Some(TouchLine {
            access,
            page,
            offset,
            va,
            vcpu,
        })
    }
}

/// `PATTERN-DONE <name> touches=<n>`: the pattern ran to its end; `n` counts the
/// `TOUCH` lines printed (of every vCPU); for the timed patterns, which print none,
/// the writes they made: `bench` rounds x 16, `bench-xen-copy` its hypercalls,
/// `bench-events` its pages, `bench-sweep` 16 per timed phase, `bench-pingpong` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternDone {
    /// The pattern.
    pub pattern: Pattern,
    /// Its touches.
    pub touches: usize,
}

impl fmt::Display for PatternDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PATTERN-DONE {} touches={}",
            self.pattern.name(),
            self.touches
        )
    }
}

impl Line<'_> for PatternDone {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "PATTERN-DONE")?;
        let pattern = Pattern::from_name(words.next()?.as_bytes())?;
        let touches = words.dec("touches")?;
        words.end()?;
        Some(PatternDone { pattern, touches })
    }
}

/// Writes [`PatternDone`].
pub fn write_pattern_done(out: &mut (impl Sink + ?Sized), pattern: Pattern, touches: usize) {
    let _ = write!(out, "{}", PatternDone { pattern, touches });
}

/// `XEN-COPY rc=<rc> page=7 offset=0x40 text=<text>`: `rc` is the hypercall's raw
/// result, `text` what the page held afterwards up to its first NUL (at most 16 bytes,
/// non-printables as `?`; empty if Xen wrote nothing; it may hold spaces, and runs to
/// the end of the line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCopy<'a> {
    /// The hypercall's result.
    pub rc: i64,
    /// The page Xen wrote.
    pub page: usize,
    /// Where in the page.
    pub offset: usize,
    /// What the page held: printed up to the first NUL, sanitized.
    pub text: &'a [u8],
}

impl fmt::Display for XenCopy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self
            .text
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.text.len());
        write!(
            f,
            "XEN-COPY rc={} page={} offset={:#x} text=",
            self.rc, self.page, self.offset
        )?;
        f.put_sanitized(&self.text[..len]);
        Ok(())
    }
}

impl<'a> Line<'a> for XenCopy<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let (head, text) = body.trim_end().split_once(" text=")?;
        let mut words = Words::after(head, "XEN-COPY")?;
        let rc = words.dec("rc")?;
        let page = words.dec("page")?;
        let offset = usize::try_from(words.hex("offset")?).ok()?;
        words.end()?;
        Some(XenCopy {
            rc,
            page,
            offset,
            text: text.as_bytes(),
        })
    }
}

/// Writes [`XenCopy`] for page 7 at 0x40: `copied` the 16 bytes read back.
pub fn write_xen_copy(out: &mut (impl Sink + ?Sized), rc: i64, copied: &[u8]) {
    let line = XenCopy {
        rc,
        page: XEN_COPY_PAGE,
        offset: XEN_COPY_OFFSET,
        text: copied,
    };
    let _ = write!(out, "{line}");
}

/// `VCPU <n> up`, printed by vCPU `n` itself once it runs.
pub fn write_vcpu_up(out: &mut (impl Sink + ?Sized), vcpu: u32) {
    let _ = write!(out, "VCPU {vcpu} up");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// The patterns whose plan is empty: their accesses are not buffer touches.
    const NO_BUFFER_TOUCHES: [Pattern; 2] = [Pattern::BenchEvents, Pattern::BenchPingpong];

    /// (letter, page, offset) of each touch.
    fn shape(pattern: Pattern) -> Vec<(&'static str, usize, usize)> {
        plan(pattern)
            .touches()
            .iter()
            .map(|t| (t.access.letter(), t.page, t.offset))
            .collect()
    }

    #[test]
    fn names_round_trip_and_are_exact() {
        let names: Vec<&str> = Pattern::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            [
                "read-sweep",
                "write-sweep",
                "exec",
                "stride",
                "repeat",
                "pt-write",
                "xen-copy",
                "multi-vcpu",
                "balloon",
                "generation",
                "bench",
                "hostile-calls",
                "pt-hypercall",
                "xen-copy-race",
                "runstate-area",
                "bounce-frame",
                "bench-xen-copy",
                "bench-events",
                "bench-pingpong",
                "bench-sweep"
            ]
        );
        for pattern in Pattern::ALL {
            assert_eq!(Pattern::from_name(pattern.name().as_bytes()), Some(pattern));
        }
        for bad in [
            &b""[..],
            b"Exec",
            b"exec ",
            b"read_sweep",
            b"sweep",
            b"multi-vcpus",
            b"generation ",
            b"generations",
            b"Bench",
            b"benchmark",
            b"bench rounds=5",
        ] {
            assert_eq!(Pattern::from_name(bad), None);
        }
        assert_eq!(Pattern::MultiVcpu.vcpus_needed(), 2);
        assert_eq!(Pattern::Balloon.vcpus_needed(), 1);
        assert_eq!(Pattern::Generation.vcpus_needed(), 1);
        assert_eq!(Pattern::Bench.vcpus_needed(), 1);
        assert_eq!(Pattern::Bench.phases(), 1);
    }

    #[test]
    fn bench_plan_is_one_round_of_write_sweep() {
        let round = plan(Pattern::Bench);
        assert_eq!(round, plan(Pattern::WriteSweep));
        assert_eq!(
            shape(Pattern::Bench),
            (0..16).map(|p| ("w", p, 0x10 * p)).collect::<Vec<_>>()
        );
        for t in round.touches() {
            assert_eq!(
                (t.access, t.size, t.via, t.vcpu, t.phase),
                (Access::Write, 1, Via::Buffer, None, 1),
                "the kernel's timed loop does one-byte buffer writes only"
            );
        }
        let mut out = String::new();
        write_pattern_done(&mut out, Pattern::Bench, 256 * 16);
        assert_eq!(out, "PATTERN-DONE bench touches=4096");
    }

    #[test]
    fn per_operation_benches() {
        for pattern in [
            Pattern::BenchEvents,
            Pattern::BenchPingpong,
            Pattern::BenchSweep,
        ] {
            assert_eq!(pattern.vcpus_needed(), 1, "{pattern:?}");
            assert_eq!(pattern.phases(), 1, "{pattern:?}");
        }
        let writes: Vec<_> = (0..16).map(|p| ("w", p, 0x10 * p)).collect();
        let reads: Vec<_> = (0..16).map(|p| ("r", p, 0x10 * p)).collect();
        assert_eq!(shape(Pattern::BenchSweep), [writes, reads].concat());
        assert_eq!(plan(Pattern::BenchSweep).touches().len(), MAX_TOUCHES);
        for t in plan(Pattern::BenchSweep).touches() {
            assert_eq!((t.size, t.via, t.vcpu, t.phase), (1, Via::Buffer, None, 1));
        }
        let mut out = String::new();
        write_pattern_done(&mut out, Pattern::BenchEvents, 256);
        assert_eq!(out, "PATTERN-DONE bench-events touches=256");
        let mut out = String::new();
        write_pattern_done(&mut out, Pattern::BenchPingpong, 0);
        assert_eq!(out, "PATTERN-DONE bench-pingpong touches=0");
        let mut out = String::new();
        write_pattern_done(&mut out, Pattern::BenchSweep, 16 * 8);
        assert_eq!(out, "PATTERN-DONE bench-sweep touches=128");
    }

    #[test]
    fn sweeps_touch_every_page_in_order() {
        let expected: Vec<_> = (0..16).map(|p| ("r", p, 0x10 * p)).collect();
        assert_eq!(shape(Pattern::ReadSweep), expected);
        let expected: Vec<_> = (0..16).map(|p| ("w", p, 0x10 * p)).collect();
        assert_eq!(shape(Pattern::WriteSweep), expected);
        for touch in plan(Pattern::WriteSweep).touches() {
            assert_eq!(touch.value(), touch.page as u8, "value = page index");
            assert_eq!((touch.size, touch.via, touch.vcpu), (1, Via::Buffer, None));
        }
        assert_eq!(shape(Pattern::WriteSweep)[15], ("w", 15, 0xf0));
    }

    #[test]
    fn exec_copies_then_calls() {
        assert_eq!(shape(Pattern::Exec), [("w", 3, 0x100), ("x", 3, 0x100)]);
        let touches = plan(Pattern::Exec);
        assert_eq!(touches.touches()[0].size, 8, "one 8-byte write of the code");
        assert_eq!(touches.touches()[1].size, 6, "six bytes of code executed");
        // mov eax, 0x1234 (b8 + imm32 little-endian); ret; int3 padding.
        assert_eq!(&EXEC_CODE[..EXEC_CODE_LEN], &[0xb8, 0x34, 0x12, 0, 0, 0xc3]);
        assert_eq!(
            u32::from_le_bytes(EXEC_CODE[1..5].try_into().unwrap()),
            EXEC_RESULT
        );
        assert_eq!(EXEC_OFFSET % 8, 0, "the 8-byte write is aligned");
    }

    #[test]
    fn stride_and_repeat() {
        assert_eq!(
            shape(Pattern::Stride),
            [
                ("w", 0, 0),
                ("w", 2, 0x100),
                ("w", 4, 0x200),
                ("w", 6, 0x300),
                ("w", 8, 0x400),
                ("w", 10, 0x500),
                ("w", 12, 0x600),
                ("w", 14, 0x700)
            ]
        );
        let expected: Vec<_> = (0..8).map(|i| ("w", 5, 8 * i)).collect();
        assert_eq!(shape(Pattern::Repeat), expected);
    }

    #[test]
    fn pt_write_goes_through_the_alias() {
        assert_eq!(shape(Pattern::PtWrite), [("w", 6, 0x100), ("w", 9, 0x200)]);
        assert!(plan(Pattern::PtWrite)
            .touches()
            .iter()
            .all(|t| t.via == Via::Alias));
        // Each route writes its own page: the emulated route page 6, mmu_update page 9.
        let values: Vec<u8> = plan(Pattern::PtWrite)
            .touches()
            .iter()
            .map(Touch::value)
            .collect();
        assert_eq!(values, [6, 9]);
        assert_eq!(PT_WRITE_PAGES, [6, 9]);
    }

    #[test]
    fn pt_hypercall_writes_one_page_per_alias_step_each_in_its_phase() {
        assert_eq!(
            shape(Pattern::PtHypercall),
            [("w", 1, 0x110), ("w", 2, 0x220), ("w", 3, 0x330)]
        );
        let plan = plan(Pattern::PtHypercall);
        let phases: Vec<u32> = plan.touches().iter().map(|t| t.phase).collect();
        assert_eq!(phases, [1, 2, 3]);
        assert!(plan.touches().iter().all(|t| t.via == Via::Alias));
        assert_eq!(Pattern::PtHypercall.phases(), 4);
        assert!(
            PT_HYPERCALL_PAGES
                .iter()
                .all(|page| !PT_WRITE_PAGES.contains(page) && *page != XEN_COPY_PAGE),
            "pages of their own"
        );
    }

    #[test]
    fn xen_copy_writes_after_the_copy_it_reads_back() {
        assert_eq!(shape(Pattern::XenCopy), [("w", 7, 0x80)]);
        // The read-back covers the 16-byte xen_extraversion_t Xen copies, 8-byte aligned,
        // and stays clear of the touch.
        assert_eq!(XEN_COPY_READS, [0x40, 0x48]);
        assert!(XEN_COPY_READS.iter().all(|offset| offset % 8 == 0));
        assert_eq!(XEN_COPY_READS[1] + 8 - XEN_COPY_OFFSET, 16);
        assert!(XEN_COPY_READS[1] + 8 <= 0x80);
    }

    #[test]
    fn multi_vcpu_splits_the_buffer() {
        let plan = plan(Pattern::MultiVcpu);
        assert_eq!(plan.touches().len(), MAX_TOUCHES);
        let of = |vcpu| -> Vec<(usize, usize)> {
            plan.of_vcpu(vcpu).map(|t| (t.page, t.offset)).collect()
        };
        let expected0: Vec<_> = (0..8).flat_map(|p| [(p, 0), (p, 0x800)]).collect();
        let expected1: Vec<_> = (8..16).flat_map(|p| [(p, 0), (p, 0x800)]).collect();
        assert_eq!(of(0), expected0);
        assert_eq!(of(1), expected1);
        assert!(plan.touches().iter().all(|t| t.access == Access::Write));
        assert_eq!(plan.of_vcpu(2).count(), 0);
    }

    #[test]
    fn balloon_writes_its_four_pages() {
        assert_eq!(
            shape(Pattern::Balloon),
            [
                ("w", 12, 0xc0),
                ("w", 13, 0xd0),
                ("w", 14, 0xe0),
                ("w", 15, 0xf0)
            ]
        );
    }

    #[test]
    fn generation_writes_every_page_in_each_of_two_phases() {
        assert_eq!(Pattern::Generation.phases(), 2);
        let plan = plan(Pattern::Generation);
        assert_eq!(plan.touches().len(), 32);
        assert!(plan.touches().len() <= MAX_TOUCHES);
        let of = |phase| -> Vec<(&str, usize, usize)> {
            plan.of_phase(phase)
                .map(|t| (t.access.letter(), t.page, t.offset))
                .collect()
        };
        // Phase 1 is write-sweep's touches, exactly.
        assert_eq!(of(1), shape(Pattern::WriteSweep));
        let phase1: Vec<Touch> = plan.of_phase(1).copied().collect();
        assert_eq!(phase1, super::plan(Pattern::WriteSweep).touches());
        let expected2: Vec<_> = (0..16).map(|p| ("w", p, 0x800 + 0x10 * p)).collect();
        assert_eq!(of(2), expected2);
        assert_eq!(of(2)[0], ("w", 0, 0x800));
        assert_eq!(of(2)[15], ("w", 15, 0x8f0));
        assert_eq!(plan.of_phase(3).count(), 0);
        // All of phase 1 comes before phase 2, in the plan's order.
        let phases: Vec<u32> = plan.touches().iter().map(|t| t.phase).collect();
        let expected: Vec<u32> = [1; 16].into_iter().chain([2; 16]).collect();
        assert_eq!(phases, expected);
        for t in plan.touches() {
            assert_eq!(t.value(), t.page as u8, "value = page index");
            assert_eq!((t.size, t.via, t.vcpu), (1, Via::Buffer, None));
        }
        // The phase-2 byte of a page is never its phase-1 byte.
        for p in 0..BUFFER_PAGES {
            let [one, two] = [1, 2].map(|phase| {
                let t = plan.of_phase(phase).nth(p).unwrap();
                assert_eq!(t.page, p);
                t.offset
            });
            assert_ne!(one, two);
        }
        let t = plan.of_phase(2).nth(3).unwrap();
        assert_eq!(t.buffer_va(), 0x20_3830);
    }

    #[test]
    fn hostile_patterns_touch_their_pages() {
        for race in [Pattern::XenCopyRace, Pattern::RunstateArea] {
            assert_eq!(race.vcpus_needed(), 2);
            assert_eq!(shape(race), [("w", 10, 0x800)], "{race:?}");
        }
        assert_eq!(Pattern::BounceFrame.vcpus_needed(), 1);
        assert_eq!(shape(Pattern::BounceFrame), [("w", BOUNCE_PAGE, 0x10)]);
        let copies = plan(Pattern::BenchXenCopy);
        assert_eq!(copies.touches().len(), BUFFER_PAGES);
        assert!(copies
            .touches()
            .iter()
            .enumerate()
            .all(|(page, t)| t.page == page
                && t.offset == BENCH_XEN_COPY_OFFSET
                && t.size == crate::hypercall::XEN_EXTRAVERSION_LEN));
    }

    #[test]
    fn every_phase_of_every_pattern_has_touches() {
        for pattern in Pattern::ALL {
            let plan = plan(pattern);
            for phase in 1..=pattern.phases() {
                // pt-hypercall's last step rewrites an L2 entry: nothing to touch.
                let none = (pattern == Pattern::PtHypercall && phase == 4)
                    || NO_BUFFER_TOUCHES.contains(&pattern);
                assert_eq!(
                    plan.of_phase(phase).count() == 0,
                    none,
                    "{pattern:?} {phase}"
                );
            }
            assert!(
                plan.touches()
                    .iter()
                    .all(|t| (1..=pattern.phases()).contains(&t.phase)),
                "{pattern:?}"
            );
            if ![Pattern::Generation, Pattern::PtHypercall].contains(&pattern) {
                assert_eq!(pattern.phases(), 1, "{pattern:?}");
            }
        }
    }

    #[test]
    fn one_vcpu_patterns_are_all_vcpu_0_and_stay_in_the_buffer() {
        for pattern in Pattern::ALL {
            let plan = plan(pattern);
            assert_eq!(
                plan.touches().is_empty(),
                NO_BUFFER_TOUCHES.contains(&pattern),
                "{pattern:?}"
            );
            if pattern != Pattern::MultiVcpu {
                assert_eq!(plan.of_vcpu(0).count(), plan.touches().len());
                assert!(plan.touches().iter().all(|t| t.vcpu.is_none()));
            }
            for t in plan.touches() {
                assert!(t.page < BUFFER_PAGES, "{pattern:?} {t:?}");
                assert!(t.offset + t.size <= PAGE_SIZE, "{pattern:?} {t:?}");
            }
        }
    }

    #[test]
    fn buffer_addresses() {
        assert_eq!(buffer_va(0, 0), 0x20_0000);
        assert_eq!(buffer_va(3, 0x100), 0x20_3100);
        assert_eq!(buffer_va(15, 0xfff), 0x20_ffff);
        let t = plan(Pattern::Stride).touches()[7];
        assert_eq!(t.buffer_va(), 0x20_e700);
    }

    #[test]
    fn line_formats() {
        let mut out = String::new();
        write_ready(&mut out, Pfn(0x1f3), 1);
        assert_eq!(out, "READY go-pfn=0x1f3");

        let mut out = String::new();
        write_ready(&mut out, Pfn(0x1f3), 2);
        assert_eq!(out, "READY go-pfn=0x1f3 phase=2");

        let touches = plan(Pattern::Generation);
        let t = touches.of_phase(2).nth(15).unwrap();
        let mut out = String::new();
        write_touch(&mut out, t, t.buffer_va());
        assert_eq!(out, "TOUCH w page=15 offset=0x8f0 va=0x20f8f0");

        let mut out = String::new();
        write_pattern_done(&mut out, Pattern::Generation, 32);
        assert_eq!(out, "PATTERN-DONE generation touches=32");

        let touches = plan(Pattern::ReadSweep);
        let t = &touches.touches()[2];
        let mut out = String::new();
        write_touch(&mut out, t, t.buffer_va());
        assert_eq!(out, "TOUCH r page=2 offset=0x20 va=0x202020");

        let touches = plan(Pattern::MultiVcpu);
        let t = touches.of_vcpu(1).nth(1).unwrap();
        let mut out = String::new();
        write_touch(&mut out, t, t.buffer_va());
        assert_eq!(out, "TOUCH w page=8 offset=0x800 va=0x208800 vcpu=1");
        assert_eq!(
            TouchLine::parse(&out),
            Some(TouchLine {
                access: 'w',
                page: 8,
                offset: 0x800,
                va: 0x20_8800,
                vcpu: Some(1),
            })
        );

        let t = plan(Pattern::Exec).touches()[1];
        let t = &t;
        let mut out = String::new();
        write_touch(&mut out, t, t.buffer_va());
        assert_eq!(out, "TOUCH x page=3 offset=0x100 va=0x203100");

        let t = plan(Pattern::PtWrite).touches()[0];
        let t = &t;
        let mut out = String::new();
        write_touch(&mut out, t, 0x2c_5100);
        assert_eq!(out, "TOUCH w page=6 offset=0x100 va=0x2c5100");

        let t = plan(Pattern::PtWrite).touches()[1];
        let t = &t;
        let mut out = String::new();
        write_touch(&mut out, t, 0x2c_5200);
        assert_eq!(out, "TOUCH w page=9 offset=0x200 va=0x2c5200");

        let mut out = String::new();
        write_pattern_done(&mut out, Pattern::MultiVcpu, 32);
        assert_eq!(out, "PATTERN-DONE multi-vcpu touches=32");

        let mut out = String::new();
        write_vcpu_up(&mut out, 1);
        assert_eq!(out, "VCPU 1 up");
    }

    #[test]
    fn xen_copy_line_stops_at_nul_and_sanitizes() {
        let mut text = [0u8; 16];
        text[..15].copy_from_slice(b".5-pv-memaccess");
        let mut out = String::new();
        write_xen_copy(&mut out, 0, &text);
        assert_eq!(out, "XEN-COPY rc=0 page=7 offset=0x40 text=.5-pv-memaccess");

        let mut out = String::new();
        write_xen_copy(&mut out, -14, &[0; 16]);
        assert_eq!(out, "XEN-COPY rc=-14 page=7 offset=0x40 text=");

        let mut out = String::new();
        write_xen_copy(&mut out, 0, b"a b\n0123456789ab");
        assert_eq!(
            out, "XEN-COPY rc=0 page=7 offset=0x40 text=a b?0123456789ab",
            "no NUL: all 16 bytes"
        );
    }

    #[test]
    fn every_touch_line_reads_back_as_written() {
        for pattern in Pattern::ALL {
            for t in plan(pattern).touches() {
                let mut out = String::new();
                write_touch(&mut out, t, t.buffer_va());
                let line = TouchLine::parse(&out);
                assert_eq!(
                    line,
                    Some(TouchLine {
                        access: t.access.letter().chars().next().unwrap(),
                        page: t.page,
                        offset: t.offset,
                        va: t.buffer_va(),
                        vcpu: t.vcpu,
                    }),
                    "{out}"
                );
            }
        }
        for bad in [
            "TOUCH q page=1 offset=0x0 va=0x0",
            "TOUCH w page=1 offset=16 va=0x0",
            "TOUCH w offset=0x0 page=1 va=0x0",
            "TOUCH w page=1 offset=0x0 va=0x0 vcpu=x",
            "TOUCH w page=1 offset=0x0 va=0x0 vcpu=1 more",
            "TOUCHED w page=1 offset=0x0 va=0x0",
            "w page=1 offset=0x0 va=0x0",
        ] {
            assert_eq!(TouchLine::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ready_pattern_done_and_xen_copy_round_trip() {
        use crate::lines::tests::round_trip;
        round_trip(
            Ready {
                go_pfn: 0x1f3,
                phase: 1,
            },
            "READY go-pfn=0x1f3",
        );
        round_trip(
            Ready {
                go_pfn: 0x2f0,
                phase: 2,
            },
            "READY go-pfn=0x2f0 phase=2",
        );
        round_trip(
            Ready {
                go_pfn: 0x2f0,
                phase: 20,
            },
            "READY go-pfn=0x2f0 phase=20",
        );
        for bad in [
            "READY go-pfn=0x2f0 phase=1",
            "READY go-pfn=496",
            "READY go-pfn=0x2f0 phase=2 x",
            "READY",
        ] {
            assert_eq!(Ready::parse(bad), None, "{bad}");
        }
        for (pattern, touches, text) in [
            (
                Pattern::Generation,
                32,
                "PATTERN-DONE generation touches=32",
            ),
            (Pattern::Bench, 4096, "PATTERN-DONE bench touches=4096"),
            (
                Pattern::BenchPingpong,
                0,
                "PATTERN-DONE bench-pingpong touches=0",
            ),
        ] {
            round_trip(PatternDone { pattern, touches }, text);
        }
        for pattern in Pattern::ALL {
            let line = PatternDone {
                pattern,
                touches: 7,
            };
            assert_eq!(PatternDone::parse(&line.to_string()), Some(line));
        }
        assert_eq!(PatternDone::parse("PATTERN-DONE nope touches=1"), None);

        let line = XenCopy {
            rc: 0,
            page: 7,
            offset: 0x40,
            text: b"a b?0123456789ab",
        };
        round_trip(
            line,
            "XEN-COPY rc=0 page=7 offset=0x40 text=a b?0123456789ab",
        );
        let empty = "XEN-COPY rc=-14 page=7 offset=0x40 text=";
        assert_eq!(
            XenCopy::parse(empty),
            Some(XenCopy {
                rc: -14,
                page: 7,
                offset: 0x40,
                text: b"",
            })
        );
        assert_eq!(XenCopy::parse("XEN-COPY rc=0 page=7 offset=0x40"), None);
    }
}
