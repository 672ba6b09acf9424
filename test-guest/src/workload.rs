//! The page workload: a deterministic byte pattern over [`BUFFER_PAGES`] pages, and
//! the FNV-1a 64 checksum of the buffer as written.
//!
//! The guest writes the pattern into a page-aligned buffer at gfn [`BUFFER_GFN`],
//! page 0 first and every
//! byte of a page in order, reads it all back in the same order, and prints the
//! checksum of what it read. The host harness (xtask) compares that with
//! [`expected_checksum`], so both sides share this module.
//!
//! Each byte depends on its page and offset (a multiplicative hash of
//! `page * 4096 + offset`), so a lost write, a page mapped in the wrong place or a
//! zero page shows up as a mismatch.

use crate::frames::PAGE_SIZE;

/// Pages in the guest's buffer.
pub const BUFFER_PAGES: usize = 16;

/// Bytes in the guest's buffer.
pub const BUFFER_BYTES: usize = BUFFER_PAGES * PAGE_SIZE;

/// The gfn (pseudo-physical frame) of the buffer's page 0: the buffer occupies gfns
/// `BUFFER_GFN` to `BUFFER_GFN + BUFFER_PAGES - 1`. Fixed by the linker script
/// (`guest.ld` places it at virtual 0x200000, and virtual = pseudo-physical).
pub const BUFFER_GFN: u64 = 0x200;

/// The byte at `offset` of page `page`: the top byte of
/// `(page * 4096 + offset) * 0x9E3779B1` (mod 2^32), xor `0x5A`.
pub const fn pattern_byte(page: usize, offset: usize) -> u8 {
    let index = (page * PAGE_SIZE + offset) as u32;
    ((index.wrapping_mul(0x9E37_79B1) >> 24) as u8) ^ 0x5A
}

/// FNV-1a, 64-bit (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The hash of nothing.
    pub const fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    /// Hashes one more byte.
    pub const fn byte(self, byte: u8) -> Self {
        Self((self.0 ^ byte as u64).wrapping_mul(Self::PRIME))
    }

    /// Hashes more bytes.
    pub fn bytes(self, bytes: &[u8]) -> Self {
        bytes.iter().fold(self, |h, &b| h.byte(b))
    }

    /// The hash value.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv1a64::new().bytes(bytes).finish()
}

/// The checksum the guest prints when every byte reads back as written: FNV-1a 64
/// over the whole buffer, page 0 offset 0 first.
///
/// ```
/// use test_guest::workload::{expected_checksum, fill, fnv1a64, BUFFER_BYTES};
///
/// let mut buf = vec![0u8; BUFFER_BYTES];
/// fill(|page, offset, byte| buf[page * 4096 + offset] = byte);
/// assert_eq!(fnv1a64(&buf), expected_checksum());
/// ```
pub fn expected_checksum() -> u64 {
    let mut h = Fnv1a64::new();
    for page in 0..BUFFER_PAGES {
        for offset in 0..PAGE_SIZE {
            h = h.byte(pattern_byte(page, offset));
        }
    }
    h.finish()
}

/// Writes the pattern: calls `write(page, offset, byte)` for every byte, in order.
pub fn fill(mut write: impl FnMut(usize, usize, u8)) {
    for page in 0..BUFFER_PAGES {
        for offset in 0..PAGE_SIZE {
            write(page, offset, pattern_byte(page, offset));
        }
    }
}

/// The first byte that did not read back as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Page index in the buffer.
    pub page: usize,
    /// Byte offset in the page.
    pub offset: usize,
    /// What was written.
    pub expected: u8,
    /// What was read.
    pub got: u8,
}

/// Reads the buffer back with `read(page, offset)`, in order, and checks every byte.
/// Returns the checksum of the bytes read, or the first mismatch.
pub fn verify(mut read: impl FnMut(usize, usize) -> u8) -> Result<u64, Mismatch> {
    let mut h = Fnv1a64::new();
    for page in 0..BUFFER_PAGES {
        for offset in 0..PAGE_SIZE {
            let got = read(page, offset);
            let expected = pattern_byte(page, offset);
            if got != expected {
                return Err(Mismatch {
                    page,
                    offset,
                    expected,
                    got,
                });
            }
            h = h.byte(got);
        }
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn fnv1a64_reference_vectors() {
        // The FNV reference test vectors (draft-eastlake-fnv, "FNV-1a 64").
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn pattern_values() {
        // Values computed independently (python3, same definition).
        let first: [u8; 8] = core::array::from_fn(|o| pattern_byte(0, o));
        assert_eq!(first, [0x5a, 0xc4, 0x66, 0x80, 0x22, 0x4d, 0xef, 0x09]);
        let page1: [u8; 4] = core::array::from_fn(|o| pattern_byte(1, o));
        assert_eq!(page1, [0x2d, 0x4f, 0xee, 0x08]);
        assert_eq!(pattern_byte(BUFFER_PAGES - 1, PAGE_SIZE - 1), 0x81);
    }

    #[test]
    fn pages_differ() {
        for page in 1..BUFFER_PAGES {
            let same = (0..PAGE_SIZE)
                .filter(|&o| pattern_byte(page, o) == pattern_byte(0, o))
                .count();
            assert!(same < PAGE_SIZE / 16, "page {page} too close to page 0");
        }
    }

    #[test]
    fn expected_checksum_value() {
        // FNV-1a 64 of the 65536-byte buffer, computed independently with python3:
        // bytes(pattern_byte(p, o) for p in range(16) for o in range(4096)).
        assert_eq!(expected_checksum(), 0xebeb_9254_ff2b_d002);
    }

    #[test]
    fn fill_then_verify_round_trips() {
        let mut buf = vec![0u8; BUFFER_BYTES];
        fill(|p, o, b| buf[p * PAGE_SIZE + o] = b);
        assert_eq!(fnv1a64(&buf), expected_checksum());
        assert_eq!(fnv1a64(&buf[..PAGE_SIZE]), 0x4c1c_d6e2_1f4f_1d22);
        assert_eq!(
            verify(|p, o| buf[p * PAGE_SIZE + o]),
            Ok(expected_checksum())
        );
    }

    #[test]
    fn verify_reports_first_mismatch() {
        let mut buf = vec![0u8; BUFFER_BYTES];
        fill(|p, o, b| buf[p * PAGE_SIZE + o] = b);
        buf[5 * PAGE_SIZE + 100] ^= 0xff;
        buf[9 * PAGE_SIZE] ^= 1;
        let expected = pattern_byte(5, 100);
        assert_eq!(
            verify(|p, o| buf[p * PAGE_SIZE + o]),
            Err(Mismatch {
                page: 5,
                offset: 100,
                expected,
                got: expected ^ 0xff
            })
        );
    }

    #[test]
    fn zero_page_is_caught() {
        assert!(matches!(
            verify(|_, _| 0),
            Err(Mismatch {
                page: 0,
                offset: 0,
                expected: 0x5a,
                got: 0
            })
        ));
        // A page left as zeroes behind correct ones is caught on that page.
        assert!(matches!(
            verify(|p, o| if p == 7 { 0 } else { pattern_byte(p, o) }),
            Err(Mismatch {
                page: 7,
                got: 0,
                ..
            })
        ));
    }
}
