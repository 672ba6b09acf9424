//! The control commands: each opens the devices, asks Xen, and says what happened.

use libxc::evtchn::Evtchn;
use libxc::memory::{get_mem_access, set_mem_access, AccessTarget};
use libxc::monitor::{monitor_disable, monitor_enable, shadow_allocation_mib, RingMapping};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{Access, DomId, Error, Result};

const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const ENODEV: i32 = 19;

fn open(domain: &str) -> Result<(Privcmd, DomId)> {
    let privcmd = Privcmd::open()?;
    Ok((privcmd, resolve_domain(domain)?))
}

/// Whether the domain has a monitor ring: its default access answers only then.
fn monitored(privcmd: &Privcmd, domain: DomId) -> Result<Option<Access>> {
    match get_mem_access(privcmd, domain, None) {
        Ok(access) => Ok(Some(access)),
        Err(error) if error.errno == Some(ENODEV) => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn enable(domain: &str) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    let port = match monitor_enable(&privcmd, domid) {
        Ok(port) => port,
        Err(error) if error.errno == Some(EBUSY) => {
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
        Err(error) if error.errno == Some(EINVAL) && monitored(&privcmd, domid)?.is_none() => {
            println!("domain {}: monitoring already disabled", domid.0)
        }
        Err(error) => return Err(error),
    }
    Ok(())
}

pub fn status(domain: &str) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    let shadow = shadow_allocation_mib(&privcmd, domid)?;
    match monitored(&privcmd, domid)? {
        Some(default) => println!(
            "domain {}: monitoring on\ndefault access: {default}\nshadow pool: {shadow} MiB",
            domid.0
        ),
        None => println!(
            "domain {}: monitoring off\nshadow pool: {shadow} MiB",
            domid.0
        ),
    }
    Ok(())
}

fn targets(pfns: &[u64]) -> Vec<AccessTarget> {
    if pfns.is_empty() {
        vec![AccessTarget::Default]
    } else {
        pfns.iter()
            .map(|&first| AccessTarget::Frames { first, count: 1 })
            .collect()
    }
}

fn describe(target: AccessTarget) -> String {
    match target {
        AccessTarget::Default => "default".into(),
        AccessTarget::Frames { first, .. } => format!("pfn {first:#x}"),
    }
}

pub fn set_access(domain: &str, pfns: &[u64], access: Access) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    for target in targets(pfns) {
        set_mem_access(&privcmd, domid, target, access).map_err(|error| Error {
            operation: format!("{} ({})", error.operation, describe(target)),
            ..error
        })?;
        println!(
            "domain {}: {} access set to {access}",
            domid.0,
            describe(target)
        );
    }
    Ok(())
}

pub fn get_access(domain: &str, pfns: &[u64]) -> Result<()> {
    let (privcmd, domid) = open(domain)?;
    for target in targets(pfns) {
        let pfn = match target {
            AccessTarget::Default => None,
            AccessTarget::Frames { first, .. } => Some(first),
        };
        let access = get_mem_access(&privcmd, domid, pfn)?;
        println!("domain {}: {} access {access}", domid.0, describe(target));
    }
    Ok(())
}
