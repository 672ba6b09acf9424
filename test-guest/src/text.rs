//! Console output without `core::fmt`: strings, decimal and hex numbers.
//!
//! The guest's output is a line protocol read by the host harness, so the formats
//! are fixed here: decimal without padding, `0x`-prefixed lowercase hex, and the
//! checksum as exactly 16 lowercase hex digits.

/// Lowercase hex digits.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The digits of one number, kept in a small stack buffer.
#[derive(Clone, Copy, Debug)]
pub struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    /// The digits, most significant first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Writes the digits of `value` in base `radix` (2 to 16), least significant
    /// last, at the end of the buffer.
    fn new(mut value: u64, radix: u64) -> Self {
        let mut digits = Self {
            buf: [0; 20],
            start: 20,
        };
        loop {
            digits.start -= 1;
            digits.buf[digits.start] = HEX_DIGITS[(value % radix) as usize];
            value /= radix;
            if value == 0 {
                return digits;
            }
        }
    }
}

/// `value` in decimal, no padding (`u64::MAX` has 20 digits).
pub fn decimal(value: u64) -> Digits {
    Digits::new(value, 10)
}

/// `value` in lowercase hex, no prefix, no padding.
pub fn hex(value: u64) -> Digits {
    Digits::new(value, 16)
}

/// `value` as exactly 16 lowercase hex digits.
///
/// ```
/// assert_eq!(&test_guest::text::hex16(0xabc), b"0000000000000abc");
/// ```
pub fn hex16(value: u64) -> [u8; 16] {
    let mut out = [b'0'; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * i;
        *digit = HEX_DIGITS[((value >> shift) & 0xf) as usize];
    }
    out
}

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
pub trait Sink {
    /// Writes raw bytes.
    fn put(&mut self, bytes: &[u8]);

    /// Writes a string.
    fn put_str(&mut self, s: &str) {
        self.put(s.as_bytes());
    }

    /// Writes `value` in decimal.
    fn put_dec(&mut self, value: u64) {
        self.put(decimal(value).as_bytes());
    }

    /// Writes `value` in decimal, with a leading `-` when negative (a hypercall's
    /// raw return value, such as `-22`).
    fn put_i64(&mut self, value: i64) {
        if value < 0 {
            self.put(b"-");
        }
        self.put_dec(value.unsigned_abs());
    }

    /// Writes `value` as `0x` and lowercase hex digits.
    fn put_hex(&mut self, value: u64) {
        self.put(b"0x");
        self.put(hex(value).as_bytes());
    }

    /// Writes `value` as exactly 16 lowercase hex digits, no prefix.
    fn put_hex16(&mut self, value: u64) {
        self.put(&hex16(value));
    }

    /// Writes `bytes` with anything but printable ASCII replaced by `?`.
    fn put_sanitized(&mut self, bytes: &[u8]) {
        let mut chunk = [0u8; 64];
        for piece in bytes.chunks(chunk.len()) {
            for (out, &byte) in chunk.iter_mut().zip(piece) {
                *out = printable(byte);
            }
            self.put(&chunk[..piece.len()]);
        }
    }
}

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
    use std::vec::Vec;

    impl Sink for Vec<u8> {
        fn put(&mut self, bytes: &[u8]) {
            self.extend_from_slice(bytes);
        }
    }

    #[test]
    fn decimal_digits() {
        assert_eq!(decimal(0).as_bytes(), b"0");
        assert_eq!(decimal(7).as_bytes(), b"7");
        assert_eq!(decimal(4096).as_bytes(), b"4096");
        assert_eq!(decimal(u64::MAX).as_bytes(), b"18446744073709551615");
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(0).as_bytes(), b"0");
        assert_eq!(hex(0xab).as_bytes(), b"ab");
        assert_eq!(hex(u64::MAX).as_bytes(), b"ffffffffffffffff");
        assert_eq!(&hex16(0), b"0000000000000000");
        assert_eq!(&hex16(0xebeb_9254_ff2b_d002), b"ebeb9254ff2bd002");
        assert_eq!(&hex16(0x1f), b"000000000000001f");
    }

    #[test]
    fn sink_helpers_compose_a_line() {
        let mut out = Vec::new();
        out.put_str("TEST-GUEST FAIL page=");
        out.put_dec(3);
        out.put_str(" expected=");
        out.put_hex(0x5a);
        out.put_str(" sum=");
        out.put_hex16(0xdead);
        out.put_str(" cmdline=");
        out.put_sanitized(b"a=1\tb\n\xff~");
        assert_eq!(
            out,
            b"TEST-GUEST FAIL page=3 expected=0x5a sum=000000000000dead cmdline=a=1?b??~"
        );
    }

    #[test]
    fn signed_decimal() {
        let mut out = Vec::new();
        for value in [0, 7, -1, -22, i64::MIN, i64::MAX] {
            out.put_i64(value);
            out.put_str(" ");
        }
        assert_eq!(
            out,
            b"0 7 -1 -22 -9223372036854775808 9223372036854775807 ".as_slice()
        );
    }

    #[test]
    fn sanitized_long_input_is_complete() {
        let input: Vec<u8> = (0..200u8).collect();
        let mut out = Vec::new();
        out.put_sanitized(&input);
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
