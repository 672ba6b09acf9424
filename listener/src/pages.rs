//! `listener monitor --access PFN=ACCESS`: per-page access rights, named the way a person
//! thinks of a guest's pages (by guest frame number) and translated to the frames Xen names.
//!
//! Xen names an HVM guest's frames by guest frame (the pfn is the gfn), and a PV guest's by
//! machine frame (its frame numbers are the guest's own business): a PV pfn goes through the
//! P2M the guest publishes, read before monitoring starts, so a bad argument is refused
//! before anything changes in the guest.

use libxc::p2m::P2m;
use libxc::{Access, AccessFrame, Error, Gfn, Mfn, Pfn, Result};
use listener::record::PageRecord;

/// One `--access PFN=ACCESS` as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The guest frame number.
    pub pfn: u64,
    /// The access it gets.
    pub access: Access,
}

impl PageRequest {
    /// The argument as a person wrote it (normalised), for error messages.
    pub fn argument(&self) -> String {
        format!("--access {:#x}={}", self.pfn, self.access)
    }
}

/// Parses `PFN=ACCESS` (the pfn decimal or 0x-hexadecimal), for clap, whose error then names
/// the argument and the value.
pub fn parse_request(text: &str) -> std::result::Result<PageRequest, String> {
    let (pfn, access) = text
        .split_once('=')
        .ok_or_else(|| format!("expected PFN=ACCESS, such as 0x200=rw; {text:?} has no '='"))?;
    let pfn = crate::parse_number(pfn).map_err(|error| format!("bad pfn: {error}"))?;
    let access = access.parse::<Access>()?;
    Ok(PageRequest { pfn, access })
}

/// A page's access as applied: the pfn asked for, and for a PV guest the machine frame it
/// named at setup (what Xen is told). The `access` entries of the trace's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageAccess {
    /// The guest frame number.
    pub pfn: u64,
    /// Its machine frame (PV); `None` for HVM, where Xen takes the pfn.
    pub mfn: Option<Mfn>,
    /// The access.
    pub access: Access,
}

impl PageAccess {
    /// The page as the trace's header lists it.
    pub fn record(&self) -> PageRecord {
        PageRecord {
            pfn: self.pfn,
            mfn: self.mfn.map(|mfn| mfn.0),
            access: self.access.name().into(),
        }
    }

    /// The frame Xen's `XENMEM_access_op` takes for this page.
    pub fn frame(&self) -> AccessFrame {
        match self.mfn {
            Some(mfn) => AccessFrame::Mfn(mfn),
            None => AccessFrame::Gfn(Gfn(self.pfn)),
        }
    }

    /// The argument that asked for it, for error messages.
    pub fn argument(&self) -> String {
        PageRequest {
            pfn: self.pfn,
            access: self.access,
        }
        .argument()
    }
}

/// Translates the requests of a domain: `p2m` is `None` for an HVM guest (its pfns are what
/// Xen takes) and the guest's P2M for a PV one. A pfn the P2M has no frame for is refused,
/// naming the argument.
pub fn translate(
    domain: u16,
    requests: &[PageRequest],
    p2m: Option<&P2m>,
) -> Result<Vec<PageAccess>> {
    requests
        .iter()
        .map(|request| {
            let Some(p2m) = p2m else {
                return Ok(PageAccess {
                    pfn: request.pfn,
                    mfn: None,
                    access: request.access,
                });
            };
            let mfn = p2m.mfn(Pfn(request.pfn)).ok_or_else(|| {
                let reason = if request.pfn >= p2m.len() as u64 {
                    format!(
                        "pfn {:#x} is beyond the P2M of domain {domain}, which ends at pfn {:#x}",
                        request.pfn,
                        p2m.len()
                    )
                } else {
                    format!(
                        "the P2M of domain {domain} has no frame at pfn {:#x} (a hole)",
                        request.pfn
                    )
                };
                Error::invalid(request.argument(), reason)
            })?;
            Ok(PageAccess {
                pfn: request.pfn,
                mfn: Some(mfn),
                access: request.access,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_request("0x200=rw"),
            Ok(PageRequest {
                pfn: 0x200,
                access: Access::Rw
            })
        );
        assert_eq!(parse_request("17=n2rwx").unwrap().pfn, 17);
        assert!(parse_request("0x200").unwrap_err().contains("PFN=ACCESS"));
        assert!(parse_request("0x200=rwxx")
            .unwrap_err()
            .contains("unknown access \"rwxx\""));
        assert!(parse_request("zz=rw").unwrap_err().contains("bad pfn"));
        assert!(parse_request("=rw").unwrap_err().contains("bad pfn"));
    }

    #[test]
    fn pv_pfns_become_machine_frames_and_hvm_pfns_stay() {
        let requests = [
            PageRequest {
                pfn: 2,
                access: Access::Rw,
            },
            PageRequest {
                pfn: 0,
                access: Access::N,
            },
        ];
        let p2m = P2m::from_entries(vec![0x1000, u64::MAX, 0x1234]);
        let pages = translate(7, &requests, Some(&p2m)).unwrap();
        assert_eq!(
            pages,
            [
                PageAccess {
                    pfn: 2,
                    mfn: Some(Mfn(0x1234)),
                    access: Access::Rw
                },
                PageAccess {
                    pfn: 0,
                    mfn: Some(Mfn(0x1000)),
                    access: Access::N
                },
            ]
        );
        assert_eq!(pages[0].frame(), AccessFrame::Mfn(Mfn(0x1234)));
        let pages = translate(7, &requests, None).unwrap();
        assert_eq!(
            (pages[0].mfn, pages[0].frame()),
            (None, AccessFrame::Gfn(Gfn(2)))
        );
    }

    #[test]
    fn pfns_beyond_the_p2m_or_in_a_hole_are_refused_naming_the_argument() {
        let p2m = P2m::from_entries(vec![0x1000, u64::MAX, 0x1234]);
        let request = |pfn| PageRequest {
            pfn,
            access: Access::Rx,
        };
        let error = translate(7, &[request(0), request(3)], Some(&p2m)).unwrap_err();
        assert_eq!(error.operation, "--access 0x3=rx");
        assert!(
            error.reason.contains("beyond the P2M of domain 7"),
            "{error}"
        );
        let error = translate(7, &[request(1)], Some(&p2m)).unwrap_err();
        assert_eq!(error.operation, "--access 0x1=rx");
        assert!(error.reason.contains("a hole"), "{error}");
    }
}
