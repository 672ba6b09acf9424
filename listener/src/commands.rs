//! The control commands: each opens the devices, asks Xen, and says what happened.

use libxc::evtchn::Evtchn;
use libxc::memory;
use libxc::monitor::{
    domain_is_hvm, monitor_disable, monitor_enable, monitor_get_capabilities, set_access_required,
    shadow_allocation_mib, RingMapping,
};
use libxc::p2m::P2m;
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{Access, DomId, Errno, Error, Result};
use libxc::{AccessFrame, FrameKind, Gfn, Mfn, Pfn};

use crate::ring_state::RingState;

fn open(domain: &str) -> Result<(Privcmd, DomId)> {
    let privcmd = Privcmd::open()?;
    Ok((privcmd, resolve_domain(domain)?))
}

pub fn enable(domain: &str) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    let port = match monitor_enable(&privcmd, domid) {
        Ok(port) => port,
        Err(error) if error.is(Errno::EBUSY) => {
            println!("domain {}: monitoring already enabled", domid.0);
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    // Prove the ring and its event channel are usable before saying so.
    let ring = RingMapping::map(&privcmd, domid)?;
    let evtchn = Evtchn::open()?;
    let local = evtchn.bind_interdomain(domid, port)?;
    evtchn.unbind(local)?;
    drop(ring);
    println!(
        "domain {}: monitoring enabled (ring mapped, event channel port {})",
        domid.0, port.0
    );
    Ok(())
}

pub fn disable(domain: &str) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    match monitor_disable(&privcmd, domid) {
        Ok(()) => println!("domain {}: monitoring disabled", domid.0),
        Err(error)
            if error.is(Errno::EINVAL) && RingState::of(&privcmd, domid)? == RingState::None =>
        {
            println!("domain {}: monitoring already disabled", domid.0)
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

pub fn status(domain: &str) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    let shadow = shadow_allocation_mib(&privcmd, domid)?;
    match RingState::of(&privcmd, domid)?.describe() {
        Some(listener) => {
            let kind = frame_kind(&privcmd, domid)?;
            let default = memory::get_access_of(&privcmd, domid, kind, None)?;
            println!(
                "domain {}: monitoring on\n{listener}\ndefault access: {default}\n\
                 shadow pool: {shadow} MiB",
                domid.0
            )
        }
        None => println!(
            "domain {}: monitoring off\nshadow pool: {shadow} MiB",
            domid.0
        ),
    }
    let capabilities = monitor_get_capabilities(&privcmd, domid)?;
    println!("monitor events: {}", capability_names(capabilities));
    Ok(())
}

/// `XEN_DOMCTL_MONITOR_EVENT_*` bits by name (public/domctl.h), `none` for none.
fn capability_names(capabilities: u32) -> String {
    const NAMES: [&str; 14] = [
        "write_ctrlreg",
        "mov_to_msr",
        "singlestep",
        "software_breakpoint",
        "guest_request",
        "debug_exception",
        "cpuid",
        "privileged_call",
        "interrupt",
        "desc_access",
        "emul_unimplemented",
        "inguest_pagefault",
        "vmexit",
        "mem_access",
    ];
    let names: Vec<String> = (0..32)
        .filter(|bit| capabilities & (1 << bit) != 0)
        .map(|bit| {
            NAMES
                .get(bit as usize)
                .map_or_else(|| format!("event{bit}"), |name| name.to_string())
        })
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" ")
    }
}

/// The frames a command names.
pub enum Frames<'a> {
    /// The domain's default.
    Default,
    /// Guest frame numbers (HVM).
    Guest(&'a [u64]),
    /// Machine frames (PV).
    Machine(&'a [u64]),
}

/// What Xen is asked about (`None`: the default): Xen names an HVM guest's frames by guest
/// frame and a PV guest's by machine frame, so `--mfn` is for PV only and a PV guest's
/// `--pfn` goes through its P2M. `kind`: how Xen names this domain's frames.
fn targets(
    privcmd: &Privcmd,
    domid: DomId,
    kind: FrameKind,
    frames: Frames,
) -> Result<Vec<(Option<AccessFrame>, String)>> {
    let (list, named) = match frames {
        Frames::Default => return Ok(vec![(None, "default".into())]),
        Frames::Guest(list) => (list, "pfn"),
        Frames::Machine(list) => (list, "mfn"),
    };
    let hvm = kind == FrameKind::Gfn;
    if hvm && named == "mfn" {
        return Err(Error::invalid(
            format!("naming frames of domain {} by mfn", domid.0),
            "it is an HVM guest: name its frames with --pfn",
        ));
    }
    // A PV guest's frames are machine frames for Xen: translate pfns through the P2M the
    // guest publishes (Xen still checks every frame is the guest's).
    let p2m = if !hvm && named == "pfn" {
        Some(P2m::read(privcmd, domid).map_err(|error| Error {
            reason: format!("{}; name its frames by machine frame (--mfn)", error.reason),
            ..error
        })?)
    } else {
        None
    };
    list.iter()
        .map(|&number| {
            let frame = match (&p2m, hvm) {
                (Some(p2m), _) => AccessFrame::Mfn(p2m.mfn(Pfn(number)).ok_or_else(|| {
                    Error::invalid(
                        format!("translating pfn {number:#x} of domain {}", domid.0),
                        format!("its P2M has {} entries and no frame there", p2m.len()),
                    )
                })?),
                (None, true) => AccessFrame::Gfn(Gfn(number)),
                (None, false) => AccessFrame::Mfn(Mfn(number)),
            };
            Ok((Some(frame), format!("{named} {number:#x}")))
        })
        .collect()
}

/// How Xen names the domain's frames in `XENMEM_access_op`: an HVM guest's by gfn, a PV
/// guest's by machine frame (said so with `XENMEM_access_op_mfn`, or Xen refuses the call).
fn frame_kind(privcmd: &Privcmd, domid: DomId) -> Result<FrameKind> {
    Ok(FrameKind::of_domain(domain_is_hvm(privcmd, domid)?))
}

/// The error with what it was about.
fn about(described: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |error| Error {
        operation: format!("{} ({described})", error.operation),
        ..error
    }
}

pub fn set_access(domain: &str, frames: Frames, access: Access) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    let kind = frame_kind(&privcmd, domid)?;
    for (frame, described) in targets(&privcmd, domid, kind, frames)? {
        match frame {
            Some(frame) => memory::set_frame_access(&privcmd, domid, frame, access),
            None => memory::set_default_access(&privcmd, domid, kind, access),
        }
        .map_err(about(&described))?;
        println!("domain {}: {described} access set to {access}", domid.0);
    }
    Ok(())
}

pub fn get_access(domain: &str, frames: Frames) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    let kind = frame_kind(&privcmd, domid)?;
    for (frame, described) in targets(&privcmd, domid, kind, frames)? {
        let access =
            memory::get_access_of(&privcmd, domid, kind, frame).map_err(about(&described))?;
        println!("domain {}: {described} access {access}", domid.0);
    }
    Ok(())
}

pub fn access_required(domain: &str, required: bool) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    set_access_required(&privcmd, domid, required)?;
    let state = if required { "on" } else { "off" };
    println!("domain {}: access_required {state}", domid.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::capability_names;

    #[test]
    fn capabilities_are_named_by_bit() {
        assert_eq!(capability_names(0), "none");
        assert_eq!(capability_names(1 << 13), "mem_access");
        assert_eq!(
            capability_names(1 | 1 << 4 | 1 << 20),
            "write_ctrlreg guest_request event20"
        );
    }
}
