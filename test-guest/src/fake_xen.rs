//! The fake Xen of the host tests: the one test implementation of [`Hypervisor`].
//!
//! A [`FakeXen`] records every hypercall it is asked, in order, and answers each from
//! its [`Script`]: a closure for the tests that only need an answer ([`FakeXen::new`]:
//! `|_| 0`, `|_| -22`, or one that looks at the call), or ([`FakeXen::of`]) a model of
//! the part of Xen a module drives (an L1 entry, a page's frame, grant and M2P
//! state...) for the tests that need Xen's effects. A script reads and writes through
//! the call's pointer arguments with [`read`] and [`write`], as Xen would.

use core::cell::RefCell;
use core::ops::Deref;
use std::vec::Vec;

use crate::hypercall::{Hypercall, Hypervisor};

/// How a [`FakeXen`] answers one hypercall.
pub(crate) trait Script {
    /// Xen's raw result (`rax`) for `call`, after its effects.
    ///
    /// # Safety
    ///
    /// [`Hypervisor::hypercall`]'s: every pointer argument is valid for what Xen does
    /// with it for this hypercall.
    unsafe fn answer(&self, call: Hypercall) -> i64;
}

/// A closure as a script (see [`FakeXen::new`]): it answers from the call alone, and
/// may use the pointer arguments only inside `unsafe` blocks that rely on the
/// caller's contract (it runs inside [`Hypervisor::hypercall`]).
pub(crate) struct Answer<F>(F);

impl<F: Fn(&Hypercall) -> i64> Script for Answer<F> {
    unsafe fn answer(&self, call: Hypercall) -> i64 {
        (self.0)(&call)
    }
}

/// A script borrowed, so a test keeps the model to look at its state.
impl<S: Script> Script for &S {
    unsafe fn answer(&self, call: Hypercall) -> i64 {
        // SAFETY: this fn's contract, passed on.
        unsafe { (**self).answer(call) }
    }
}

/// A fake Xen: records each call, then answers it from `script`. Derefs to its script,
/// so a model's state reads as the fake's.
pub(crate) struct FakeXen<S> {
    recorded: RefCell<Vec<Hypercall>>,
    script: S,
}

impl<F: Fn(&Hypercall) -> i64> FakeXen<Answer<F>> {
    /// A fake Xen that answers with `answer`, no calls yet.
    pub(crate) fn new(answer: F) -> Self {
        FakeXen::of(Answer(answer))
    }
}

impl<S: Script> FakeXen<S> {
    /// A fake Xen that answers with `model`, no calls yet.
    pub(crate) fn of(model: S) -> Self {
        Self {
            recorded: RefCell::new(Vec::new()),
            script: model,
        }
    }
}

impl<S> FakeXen<S> {
    /// The calls so far, in order.
    pub(crate) fn calls(&self) -> Vec<Hypercall> {
        self.recorded.borrow().clone()
    }
}

/// A fake Xen that answers every call with `rc`.
pub(crate) fn answering(rc: i64) -> FakeXen<impl Script> {
    FakeXen::new(move |_| rc)
}

impl<S> Deref for FakeXen<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.script
    }
}

impl<S: Script> Hypervisor for FakeXen<S> {
    unsafe fn hypercall(&self, call: Hypercall) -> i64 {
        self.recorded.borrow_mut().push(call);
        // SAFETY: this fn's contract, which is `answer`'s.
        unsafe { self.script.answer(call) }
    }
}

/// The `T` a pointer argument points to.
///
/// # Safety
///
/// `addr` points to a live, aligned `T` (a wrapper's argument, during its call).
pub(crate) unsafe fn read<T: Copy>(addr: u64) -> T {
    // SAFETY: this fn's contract.
    unsafe { (addr as *const T).read() }
}

/// Writes `value` where a pointer argument points, as Xen writes an OUT field.
///
/// # Safety
///
/// `addr` points to a live, aligned, writable `T` (a wrapper's argument, during its
/// call).
pub(crate) unsafe fn write<T>(addr: u64, value: T) {
    // SAFETY: this fn's contract.
    unsafe { (addr as *mut T).write(value) }
}
