//! Network names.

use std::fmt;

/// The longest network name accepted, in bytes.
pub const MAX_NETWORK_NAME_LEN: usize = 64;

/// A network name.
///
/// The accepted form, the only one a configured network can have: 1 to
/// [`MAX_NETWORK_NAME_LEN`] characters, each an ASCII letter, digit, `.`,
/// `_` or `-`, not starting with `.`. This rules out path separators, `..`,
/// hidden files, control characters and white space, so a name of that form
/// can be used as a file stem (`NAME.json`) without ever naming another
/// path. [`NetworkName::new`] accepts only that form.
///
/// A name received in a request can be any string: the original broker looks
/// up whatever it is given and answers "not found" for a name it does not
/// know, so [`NetworkName::requested`] keeps any string and remembers
/// whether (and why) it is outside the accepted form. Such a name is never
/// configured; whoever looks names up must check [`NetworkName::problem`]
/// first and never use an ill-formed name to build a path.
///
/// Equality, ordering and hashing depend only on the string.
#[derive(Clone)]
pub struct NetworkName {
    name: String,
    problem: Option<NameError>,
}

impl PartialEq for NetworkName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for NetworkName {}

impl std::hash::Hash for NetworkName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl PartialOrd for NetworkName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NetworkName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(&other.name)
    }
}

/// Why a string is not a valid network name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("network name is empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("network name is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Length of the rejected name in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The name starts with a dot.
    #[error("network name must not start with '.'")]
    LeadingDot,
    /// The name holds a character outside `[A-Za-z0-9._-]`.
    #[error("network name contains {0:?}; only letters, digits, '.', '_' and '-' are allowed")]
    BadCharacter(char),
}

impl NetworkName {
    /// Checks `name` against the accepted form with the default length limit.
    pub fn new(name: &str) -> Result<Self, NameError> {
        Self::with_limit(name, MAX_NETWORK_NAME_LEN)
    }

    /// Checks `name` against the accepted form with a length limit of
    /// `max_len` bytes (capped at [`MAX_NETWORK_NAME_LEN`]).
    pub fn with_limit(name: &str, max_len: usize) -> Result<Self, NameError> {
        check_form(name, max_len)?;
        Ok(Self {
            name: name.to_owned(),
            problem: None,
        })
    }

    /// Keeps `name` whatever its form, as a name asked for in a request.
    /// [`NetworkName::problem`] tells whether it is of the accepted form with
    /// a length limit of `max_len` bytes (capped at [`MAX_NETWORK_NAME_LEN`]).
    pub fn requested(name: &str, max_len: usize) -> Self {
        Self {
            name: name.to_owned(),
            problem: check_form(name, max_len).err(),
        }
    }

    /// Why this name is outside the accepted form (so that no network can
    /// have it), or `None` if it is of that form.
    pub fn problem(&self) -> Option<&NameError> {
        self.problem.as_ref()
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

fn check_form(name: &str, max_len: usize) -> Result<(), NameError> {
    let max = max_len.min(MAX_NETWORK_NAME_LEN);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::BadCharacter(c));
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            len: name.len(),
            max,
        });
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    Ok(())
}

impl fmt::Debug for NetworkName {
    /// The quoted name, escaped, cut after 80 bytes (a requested name can be
    /// long and hostile; this is what logs show).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match cut_for_log(&self.name) {
            (kept, false) => fmt::Debug::fmt(kept, f),
            (kept, true) => write!(f, "{kept:?}..."),
        }
    }
}

/// The first 80 bytes of `s` (at a character boundary), and whether
/// anything was cut: hostile strings stay short in messages and logs.
pub(crate) fn cut_for_log(s: &str) -> (&str, bool) {
    const MAX: usize = 80;
    let end = s.floor_char_boundary(MAX);
    (&s[..end], end < s.len())
}

impl fmt::Display for NetworkName {
    /// The name as it is for a name of the accepted form; otherwise as
    /// [`fmt::Debug`] shows it (quoted, escaped, cut), so that logs and
    /// messages never carry raw control characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problem.is_some() {
            return fmt::Debug::fmt(self, f);
        }
        f.write_str(&self.name)
    }
}

impl AsRef<str> for NetworkName {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl std::borrow::Borrow<str> for NetworkName {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl std::str::FromStr for NetworkName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl serde::Serialize for NetworkName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> serde::Deserialize<'de> for NetworkName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_form() {
        for ok in [
            "shared",
            "host",
            "a",
            "lima-0",
            "my_net.v2",
            "A9",
            &"x".repeat(64),
        ] {
            assert_eq!(
                NetworkName::new(ok).map(|n| n.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(NetworkName::new(""), Err(NameError::Empty));
        assert_eq!(
            NetworkName::new(&"x".repeat(65)),
            Err(NameError::TooLong { len: 65, max: 64 })
        );
        assert_eq!(NetworkName::new(".hidden"), Err(NameError::LeadingDot));
        assert_eq!(NetworkName::new(".."), Err(NameError::LeadingDot));
        assert_eq!(
            NetworkName::new("../etc/passwd"),
            Err(NameError::BadCharacter('/'))
        );
        assert_eq!(NetworkName::new("a b"), Err(NameError::BadCharacter(' ')));
        assert_eq!(NetworkName::new("a\nb"), Err(NameError::BadCharacter('\n')));
        assert_eq!(NetworkName::new("a\0b"), Err(NameError::BadCharacter('\0')));
        assert_eq!(
            NetworkName::new("réseau"),
            Err(NameError::BadCharacter('é'))
        );
    }

    #[test]
    fn a_requested_name_keeps_any_string_and_says_what_is_wrong() {
        let ok = NetworkName::requested("shared", 64);
        assert_eq!(ok.problem(), None);
        assert_eq!(ok, NetworkName::new("shared").unwrap());
        for (raw, problem) in [
            ("", NameError::Empty),
            ("../x", NameError::BadCharacter('/')),
            ("a b", NameError::BadCharacter(' ')),
            (".hidden", NameError::LeadingDot),
        ] {
            let n = NetworkName::requested(raw, 64);
            assert_eq!(n.as_str(), raw);
            assert_eq!(n.problem(), Some(&problem));
        }
        let long = "x".repeat(65);
        let n = NetworkName::requested(&long, 64);
        assert_eq!(n.as_str(), long);
        assert_eq!(n.problem(), Some(&NameError::TooLong { len: 65, max: 64 }));
        // The limit in force decides too.
        assert!(NetworkName::requested("abcde", 4).problem().is_some());
    }

    #[test]
    fn an_ill_formed_name_is_shown_quoted_and_cut() {
        let n = NetworkName::requested("a\nb", 64);
        assert_eq!(n.to_string(), "\"a\\nb\"");
        let long = NetworkName::requested(&"é".repeat(1000), 64);
        assert!(long.to_string().len() < 100, "{long}");
        assert_eq!(NetworkName::new("lima-0").unwrap().to_string(), "lima-0");
    }

    #[test]
    fn a_lower_limit_applies() {
        assert!(NetworkName::with_limit("abcd", 4).is_ok());
        assert_eq!(
            NetworkName::with_limit("abcde", 4),
            Err(NameError::TooLong { len: 5, max: 4 })
        );
    }
}
