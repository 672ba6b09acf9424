//! Just enough of the xenstore wire protocol (`xen/include/public/io/xs_wire.h`) over
//! `/dev/xen/xenbus` to turn a domain's name into its id, as `xl domid` does.

use std::fs::OpenOptions;
use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::DomId;

/// `XS_DIRECTORY`
const XS_DIRECTORY: u32 = 1;
/// `XS_READ`
const XS_READ: u32 = 2;
/// `XS_ERROR`
const XS_ERROR: u32 = 16;

/// One request, one reply: `struct xsd_sockmsg { type, req_id, tx_id, len }` then the body.
fn request(kind: u32, path: &str) -> Result<Option<Vec<u8>>> {
    let operation = format!(
        "xenstore {}",
        if kind == XS_READ { "read" } else { "directory" }
    );
    let io = |error: std::io::Error| Error::from_io(format!("{operation} {path}"), &error, "");
    let mut bus = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/xen/xenbus")
        .map_err(io)?;
    let mut body = path.as_bytes().to_vec();
    body.push(0);
    let mut message = Vec::with_capacity(16 + body.len());
    for word in [kind, 0, 0, body.len() as u32] {
        message.extend_from_slice(&word.to_ne_bytes());
    }
    message.extend_from_slice(&body);
    bus.write_all(&message).map_err(io)?;
    let mut header = [0u8; 16];
    bus.read_exact(&mut header).map_err(io)?;
    let word = |index: usize| {
        u32::from_ne_bytes(
            header[index * 4..index * 4 + 4]
                .try_into()
                .expect("4 bytes"),
        )
    };
    let mut reply = vec![0u8; word(3) as usize];
    bus.read_exact(&mut reply).map_err(io)?;
    if word(0) == XS_ERROR {
        return Ok(None);
    }
    Ok(Some(reply))
}

/// A domain given by id (`7`) or by name (`guest`): its id.
pub fn resolve_domain(spec: &str) -> Result<DomId> {
    if let Ok(id) = spec.parse::<u16>() {
        return Ok(DomId(id));
    }
    let listing = request(XS_DIRECTORY, "/local/domain")?.unwrap_or_default();
    for id in listing.split(|&byte| byte == 0).filter(|id| !id.is_empty()) {
        let id = String::from_utf8_lossy(id);
        let name = request(XS_READ, &format!("/local/domain/{id}/name"))?;
        if name.as_deref() == Some(spec.as_bytes()) {
            if let Ok(id) = id.parse() {
                return Ok(DomId(id));
            }
        }
    }
    Err(Error::invalid(
        format!("finding domain {spec:?}"),
        "no domain has that name (xl list shows the domains)",
    ))
}
