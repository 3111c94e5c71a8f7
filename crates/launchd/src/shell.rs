//! Quoting for the `--dry-run` rendering of a plan.

/// Quotes `word` for a POSIX shell: unchanged when it only has characters
/// that need no quoting, otherwise in single quotes (a single quote inside
/// becomes `'\''`).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'/' | b'.' | b'_' | b'-' | b':' | b'=' | b'@' | b'%' | b'+' | b','
                )
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Joins an argument vector into one shell command line.
pub(crate) fn join(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/usr/bin/false"), "/usr/bin/false");
        assert_eq!(
            quote("/Library/Application Support/x"),
            "'/Library/Application Support/x'"
        );
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(
            join(&["dscl".into(), ".".into(), "-create".into(), "a b".into()]),
            "dscl . -create 'a b'"
        );
    }
}
