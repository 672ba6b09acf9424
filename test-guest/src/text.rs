//! Console output through `core::fmt`: strings, decimal and hex numbers.
//!
//! The guest's output is a line protocol read by the host harness, so the formats
//! are fixed here: decimal without padding (`{}`), `0x`-prefixed lowercase hex
//! (`{:#x}`), and the checksum as exactly 16 lowercase hex digits (`{:016x}`).

use core::fmt::Write;

/// `byte` if it is printable ASCII (space to `~`), `?` otherwise: keeps one guest
/// line one console line.
pub const fn printable(byte: u8) -> u8 {
    if byte.is_ascii_graphic() || byte == b' ' {
        byte
    } else {
        b'?'
    }
}

/// Where text goes: the console in the guest, a buffer in tests.
///
/// Every [`core::fmt::Write`] is a `Sink` (a sink implements `write_str` and never
/// fails, so callers ignore `write!`'s [`core::fmt::Result`]); numbers go through
/// `write!` with the protocol's formats (see the module's doc).
pub trait Sink: Write {
    /// Writes a string.
    fn put_str(&mut self, s: &str) {
        let _ = self.write_str(s);
    }

    /// Writes `bytes` with anything but printable ASCII replaced by `?`.
    fn put_sanitized(&mut self, bytes: &[u8]) {
        let mut chunk = [0u8; 64];
        for piece in bytes.chunks(chunk.len()) {
            for (out, &byte) in chunk.iter_mut().zip(piece) {
                *out = printable(byte);
            }
            // Printable ASCII is UTF-8.
            if let Ok(text) = core::str::from_utf8(&chunk[..piece.len()]) {
                self.put_str(text);
            }
        }
    }
}

impl<W: Write + ?Sized> Sink for W {}

/// A fixed-size buffer that collects output and hands it on in pieces of at most
/// `N` bytes: whenever it fills up, and when the caller [`drain`](Self::drain)s it
/// (at the end of a line).
#[derive(Debug)]
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends `bytes`, passing the buffer's content to `out` each time it is full.
    pub fn push(&mut self, mut bytes: &[u8], mut out: impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            let room = N - self.len;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buf[self.len..self.len + now.len()].copy_from_slice(now);
            self.len += now.len();
            bytes = rest;
            if self.len == N {
                self.drain(&mut out);
            }
        }
    }

    /// Passes what the buffer holds (if anything) to `out` and empties it.
    pub fn drain(&mut self, mut out: impl FnMut(&[u8])) {
        if self.len > 0 {
            out(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    /// The protocol's formats, as `core::fmt` writes them: decimal without padding,
    /// `0x` and lowercase hex, the checksum as exactly 16 lowercase hex digits.
    #[test]
    fn number_formats() {
        for (value, digits) in [
            (0, "0"),
            (7, "7"),
            (4096, "4096"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(format!("{value}"), digits);
        }
        for (value, digits) in [(0, "0x0"), (0xab, "0xab"), (u64::MAX, "0xffffffffffffffff")] {
            assert_eq!(format!("{value:#x}"), digits);
        }
        for (value, digits) in [
            (0, "0000000000000000"),
            (0xebeb_9254_ff2b_d002, "ebeb9254ff2bd002"),
            (0x1f, "000000000000001f"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(format!("{value:016x}"), digits);
        }
        let signed: Vec<String> = [0, 7, -1, -22, i64::MIN, i64::MAX]
            .iter()
            .map(|value| format!("{value}"))
            .collect();
        assert_eq!(
            signed,
            [
                "0",
                "7",
                "-1",
                "-22",
                "-9223372036854775808",
                "9223372036854775807"
            ]
        );
    }

    #[test]
    fn a_sink_composes_a_line() {
        let mut out = String::new();
        out.put_str("TEST-GUEST FAIL ");
        let _ = write!(out, "page={} expected={:#x} sum={:016x}", 3, 0x5a, 0xdead);
        out.put_str(" cmdline=");
        out.put_sanitized(b"a=1\tb\n\xff~");
        assert_eq!(
            out,
            "TEST-GUEST FAIL page=3 expected=0x5a sum=000000000000dead cmdline=a=1?b??~"
        );
    }

    #[test]
    fn sanitized_long_input_is_complete() {
        let input: Vec<u8> = (0..200u8).collect();
        let mut out = String::new();
        out.put_sanitized(&input);
        let out = out.into_bytes();
        assert_eq!(out.len(), 200);
        assert_eq!(out[31], b'?');
        assert_eq!(out[32], b' ');
        assert_eq!(out[b'A' as usize], b'A');
        assert_eq!(out[127], b'?');
        assert_eq!(out[199], b'?');
    }

    #[test]
    fn line_buf_hands_on_full_pieces_then_the_rest() {
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        let mut line = LineBuf::<4>::new();
        line.push(b"ab", |p| pieces.push(p.to_vec()));
        assert!(pieces.is_empty());
        line.push(b"cdefghij", |p| pieces.push(p.to_vec()));
        assert_eq!(pieces, [b"abcd".to_vec(), b"efgh".to_vec()]);
        line.drain(|p| pieces.push(p.to_vec()));
        assert_eq!(pieces.last().unwrap(), b"ij");
        line.drain(|p| pieces.push(p.to_vec()));
        assert_eq!(pieces.len(), 3, "draining an empty buffer passes nothing");
    }
}
