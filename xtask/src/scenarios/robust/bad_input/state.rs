//! What a wrong call must not change, read back from dom0 before and after each one: for the
//! test guest and the other guest, the default access, one frame's access, whether a ring
//! exists and has a listener (`XEN_VM_EVENT_ATTACH`: `-ENODEV` no ring, `-EBUSY` a listener
//! bound, else the ring's port), and the shadow pool (0 unless monitored).

use libxc::memory::MemAccessOp;
use libxc::monitor::shadow_allocation_mib;
use libxc::privcmd::Privcmd;
use libxc::DomId;
use libxc::FrameKind;

use super::super::raw::{self, Outcome, ATTACH, GET_ACCESS, MONITOR};
use super::table::{Row, Table};

/// A domain whose state is watched, and the frame whose access is read.
#[derive(Clone, Copy)]
pub struct Watched {
    pub domain: DomId,
    pub frame: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainState {
    default: Outcome,
    frame: Outcome,
    ring: Outcome,
    shadow_mib: Outcome,
}

fn get_access(privcmd: &Privcmd, domain: DomId, pfn: u64) -> Outcome {
    let op = MemAccessOp {
        op: FrameKind::Mfn.op(GET_ACCESS),
        domid: domain.0,
        pfn,
        ..MemAccessOp::default()
    };
    raw::access_op(privcmd, op, None, 0)
}

/// The state of each watched domain.
pub fn snapshot(privcmd: &Privcmd, watched: &[Watched]) -> Vec<DomainState> {
    watched.iter().map(|w| read(privcmd, *w)).collect()
}

fn read(privcmd: &Privcmd, watched: Watched) -> DomainState {
    DomainState {
        default: get_access(privcmd, watched.domain, !0),
        frame: get_access(privcmd, watched.domain, watched.frame),
        ring: raw::vm_event(privcmd, watched.domain, ATTACH, MONITOR),
        shadow_mib: shadow_allocation_mib(privcmd, watched.domain)
            .map(u64::from)
            .map_err(|error| error.errno.map_or(-1, |errno| errno as i32)),
    }
}

/// Makes the calls of one caller and keeps a row for each.
pub struct Checker<'a> {
    pub privcmd: &'a Privcmd,
    pub watched: Vec<Watched>,
    pub table: Table,
}

impl Checker<'_> {
    /// Makes `call`; its row expects one of `expected` (0: success) and nothing changed.
    pub fn row(&mut self, name: &str, expected: &[i32], call: impl FnOnce(&Privcmd) -> Outcome) {
        self.row_where(name, expected, call, |_| true);
    }

    /// As [`row`](Self::row), and a success must also return a value `good` accepts (else
    /// the row gets -1).
    pub fn row_where(
        &mut self,
        name: &str,
        expected: &[i32],
        call: impl FnOnce(&Privcmd) -> Outcome,
        good: impl FnOnce(u64) -> bool,
    ) {
        let before = snapshot(self.privcmd, &self.watched);
        let got = match call(self.privcmd) {
            Ok(value) if good(value) => 0,
            Ok(_) => -1,
            Err(errno) => errno,
        };
        let after = snapshot(self.privcmd, &self.watched);
        self.table.push(Row {
            name: format!("dom0: {name}"),
            expected: expected.to_vec(),
            got,
            unchanged: before == after,
        });
    }
}
