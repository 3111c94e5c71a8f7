//! How long a client waits: the one rule every client library follows
//! (docs/client-contract.md, "Timeouts").

use std::time::Duration;

use crate::Error;

/// How long a client waits to connect, and for each reply, unless the
/// caller or [`TIMEOUT_ENV`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest timeout any client accepts (a day).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// The shortest timeout any client accepts (a millisecond: less could not
/// be told from a broker that never answers).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Environment variable with the timeout, in decimal seconds, for every
/// connection made without an explicit one. Empty counts as unset.
pub const TIMEOUT_ENV: &str = "VMNET_BROKER_TIMEOUT";

/// A timeout given in seconds, if it is at least [`MIN_TIMEOUT`] and at
/// most [`MAX_TIMEOUT`] (NaN and infinities are not).
pub fn timeout_from_secs(seconds: f64) -> Option<Duration> {
    (seconds >= MIN_TIMEOUT.as_secs_f64() && seconds <= MAX_TIMEOUT.as_secs_f64())
        .then(|| Duration::from_secs_f64(seconds))
}

/// A timeout written as decimal seconds (`1`, `0.5`, `2e1`), within the
/// bounds.
pub fn parse_timeout(text: &str) -> Option<Duration> {
    text.parse::<f64>().ok().and_then(timeout_from_secs)
}

/// `timeout` brought within [`MIN_TIMEOUT`]..=[`MAX_TIMEOUT`], for setters
/// that have no way to report an error.
pub fn clamp_timeout(timeout: Duration) -> Duration {
    timeout.clamp(MIN_TIMEOUT, MAX_TIMEOUT)
}

/// The timeout for a connection made without an explicit one:
/// [`TIMEOUT_ENV`] if set and not empty, else [`DEFAULT_TIMEOUT`].
///
/// # Errors
///
/// [`Error::InvalidTimeout`] (status 4) if the variable is set to anything
/// but a number of seconds within the bounds.
pub fn env_timeout() -> Result<Duration, Error> {
    timeout_from_env(std::env::var_os(TIMEOUT_ENV))
}

/// The rule of [`env_timeout`] with the variable's value passed in.
pub(crate) fn timeout_from_env(value: Option<std::ffi::OsString>) -> Result<Duration, Error> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    value
        .to_str()
        .and_then(parse_timeout)
        .ok_or_else(|| Error::InvalidTimeout {
            variable: TIMEOUT_ENV,
            value: value.to_string_lossy().into_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_gives_the_timeout_within_bounds() {
        let env = |v: &str| timeout_from_env(Some(v.into()));
        assert_eq!(timeout_from_env(None).ok(), Some(DEFAULT_TIMEOUT));
        assert_eq!(env("").ok(), Some(DEFAULT_TIMEOUT));
        assert_eq!(env("1").ok(), Some(Duration::from_secs(1)));
        assert_eq!(env("0.5").ok(), Some(Duration::from_millis(500)));
        assert_eq!(env("2e1").ok(), Some(Duration::from_secs(20)));
        assert_eq!(env("0.001").ok(), Some(MIN_TIMEOUT));
        assert_eq!(env("86400").ok(), Some(MAX_TIMEOUT));
        for bad in [
            "abc", "0", "-1", "0.0009", "86400.5", "1e9", "nan", "inf", " 1",
        ] {
            let e = env(bad).expect_err(bad);
            assert_eq!(e.status(), crate::Status::INVALID_REQUEST, "{bad}");
            assert_eq!(
                e.to_string(),
                format!(
                    "VMNET_BROKER_TIMEOUT={bad:?} is not a valid timeout: give seconds from 0.001 to 86400"
                )
            );
        }
    }

    #[test]
    fn setters_clamp() {
        assert_eq!(clamp_timeout(Duration::ZERO), MIN_TIMEOUT);
        assert_eq!(
            clamp_timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(clamp_timeout(Duration::MAX), MAX_TIMEOUT);
    }
}
