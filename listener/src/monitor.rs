//! `listener monitor`: the event loop, Xen's `xen-access` done well.
//!
//! Setup, in an order that refuses bad input before the guest is touched: the domain's kind;
//! for PV, its P2M (to translate `--access` pfns to the machine frames Xen names, and to name
//! events' frames back, [`crate::frames`]); the trace file. Then the monitor ring is created
//! (for PV, Xen allocates it and turns shadow paging on), mapped, its event channel bound,
//! the default access set, then every `--access` page, with the guest paused meanwhile (a
//! new default supersedes every page's access at once, the pages' own follow one by one). Only then is the trace's header
//! written, so whoever waits for it knows the guest is monitored with the rights asked for.
//! A tokio loop then waits on the event channel, answers every request at once (`relax`: the
//! frame becomes rwx first, as xen-access does; `keep`: resumed as is, so Xen's rx2rw/n2rwx
//! conversions decide; `emulate`: Xen is asked to emulate the access once, and when it says
//! it refused, the page is relaxed) and writes one trace line per event. It stops on `--count`,
//! `--timeout`, Ctrl-C or SIGTERM, or when the domain goes ([`Liveness`]: it no longer
//! exists, is dying or has shut down; a failed look is only a warning). Teardown, whatever
//! the reason (an error after enabling included): pending requests answered, the default
//! access back to rwx, monitoring disabled, the event channel closed, so the guest is never
//! left paused or monitored. A domain that has shut down only has its ring answered and
//! disabled (it never runs again; its rights are left for whoever inspects it); nothing is
//! asked of Xen for a domain that no longer exists or is dying.
//!
//! The trace (JSON lines, format version 1, or text): a `header` record, one `event` record
//! per request, an `end` record; [`crate::trace`] documents the schema.
//!
//! Exit status: 0 stopped by --count or --timeout, 3 stopped by a signal, 4 the domain went
//! away, 1 an error.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use libxc::evtchn::{Evtchn, EvtchnPort};
use libxc::memory::{set_default_access, set_frame_access};
use libxc::monitor::{
    domain_info, domain_is_hvm, domain_pause, domain_unpause, monitor_attach, monitor_disable,
    monitor_enable, RingMapping,
};
use libxc::p2m::{P2m, ReverseP2m};
use libxc::privcmd::Privcmd;
use libxc::ring::{BackRing, VmEvent, VM_EVENT_FLAG_EMULATE, VM_EVENT_FLAG_RESPONSE_REFUSED};
use libxc::version::xen_version;
use libxc::xenstore::resolve_domain;
use libxc::{Access, DomId, Errno, Error, Result};
use libxc::{AccessFrame, FrameKind};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::frames::{Frame, FrameNames};
use crate::pages::{self, PageAccess, PageRequest};
use crate::trace::{self, Format, Record};
use listener::timings::Timings;

/// What to do with a page after its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnEvent {
    /// Give the page rwx, then resume (xen-access's behaviour).
    Relax,
    /// Resume without changing the page: Xen's rx2rw / n2rwx rules apply.
    Keep,
    /// Ask Xen to emulate the access once (`VM_EVENT_FLAG_EMULATE`), the page unchanged.
    /// Xen cannot do that for a PV vCPU: it resumes the vCPU without it and the same access
    /// comes back flagged `response_refused`; that one is relaxed.
    Emulate,
}

impl OnEvent {
    fn name(self) -> &'static str {
        match self {
            OnEvent::Relax => "relax",
            OnEvent::Keep => "keep",
            OnEvent::Emulate => "emulate",
        }
    }

    /// What is done with this request: an emulation Xen refused falls back to relax.
    fn for_request(self, request: &VmEvent) -> OnEvent {
        match self {
            OnEvent::Emulate if request.flags & VM_EVENT_FLAG_RESPONSE_REFUSED != 0 => {
                OnEvent::Relax
            }
            other => other,
        }
    }
}

/// The options of `listener monitor`.
pub struct Options {
    pub domain: String,
    /// `--mode`'s name, for the header.
    pub mode: &'static str,
    pub default_access: Access,
    /// The `--access` pages, applied in this order after the default.
    pub pages: Vec<PageRequest>,
    pub format: Format,
    pub on_event: OnEvent,
    pub count: Option<u64>,
    pub timeout: Option<Duration>,
    pub output: Option<std::path::PathBuf>,
    /// Where to write [`Timings`] at the end.
    pub timings: Option<std::path::PathBuf>,
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Count,
    Timeout,
    Signal,
    DomainGone,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Count => "count",
            Stop::Timeout => "timeout",
            Stop::Signal => "signal",
            Stop::DomainGone => "domain-gone",
        }
    }

    /// The exit status for this reason.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Count | Stop::Timeout => 0,
            Stop::Signal => 3,
            Stop::DomainGone => 4,
        }
    }
}

