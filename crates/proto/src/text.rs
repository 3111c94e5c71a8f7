//! Printing names that come from outside (file names, paths, network and
//! user names, the broker's replies) without letting them drive the
//! terminal or fake lines of a log.
//!
//! Every crate that puts such a name into a log line, an error message or
//! command output goes through [`escape`] (for text) or [`escape_path`]
//! (for paths and file names). Both return the input unchanged, without
//! copying, when it holds nothing to escape.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// `s` with every control character (C0, DEL, C1) and every Unicode
/// direction override written as a visible escape (`\x1b`, `\n`,
/// `\u{202e}`), so that a hostile name can neither send escape sequences
/// to the terminal nor fake extra lines of output. A backslash is doubled,
/// so that an escape cannot be faked either. Ordinary text is returned as
/// it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] of a path or file name. Bytes that are not UTF-8 are shown
/// as U+FFFD. The result implements `Display`, so it fits straight into a
/// log field (`path = %escape_path(p)`) or a `format!`.
pub fn escape_path<P: AsRef<Path> + ?Sized>(p: &P) -> Cow<'_, str> {
    match p.as_ref().to_string_lossy() {
        Cow::Borrowed(s) => escape(s),
        Cow::Owned(s) => match escape(&s) {
            Cow::Borrowed(_) => Cow::Owned(s),
            Cow::Owned(e) => Cow::Owned(e),
        },
    }
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_direction_control(c)
}

/// Unicode characters that reorder the text around them (bidirectional
/// embeddings, overrides and isolates, and the marks).
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_made_visible() {
        assert_eq!(escape("lab"), "lab");
        assert!(matches!(escape("lab-1.json"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(
            escape("x.json\nConfiguration OK."),
            "x.json\\nConfiguration OK."
        );
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}nosj.exe"), "abc\\u{202e}nosj.exe");
        assert_eq!(escape("a\\x1b"), "a\\\\x1b");
        assert_eq!(escape("é"), "é");
    }

    #[test]
    fn paths_are_escaped_like_text() {
        let p = Path::new("/tmp/x/\x1b[31mX\nFAKE.sock");
        assert_eq!(escape_path(p), "/tmp/x/\\x1b[31mX\\nFAKE.sock");
        assert_eq!(
            format!("{}", escape_path(p)),
            "/tmp/x/\\x1b[31mX\\nFAKE.sock"
        );
        assert!(matches!(escape_path("/var/run/x.sock"), Cow::Borrowed(_)));
    }

    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_utf8_are_shown_lossily_and_escaped() {
        use std::os::unix::ffi::OsStrExt as _;
        let p = std::ffi::OsStr::from_bytes(b"a\xffb\n");
        assert_eq!(escape_path(p), "a\u{fffd}b\\n");
        let p = std::ffi::OsStr::from_bytes(b"a\xffb");
        assert_eq!(escape_path(p), "a\u{fffd}b");
    }
}
