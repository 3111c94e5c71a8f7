//! Status codes (`vmnet_broker_return_t` in the C API).

use std::ffi::CStr;
use std::fmt;

/// A status code as carried in the `error` key of a reply.
///
/// The numbers 0 to 7 are fixed by the original C implementation. Any other
/// number is kept exactly as received (a broker newer than this client may
/// send codes we do not know); [`Status::is_known`] tells them apart, and
/// their description says they are unknown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status(pub i64);

macro_rules! statuses {
    ($( $(#[$doc:meta])* $konst:ident = $code:literal, $cname:literal, $text:literal, $upstream:literal; )*) => {
        impl Status {
            $( $(#[$doc])* pub const $konst: Status = Status($code); )*

            /// Every status this version knows, in numeric order.
            pub const ALL: &'static [Status] = &[$(Status::$konst),*];

            /// The C constant name (`VMNET_BROKER_NOT_FOUND`), or `None` for
            /// an unknown code.
            pub fn c_name(self) -> Option<&'static str> {
                match self.0 {
                    $( $code => Some($cname), )*
                    _ => None,
                }
            }

            /// A short human description. Unknown codes are described as
            /// unknown; the number itself is in [`Status::code`].
            pub fn description(self) -> &'static str {
                match self.0 {
                    $( $code => $text, )*
                    _ => "unknown status",
                }
            }

            /// The text the original C client's `vmnet_broker_strerror`
            /// gives, byte for byte; `"(unknown status)"` for any other
            /// code. Our `vmnet_broker_strerror`, the Go `Error.Error()` and
            /// the Swift `errorDescription` return exactly this.
            pub fn upstream_text(self) -> &'static str {
                match self.0 {
                    $( $code => $upstream, )*
                    _ => "(unknown status)",
                }
            }

            /// [`Status::upstream_text`] as a C string with static lifetime,
            /// for `vmnet_broker_strerror`.
            pub fn upstream_text_cstr(self) -> &'static CStr {
                match self.0 {
                    $( $code => const_cstr(concat!($upstream, "\0")), )*
                    _ => c"(unknown status)",
                }
            }

            /// [`Status::description`] as a C string with static lifetime,
            /// for the C ABI.
            pub fn description_cstr(self) -> &'static CStr {
                match self.0 {
                    $( $code => const_cstr(concat!($text, "\0")), )*
                    _ => c"unknown status",
                }
            }
        }
    };
}

/// Turns a NUL-terminated literal into a `CStr` at compile time.
const fn const_cstr(s: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("status text must be NUL-terminated and contain no other NUL"),
    }
}

statuses! {
    /// The operation succeeded.
    SUCCESS = 0, "VMNET_BROKER_SUCCESS", "success",
        "Broker session started";
    /// The client could not talk to the broker (not running, connection
    /// lost). Produced by clients, never sent by the broker.
    XPC_FAILURE = 1, "VMNET_BROKER_XPC_FAILURE", "cannot communicate with the broker",
        "Failed to send XPC message to broker";
    /// The broker's reply was not understood. Produced by clients.
    INVALID_REPLY = 2, "VMNET_BROKER_INVALID_REPLY", "invalid reply from the broker",
        "Broker returned invalid reply";
    /// The caller may not use this network.
    NOT_ALLOWED = 3, "VMNET_BROKER_NOT_ALLOWED", "not allowed to use this network",
        "You are not allowed to create a network";
    /// The request was malformed (missing key, bad name, unknown command).
    INVALID_REQUEST = 4, "VMNET_BROKER_INVALID_REQUEST", "invalid request",
        "Invalid broker request";
    /// No such network is configured (or its configuration is broken).
    NOT_FOUND = 5, "VMNET_BROKER_NOT_FOUND", "network not found",
        "Network name not found";
    /// vmnet could not create the network.
    CREATE_FAILURE = 6, "VMNET_BROKER_CREATE_FAILURE", "failed to create the network",
        "Failed to create network";
    /// Any other failure, including holding too many networks.
    INTERNAL_ERROR = 7, "VMNET_BROKER_INTERNAL_ERROR", "internal error in the broker",
        "Internal or unknown error";
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> i64 {
        self.0
    }

    /// Whether this is one of the codes 0 to 7.
    pub fn is_known(self) -> bool {
        self.c_name().is_some()
    }

    /// Whether this is [`Status::SUCCESS`].
    pub fn is_success(self) -> bool {
        self == Self::SUCCESS
    }

    /// A stable lower-case identifier (`not_found`), or `unknown` for codes
    /// this version does not know. Used in logs and JSON output.
    pub fn slug(self) -> &'static str {
        match self.0 {
            0 => "success",
            1 => "xpc_failure",
            2 => "invalid_reply",
            3 => "not_allowed",
            4 => "invalid_request",
            5 => "not_found",
            6 => "create_failure",
            7 => "internal_error",
            _ => "unknown",
        }
    }
}

impl From<i64> for Status {
    fn from(code: i64) -> Self {
        Self(code)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.c_name() {
            Some(name) => write!(f, "{name}({})", self.0),
            None => write!(f, "Status({})", self.0),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_known() {
            write!(f, "{} (status {})", self.description(), self.0)
        } else {
            write!(f, "unknown status {}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_fixed() {
        let codes: Vec<i64> = Status::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, (0..=7).collect::<Vec<_>>());
        assert_eq!(Status::NOT_FOUND.c_name(), Some("VMNET_BROKER_NOT_FOUND"));
        assert_eq!(Status::CREATE_FAILURE.code(), 6);
    }

    #[test]
    fn upstream_texts_are_the_originals() {
        assert_eq!(Status::SUCCESS.upstream_text(), "Broker session started");
        assert_eq!(Status::NOT_FOUND.upstream_text(), "Network name not found");
        assert_eq!(Status(8).upstream_text(), "(unknown status)");
        assert_eq!(Status(-1).upstream_text(), "(unknown status)");
        for s in Status::ALL.iter().chain(&[Status(99)]) {
            assert_eq!(
                s.upstream_text_cstr().to_str().ok(),
                Some(s.upstream_text())
            );
        }
    }

    #[test]
    fn unknown_codes_are_kept() {
        let s = Status::from(999);
        assert_eq!(s.code(), 999);
        assert!(!s.is_known());
        assert_eq!(s.description(), "unknown status");
        assert_eq!(s.to_string(), "unknown status 999");
        assert_eq!(Status::from(-3).code(), -3);
    }

    #[test]
    fn c_descriptions_match_rust_ones() {
        for s in Status::ALL.iter().copied().chain([Status(42)]) {
            assert_eq!(s.description_cstr().to_str().ok(), Some(s.description()));
        }
    }

    #[test]
    fn display_names_the_problem_and_code() {
        assert_eq!(
            Status::NOT_FOUND.to_string(),
            "network not found (status 5)"
        );
    }
}