/// Everything the loop holds; torn down in [`Session::teardown`]. The ring borrows its
/// mapping (`'m`), which [`run`] keeps until the session is gone.
struct Session<'m> {
    privcmd: Privcmd,
    domid: DomId,
    ring: BackRing<'m>,
    evtchn: Evtchn,
    local_port: libxc::evtchn::EvtchnPort,
    trace: Box<dyn Write>,
    format: Format,
    /// Names the frames of events (pfn and mfn).
    names: FrameNames,
    /// Whether a failed P2M read was reported already (once is enough).
    p2m_warned: bool,
    seq: u64,
    /// The most requests one look at the ring found (8: it was full).
    most_pending: u64,
    on_event: OnEvent,
    /// Where the answer path's time goes (`--timings`).
    timings: Timings,
    /// How Xen names this domain's frames (a PV guest's by machine frame).
    frames: FrameKind,
    /// When the header was written: events are timed from there.
    header_at: Option<Instant>,
}

pub fn run(options: Options) -> Result<Stop> {
    // Signals are caught from the start: one that arrives while monitoring is being set up
    // must still end in the teardown, not kill the process with the guest monitored.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Error::invalid("starting the event loop", error.to_string()))?;
    let mut signals = runtime.block_on(async { Signals::catch() })?;
    let privcmd = Privcmd::open()?;
    let domid = resolve_domain(&options.domain)?;
    // Everything that can refuse the command line, before the guest is touched.
    let hvm = domain_is_hvm(&privcmd, domid)?;
    let (pages, names, p2m_warned) = plan(&privcmd, domid, hvm, &options.pages)?;
    let trace = open_trace(options.output.as_deref())?;
    let claim = claim_ring(&privcmd, domid)?;
    let setup = (|| {
        let mapping = RingMapping::map(&privcmd, domid)?;
        let evtchn = Evtchn::open()?;
        let local_port = evtchn.bind_interdomain(domid, claim.port())?;
        evtchn.set_nonblocking()?;
        Ok((mapping, evtchn, local_port))
    })();
    let (mut mapping, evtchn, local_port) = match setup {
        Ok(parts) => parts,
        Err(error) => {
            // A ring this listener made goes again; one it was taking over is left as it
            // was found, for another try.
            if let Claim::Enabled(_) = claim {
                let _ = monitor_disable(&privcmd, domid);
            }
            return Err(error);
        }
    };
    let ring = BackRing::new(&mut mapping);
    // The ring attaches at the shared rsp_prod: what is pending now was left by the dead
    // listener (a fresh ring's requests are new ones).
    let left_over = match claim {
        Claim::TakenOver(_) => ring.pending_requests(),
        Claim::Enabled(_) => 0,
    };
    let mut session = Session {
        privcmd,
        domid,
        ring,
        evtchn,
        local_port,
        trace,
        format: options.format,
        names,
        p2m_warned,
        seq: 0,
        most_pending: 0,
        on_event: options.on_event,
        timings: Timings {
            enabled: options.timings.is_some(),
            ..Timings::default()
        },
        frames: FrameKind::of_domain(hvm),
        header_at: None,
    };
    let header = Record::Header(trace::Header {
        version: trace::FORMAT_VERSION,
        domain: domid.0,
        xen_version: xen_version(&session.privcmd).unwrap_or_default(),
        options: trace::HeaderOptions {
            mode: options.mode.into(),
            default_access: options.default_access.name().into(),
            access: pages.iter().map(PageAccess::record).collect(),
            on_event: options.on_event.name().into(),
            count: options.count,
            timeout_seconds: options.timeout.map(|t| t.as_secs_f64()),
        },
    });
    // From here on every error still goes through the teardown. The requests a dead
    // listener left come first (their vCPUs have waited longest), then the access rights;
    // the header only once those are in force: it tells a harness the guest is monitored
    // as asked.
    let result = session
        .recover(left_over)
        .and_then(|recovered| {
            session.apply_access_paused(options.default_access, &pages)?;
            session.write(&header)?;
            session.header_at = Some(Instant::now());
            recovered
                .iter()
                .try_for_each(|event| session.write(&Record::Event(event.clone())))
        })
        .and_then(|()| {
            event_loop(
                &runtime,
                &mut signals,
                &mut session,
                options.count,
                options.timeout,
            )
        });
    let timings = session.timings;
    let stop = session.teardown(result.as_ref().ok().copied());
    if let Some(path) = &options.timings {
        if let Err(error) = std::fs::write(path, timings.to_json()) {
            eprintln!("listener: warning: writing {}: {error}", path.display());
        }
    }
    let stop = result.and_then(|reason| stop.map(|()| reason))?;
    Ok(stop)
}

