//! The guest's command line (`start_info.cmd_line`, set by `extra=` in the xl configuration)
//! selects what it does after its boot workload: words separated by spaces.

/// The command line's words: separated by spaces (or NULs, for a raw `cmd_line` array),
/// empty words skipped.
fn words(cmdline: &[u8]) -> impl Iterator<Item = &[u8]> {
    cmdline
        .split(|&byte| byte == b' ' || byte == 0)
        .filter(|word| !word.is_empty())
}

/// Whether `word` is one of the command line's words.
pub fn has_word(cmdline: &[u8], word: &[u8]) -> bool {
    words(cmdline).any(|candidate| candidate == word)
}

/// The value of the first word `<key>=<value>`: the bytes after the first `=` (possibly
/// empty); `None` when no word has the key.
///
/// ```
/// use test_guest::cmdline::arg;
///
/// assert_eq!(arg(b"p2m pattern=read-sweep", b"pattern"), Some(b"read-sweep".as_slice()));
/// assert_eq!(arg(b"patterns=x", b"pattern"), None);
/// ```
pub fn arg<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    words(cmdline).find_map(|word| {
        word.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// The value of the first word `<key>=...` if that word is exactly `<key>=0x<hex>`: 1 to 16
/// hex digits (either case) after a `0x` or `0X` prefix, nothing else. `None` when no word
/// has the key, or when the first one that has it is malformed or does not fit 64 bits (a
/// later word with the same key does not make up for it: the scenario wrote something
/// wrong, and guessing would hide that).
///
/// ```
/// use test_guest::cmdline::hex_arg;
///
/// assert_eq!(hex_arg(b"ring-probe ring=0x1a2b3", b"ring"), Some(0x1a2b3));
/// assert_eq!(hex_arg(b"ring-probe ring=1a2b3", b"ring"), None);
/// ```
pub fn hex_arg(cmdline: &[u8], key: &[u8]) -> Option<u64> {
    let value = arg(cmdline, key)?;
    let digits = value
        .strip_prefix(b"0x")
        .or_else(|| value.strip_prefix(b"0X"))?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &byte| {
        let digit = char::from(byte).to_digit(16)?;
        Some((acc << 4) | u64::from(digit))
    })
}

/// The value of the first word `<key>=...` if that word is exactly `<key>=<decimal>`: 1 to
/// 20 ASCII digits, nothing else (no sign, no `0x`), that fit 64 bits. `None` when no word
/// has the key, or when the first one that has it is malformed or too big (as
/// [`hex_arg`]: a later word with the same key does not make up for it).
///
/// ```
/// use test_guest::cmdline::dec_arg;
///
/// assert_eq!(dec_arg(b"pattern=bench rounds=1024", b"rounds"), Some(1024));
/// assert_eq!(dec_arg(b"pattern=bench rounds=0x10", b"rounds"), None);
/// ```
pub fn dec_arg(cmdline: &[u8], key: &[u8]) -> Option<u64> {
    let digits = arg(cmdline, key)?;
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &byte| {
        let digit = char::from(byte).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// After the boot workload, keep rewriting the buffer and print `TEST-GUEST HEARTBEAT <n>`
/// now and then instead of powering off, so a scenario can watch the guest run (for example
/// while monitoring is switched on and off). The guest runs until it is destroyed.
pub const HEARTBEAT: &[u8] = b"heartbeat";

/// Before the workload, print the whole P2M as runs of consecutive machine frames,
/// `TEST-GUEST P2M pfn=<first pfn> mfn=<first mfn> count=<n>`, so a scenario can name every
/// page of the guest by machine frame.
pub const P2M: &[u8] = b"p2m";

/// `pattern=<name>`: instead of the workload (and of everything that follows it: `DONE`,
/// [`RING_PROBE`], [`HEARTBEAT`]), print `TEST-GUEST READY go-pfn=0x<pfn>`, wait for dom0's
/// go, run the access pattern `<name>` of [`crate::patterns`], one `TEST-GUEST TOUCH` line
/// per access, then `TEST-GUEST PATTERN-DONE <name> touches=<n>` and power off. Read with
/// [`arg`].
pub const PATTERN: &[u8] = b"pattern";

/// `rounds=<decimal>`: how many rounds of writes the `bench` pattern times (see
/// [`crate::bench`]: default 256, 1 to 65536). Read with [`dec_arg`].
pub const ROUNDS: &[u8] = b"rounds";

/// `pages=<decimal>`: how many pages of its event area the `bench-events` pattern writes
/// (see [`crate::bench_ops`]: default 256, 1 to 512). Read with [`dec_arg`].
pub const PAGES: &[u8] = b"pages";

/// `phases=<decimal>`: how many timed phases the `bench-sweep` pattern runs (see
/// [`crate::bench_ops`]: default 8, 1 to 64). Read with [`dec_arg`].
pub const PHASES: &[u8] = b"phases";

/// After the workload's `DONE` line, try to map the machine frame named by [`RING`] through
/// every route of [`crate::probe`], print one `TEST-GUEST PROBE ...` line per route and
/// `TEST-GUEST PROBES DONE`, then carry on (heartbeat or power off).
pub const RING_PROBE: &[u8] = b"ring-probe";

/// `ring=0x<hex>`: the machine frame [`RING_PROBE`] tries to map (the monitor ring Xen
/// allocated for this guest, owned by `DOMID_XEN`). Read with [`hex_arg`].
pub const RING: &[u8] = b"ring";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_whole_and_space_separated() {
        assert!(has_word(b"boot heartbeat", HEARTBEAT));
        assert!(has_word(b"heartbeat\0\0\0", HEARTBEAT));
        assert!(!has_word(b"heartbeats", HEARTBEAT));
        assert!(!has_word(b"", HEARTBEAT));
        assert!(has_word(b"ring-probe ring=0x10", RING_PROBE));
        assert!(!has_word(b"ring=0x10", RING_PROBE));
        assert!(!has_word(b"ring-probe  ", b""), "no empty word");
    }

    #[test]
    fn hex_arg_parses_prefixed_hex() {
        assert_eq!(hex_arg(b"ring-probe ring=0x12ab", RING), Some(0x12ab));
        assert_eq!(hex_arg(b"ring=0X12AB heartbeat", RING), Some(0x12ab));
        assert_eq!(hex_arg(b"  ring=0x0  ", RING), Some(0));
        assert_eq!(hex_arg(b"ring=0xdeadBEEF\0\0", RING), Some(0xdead_beef));
        assert_eq!(
            hex_arg(b"ring=0xffffffffffffffff", RING),
            Some(u64::MAX),
            "16 digits fit"
        );
        assert_eq!(
            hex_arg(b"ring=0x0000000000000001", RING),
            Some(1),
            "leading zeros within 16 digits"
        );
    }

    #[test]
    fn hex_arg_rejects_malformed_values() {
        for bad in [
            b"ring=12ab".as_slice(),
            b"ring=0x",
            b"ring=0x12g4",
            b"ring=0x-1",
            b"ring=0x+1",
            b"ring=",
            b"ring=x12",
            b"ring=0x10000000000000000",
            b"ring=00x12",
            b"ring=0x12=3",
        ] {
            let cmdline = [b"ring-probe ".as_slice(), bad].concat();
            assert_eq!(
                hex_arg(&cmdline, RING),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A space ends the value: "2" is a word of its own.
        assert_eq!(hex_arg(b"ring=0x1 2", RING), Some(1));
    }

    #[test]
    fn hex_arg_matches_the_whole_key() {
        assert_eq!(hex_arg(b"ring-probe", RING), None);
        assert_eq!(hex_arg(b"rings=0x5", RING), None);
        assert_eq!(hex_arg(b"xring=0x5", RING), None);
        assert_eq!(hex_arg(b"ring", RING), None);
        assert_eq!(hex_arg(b"other=0x1 ring=0x2", RING), Some(2));
        assert_eq!(hex_arg(b"", RING), None);
    }

    #[test]
    fn arg_is_the_first_value_of_the_whole_key() {
        assert_eq!(
            arg(b"p2m pattern=exec heartbeat", PATTERN),
            Some(b"exec".as_slice())
        );
        assert_eq!(arg(b"pattern=exec\0\0", PATTERN), Some(b"exec".as_slice()));
        assert_eq!(arg(b"pattern=a pattern=b", PATTERN), Some(b"a".as_slice()));
        assert_eq!(arg(b"pattern=", PATTERN), Some(b"".as_slice()));
        assert_eq!(arg(b"pattern=a=b", PATTERN), Some(b"a=b".as_slice()));
        assert_eq!(
            arg(b"pattern", PATTERN),
            None,
            "a word without = has no value"
        );
        assert_eq!(arg(b"xpattern=a patterns=b", PATTERN), None);
        assert_eq!(arg(b"", PATTERN), None);
    }

    #[test]
    fn dec_arg_parses_plain_decimal() {
        assert_eq!(dec_arg(b"pattern=bench rounds=256", ROUNDS), Some(256));
        assert_eq!(dec_arg(b"rounds=0\0\0", ROUNDS), Some(0));
        assert_eq!(dec_arg(b"rounds=007", ROUNDS), Some(7), "leading zeros");
        assert_eq!(
            dec_arg(b"rounds=18446744073709551615", ROUNDS),
            Some(u64::MAX),
            "20 digits that fit"
        );
        assert_eq!(dec_arg(b"rounds=1 rounds=2", ROUNDS), Some(1));
        assert_eq!(dec_arg(b"pattern=bench", ROUNDS), None, "no such word");
        assert_eq!(dec_arg(b"xrounds=5 roundsx=5", ROUNDS), None);
    }

    #[test]
    fn dec_arg_rejects_malformed_values() {
        for bad in [
            b"rounds=".as_slice(),
            b"rounds=0x10",
            b"rounds=-1",
            b"rounds=+1",
            b"rounds=1e3",
            b"rounds=12a",
            b"rounds= ",
            b"rounds=1_000",
            b"rounds=18446744073709551616",
            b"rounds=000000000000000000001",
            b"rounds=bad rounds=5",
        ] {
            let cmdline = [b"pattern=bench ".as_slice(), bad].concat();
            assert_eq!(
                dec_arg(&cmdline, ROUNDS),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn pages_and_phases_are_keys_of_their_own() {
        let cmdline = b"pattern=bench-events pages=12 phases=3 rounds=7";
        assert_eq!(dec_arg(cmdline, PAGES), Some(12));
        assert_eq!(dec_arg(cmdline, PHASES), Some(3));
        assert_eq!(dec_arg(cmdline, ROUNDS), Some(7));
        assert_eq!(dec_arg(b"pagesx=1 xpages=2 page=3", PAGES), None);
        assert_eq!(dec_arg(b"phase=2", PHASES), None);
    }

    #[test]
    fn hex_arg_takes_the_first_word_with_the_key() {
        assert_eq!(hex_arg(b"ring=0x1 ring=0x2", RING), Some(1));
        assert_eq!(
            hex_arg(b"ring=bad ring=0x2", RING),
            None,
            "a malformed first value is not replaced by a later one"
        );
    }
}
