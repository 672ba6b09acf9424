//! The guest's command line (`start_info.cmd_line`, set by `extra=` in the xl configuration)
//! selects what it does after its boot workload: words separated by spaces.

/// Whether `word` is one of the command line's words.
pub fn has_word(cmdline: &[u8], word: &[u8]) -> bool {
    cmdline
        .split(|&byte| byte == b' ' || byte == 0)
        .any(|candidate| candidate == word)
}

/// After the boot workload, keep rewriting the buffer and print `TEST-GUEST HEARTBEAT <n>`
/// now and then instead of powering off, so a scenario can watch the guest run (for example
/// while monitoring is switched on and off). The guest runs until it is destroyed.
pub const HEARTBEAT: &[u8] = b"heartbeat";

/// Before the workload, print the whole P2M as runs of consecutive machine frames,
/// `TEST-GUEST P2M pfn=<first pfn> mfn=<first mfn> count=<n>`, so a scenario can name every
/// page of the guest by machine frame.
pub const P2M: &[u8] = b"p2m";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_whole_and_space_separated() {
        assert!(has_word(b"boot heartbeat", HEARTBEAT));
        assert!(has_word(b"heartbeat\0\0\0", HEARTBEAT));
        assert!(!has_word(b"heartbeats", HEARTBEAT));
        assert!(!has_word(b"", HEARTBEAT));
    }
}