/// How this listener came by the domain's monitor ring.
#[derive(Debug, Clone, Copy)]
enum Claim {
    /// It made the ring (`XEN_VM_EVENT_ENABLE`).
    Enabled(EvtchnPort),
    /// It took over the ring of a listener that died (`XEN_VM_EVENT_ATTACH`).
    TakenOver(EvtchnPort),
}

impl Claim {
    /// Xen's end of the ring's event channel.
    fn port(self) -> EvtchnPort {
        match self {
            Claim::Enabled(port) | Claim::TakenOver(port) => port,
        }
    }
}

/// Makes the domain's monitor ring, or takes over one whose listener died; refuses one
/// with a live listener.
fn claim_ring(privcmd: &Privcmd, domid: DomId) -> Result<Claim> {
    match monitor_enable(privcmd, domid) {
        Ok(port) => return Ok(Claim::Enabled(port)),
        Err(error) if !error.is(Errno::EBUSY) => return Err(error),
        Err(_) => {}
    }
    match monitor_attach(privcmd, domid) {
        Ok(port) => Ok(Claim::TakenOver(port)),
        Err(error) if error.is(Errno::EBUSY) => Err(Error::invalid(
            format!("monitoring domain {}", domid.0),
            "another listener monitors it (listener disable ends that)",
        )),
        Err(error) => Err(error),
    }
}

/// Whether the monitored domain can still run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// It exists and has not shut down.
    Running,
    /// Shut down (powered off, crashed, ...) and kept by the toolstack: it never runs again,
    /// but its ring is still there to disable.
    ShutDown,
    /// Destroyed or being destroyed: nothing is left to ask Xen about.
    Gone,
}

impl Liveness {
    /// Asks Xen. No domain with this id (`ESRCH`, also when Xen answers about the next
    /// domain) is gone; any other failure is an error, not a verdict.
    fn of(privcmd: &Privcmd, domid: DomId) -> Result<Liveness> {
        match domain_info(privcmd, domid) {
            Ok(info) if info.dying => Ok(Liveness::Gone),
            Ok(info) if info.shutdown => Ok(Liveness::ShutDown),
            Ok(_) => Ok(Liveness::Running),
            Err(error) if error.is(Errno::ESRCH) => Ok(Liveness::Gone),
            Err(error) => Err(error),
        }
    }
}

/// The `--access` pages as Xen will be told them, and how events' frames will be named.
/// For PV this reads the guest's P2M; a guest that published none can still be monitored
/// (events then have a null pfn, and the flag returned says that was reported), but its
/// pages cannot be named by pfn.
fn plan(
    privcmd: &Privcmd,
    domid: DomId,
    hvm: bool,
    requests: &[PageRequest],
) -> Result<(Vec<PageAccess>, FrameNames, bool)> {
    if hvm {
        return Ok((
            pages::translate(domid.0, requests, None)?,
            FrameNames::Hvm,
            false,
        ));
    }
    match P2m::read(privcmd, domid) {
        Ok(p2m) => Ok((
            pages::translate(domid.0, requests, Some(&p2m))?,
            FrameNames::pv(p2m.reverse()),
            false,
        )),
        Err(error) => match requests.first() {
            Some(request) => Err(Error {
                operation: format!("{} ({})", request.argument(), error.operation),
                ..error
            }),
            None => {
                eprintln!("listener: warning: {error}: events will have a null pfn");
                Ok((Vec::new(), FrameNames::pv(ReverseP2m::default()), true))
            }
        },
    }
}

fn open_trace(path: Option<&std::path::Path>) -> Result<Box<dyn Write>> {
    match path {
        None => Ok(Box::new(std::io::stdout())),
        Some(path) => std::fs::File::create(path)
            .map(|file| Box::new(std::io::BufWriter::new(file)) as Box<dyn Write>)
            .map_err(|error| {
                Error::invalid(format!("creating {}", path.display()), error.to_string())
            }),
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, caught for the whole run.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside the runtime); signals from now on are kept until read.
    fn catch() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let catch = |kind, name: &str| {
            signal(kind)
                .map_err(|error| Error::invalid(format!("catching {name}"), error.to_string()))
        };
        Ok(Signals {
            interrupt: catch(SignalKind::interrupt(), "SIGINT")?,
            terminate: catch(SignalKind::terminate(), "SIGTERM")?,
        })
    }
}

