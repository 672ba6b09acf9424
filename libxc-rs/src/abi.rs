//! What this crate's own Xen structs owe to [`xen_abi`]'s generated ones.
//!
//! A few structs of the public API keep their own shape (a union given as bytes or as the
//! one member a listener reads, a guest handle as the `u64` address of a hypercall buffer);
//! [`same_layout!`] makes the crate fail to compile when one of them is not laid out as
//! the struct bindgen generated from Xen's header: same size, each field at the offset of
//! its counterpart.

/// `same_layout!(Ours, Generated, { our_field => their_field, ... })`: compile-time checks
/// that both have one size and each pair of fields one offset (`a.b` names a nested field).
macro_rules! same_layout {
    ($ours:ty, $theirs:ty, { $($a:ident $(. $a2:ident)* => $b:ident $(. $b2:ident)*),* $(,)? }) => {
        const _: () = {
            assert!(::core::mem::size_of::<$ours>() == ::core::mem::size_of::<$theirs>());
            $(
                assert!(
                    ::core::mem::offset_of!($ours, $a $(. $a2)*)
                        == ::core::mem::offset_of!($theirs, $b $(. $b2)*)
                );
            )*
        };
    };
}
pub(crate) use same_layout;

/// The member `T` of a generated union struct, read from its storage (a union's members
/// all start at its first byte).
pub(crate) fn member<T: zerocopy::FromBytes>(
    union: &(impl zerocopy::IntoBytes + zerocopy::Immutable),
) -> T {
    match T::read_from_prefix(union.as_bytes()) {
        Ok((value, _)) => value,
        Err(_) => panic!("a union member larger than its union"),
    }
}

/// A generated `#define` (bindgen gives `u32`) as the `u8` a struct field takes; a value
/// that does not fit fails the build.
pub(crate) const fn u8_of(value: u32) -> u8 {
    assert!(value <= u8::MAX as u32);
    value as u8
}

/// A generated `#define` as a `u16`; a value that does not fit fails the build.
pub(crate) const fn u16_of(value: u32) -> u16 {
    assert!(value <= u16::MAX as u32);
    value as u16
}
