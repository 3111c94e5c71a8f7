//! Network names.

use std::fmt;

/// The longest network name accepted, in bytes.
pub const MAX_NETWORK_NAME_LEN: usize = 64;

/// A valid network name.
///
/// The accepted form: 1 to [`MAX_NETWORK_NAME_LEN`] characters, each an ASCII
/// letter, digit, `.`, `_` or `-`, not starting with `.`. This rules out
/// path separators, `..`, hidden files, control characters and white space,
/// so a name can be used as a file stem (`NAME.json`) without ever naming
/// another path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkName(String);

/// Why a string is not a valid network name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for NetworkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NetworkName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for NetworkName {
    fn borrow(&self) -> &str {
        &self.0
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
        s.serialize_str(&self.0)
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
    fn a_lower_limit_applies() {
        assert!(NetworkName::with_limit("abcd", 4).is_ok());
        assert_eq!(
            NetworkName::with_limit("abcde", 4),
            Err(NameError::TooLong { len: 5, max: 4 })
        );
    }
}