fn event_loop(
    runtime: &tokio::runtime::Runtime,
    signals: &mut Signals,
    session: &mut Session,
    count: Option<u64>,
    timeout: Option<Duration>,
) -> Result<Stop> {
    runtime.block_on(async {
        let raw = session.evtchn.as_fd().as_raw_fd();
        // SAFETY: `raw` is the event channel device's descriptor, which `session` keeps open
        // (and unchanged) until after this runtime, and so this AsyncFd, is gone.
        let fd = unsafe { AsyncFd::register_with_interest(raw, Interest::READABLE) }
            .map_err(|error| Error::invalid("watching the event channel", error.to_string()))?;
        let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(deadline);
        let mut liveness = tokio::time::interval(Duration::from_millis(500));
        // Requests may be waiting already (a vCPU faulted before we listened).
        session.drain()?;
        loop {
            if count.is_some_and(|count| session.seq >= count) {
                return Ok(Stop::Count);
            }
            tokio::select! {
                ready = fd.readable() => {
                    let mut guard = ready.map_err(|error| Error::invalid("waiting for events", error.to_string()))?;
                    while let Ok(port) = session.evtchn.pending() {
                        session.evtchn.unmask(port)?;
                    }
                    guard.clear_ready();
                    let woken = session.timings.enabled.then(Instant::now);
                    let answered = session.seq;
                    session.drain()?;
                    if let Some(woken) = woken.filter(|_| session.seq > answered) {
                        session.timings.wakeups += 1;
                        session.timings.drain_ns +=
                            u64::try_from(woken.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    }
                }
                _ = signals.interrupt.recv() => return Ok(Stop::Signal),
                _ = signals.terminate.recv() => return Ok(Stop::Signal),
                () = &mut deadline => return Ok(Stop::Timeout),
                _ = liveness.tick() => {
                    match Liveness::of(&session.privcmd, session.domid) {
                        Ok(Liveness::Running) => {}
                        Ok(Liveness::ShutDown | Liveness::Gone) => return Ok(Stop::DomainGone),
                        // A failed look proves nothing: look again at the next tick.
                        Err(error) => eprintln!("listener: warning: {error}"),
                    }
                }
            }
        }
    })
}

impl Session<'_> {
    fn write(&mut self, record: &Record) -> Result<()> {
        let line = trace::render(record, self.format);
        let trace = &mut self.trace;
        self.timings
            .time(
                |t| &mut t.trace_ns,
                || writeln!(trace, "{line}").and_then(|()| trace.flush()),
            )
            .map_err(|error| Error::invalid("writing the trace", error.to_string()))
    }

    /// [`Session::apply_access`] with the guest paused: the new default supersedes every
    /// page's access at once and the pages' own come one by one after it, so a running guest
    /// would write pages in between that are rwx for a moment, unreported.
    fn apply_access_paused(&self, default: Access, pages: &[PageAccess]) -> Result<()> {
        domain_pause(&self.privcmd, self.domid)?;
        let applied = self.apply_access(default, pages);
        let resumed = domain_unpause(&self.privcmd, self.domid);
        applied.and(resumed)
    }

    /// Sets the default access, then each page's, in the order given (a later page wins);
    /// an error names the option that asked for it.
    fn apply_access(&self, default: Access, pages: &[PageAccess]) -> Result<()> {
        let named = |argument: String| {
            move |error: Error| Error {
                operation: format!("{} ({argument})", error.operation),
                ..error
            }
        };
        set_default_access(&self.privcmd, self.domid, self.frames, default)
            .map_err(named(format!("default access {default}")))?;
        for page in pages {
            set_frame_access(&self.privcmd, self.domid, page.frame(), page.access)
                .map_err(named(page.argument()))?;
        }
        Ok(())
    }

    /// Both names of a mem_access request's frame; on a frame the reverse P2M does not know,
    /// the P2M is read again (see [`FrameNames::name`]).
    fn frame(&mut self, frame: AccessFrame) -> Frame {
        let (privcmd, domid, warned) = (&self.privcmd, self.domid, &mut self.p2m_warned);
        self.names.name(frame, || match P2m::read(privcmd, domid) {
            Ok(p2m) => Some(p2m.reverse()),
            Err(error) => {
                if !std::mem::replace(warned, true) {
                    eprintln!("listener: warning: {error}: unknown frames get a null pfn");
                }
                None
            }
        })
    }

    /// Answers the `count` requests a dead listener left on the ring (taken over), then tells
    /// Xen; their events, flagged recovered, for the trace. A request that listener had
    /// answered in place without publishing the answer reads back as that answer (same
    /// vCPU, frame and address, no registers): it is answered again all the same.
    fn recover(&mut self, count: u32) -> Result<Vec<trace::Event>> {
        let mut events = Vec::new();
        while events.len() < count as usize {
            let Some(request) = self.ring.take_request() else {
                break;
            };
            events.push(self.answer(&request, true)?);
        }
        self.most_pending = self.most_pending.max(events.len() as u64);
        self.ring.push_responses();
        // Always: the dead listener may have published answers without notifying Xen, and
        // their vCPUs wait until Xen reads them.
        self.evtchn.notify(self.local_port)?;
        Ok(events)
    }

    /// Answers every request on the ring, then tells Xen.
    fn drain(&mut self) -> Result<()> {
        loop {
            let mut pending = 0;
            while let Some(request) = self.ring.take_request() {
                pending += 1;
                let event = self.answer(&request, false)?;
                self.write(&Record::Event(event))?;
            }
            self.most_pending = self.most_pending.max(pending);
            if self.ring.push_responses() {
                let (evtchn, port) = (&self.evtchn, self.local_port);
                self.timings
                    .time(|t| &mut t.notify_ns, || evtchn.notify(port))?;
            }
            if !self.ring.final_check_for_requests() {
                return Ok(());
            }
        }
    }

    /// Answers one request (`recovered`: one a dead listener left); its event.
    fn answer(&mut self, request: &VmEvent, recovered: bool) -> Result<trace::Event> {
        self.seq += 1;
        // Only a mem_access request has a frame (the union `u` holds another member else).
        let frame = request.access_frame();
        let names = match frame {
            Some(frame) => self.frame(frame),
            None => Frame::default(),
        };
        let on_event = self.on_event.for_request(request);
        if let (Some(frame), OnEvent::Relax) = (frame, on_event) {
            // By the frame Xen named (for PV the mfn), known to the reverse P2M or not: that
            // is the frame Xen accepts, and the vCPU must not fault on it again.
            let (privcmd, domid) = (&self.privcmd, self.domid);
            self.timings.time(
                |t| &mut t.set_access_ns,
                || set_frame_access(privcmd, domid, frame, Access::Rwx),
            )?;
        }
        self.timings.events += 1;
        let mut response = request.response();
        if frame.is_some() && on_event == OnEvent::Emulate {
            response.flags |= VM_EVENT_FLAG_EMULATE;
        }
        self.ring
            .put_response(&response)
            .map_err(|_| Error::invalid("answering an event", "the ring has no room for it"))?;
        let mut event = trace::event(self.seq, request, names, on_event.name(), recovered);
        event.ns = self
            .header_at
            .map(|at| u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Ok(event)
    }

    /// Leaves the guest as it found it, whatever stopped the loop.
    fn teardown(mut self, stop: Option<Stop>) -> Result<()> {
        // Looked at again now: the loop may have stopped for another reason meanwhile. A
        // failed look is taken as a live domain (the teardown then says what failed).
        let liveness = Liveness::of(&self.privcmd, self.domid).unwrap_or(Liveness::Running);
        let gone = liveness == Liveness::Gone;
        let mut first_error = None;
        let mut keep = |result: Result<()>| {
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        };
        match liveness {
            Liveness::Running => {
                // The guest is stopped for the teardown: a vCPU that faulted between our
                // last drain and disabling would have its request dropped (Xen releases it
                // when the ring goes, and with no ring its page is relaxed without an
                // event), a write the trace would miss.
                let paused = domain_pause(&self.privcmd, self.domid);
                // Answer what is pending, so no vCPU waits for the ring to go.
                keep(self.drain());
                keep(set_default_access(
                    &self.privcmd,
                    self.domid,
                    self.frames,
                    Access::Rwx,
                ));
                keep(monitor_disable(&self.privcmd, self.domid));
                keep(paused.and_then(|()| domain_unpause(&self.privcmd, self.domid)));
            }
            Liveness::ShutDown => {
                // It never runs again: answer and let the ring go, rights left as they are.
                keep(self.drain());
                keep(monitor_disable(&self.privcmd, self.domid));
            }
            Liveness::Gone => {}
        }
        if let Err(error) = self.evtchn.unbind(self.local_port) {
            if !gone {
                first_error.get_or_insert(error);
            }
        }
        let end = Record::End(trace::End {
            reason: stop.map(Stop::as_str).unwrap_or("error").into(),
            events: self.seq,
            most_pending: self.most_pending,
        });
        if let Err(error) = self.write(&end) {
            first_error.get_or_insert(error);
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
