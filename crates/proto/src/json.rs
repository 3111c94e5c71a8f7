//! The development transport: one JSON object per line, each way.
//!
//! [`LineFramer`] splits a byte stream into lines with a size limit and
//! recovers after an over-long line; [`parse_request`] turns one line into a
//! [`Request`] and [`to_line`] writes one; the `write_*` functions encode the
//! broker's replies. Clients read replies with the upstream rules in the
//! client library (`decode.rs`), which covers XPC dictionaries too.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::{
    NetworkInfo, NetworkName, Request, RequestError, Status, StatusReport, commands, keys,
};

/// Default limit on one line, newline excluded: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Why a line is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is longer than the limit.
    #[error("request line is longer than {max} bytes")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
    /// The line is not UTF-8.
    #[error("request line is not valid UTF-8")]
    NotUtf8,
    /// The line is not JSON.
    #[error("request line is not JSON: {0}")]
    NotJson(String),
    /// The line is JSON but not an object.
    #[error("request line is JSON but not an object")]
    NotAnObject,
    /// The object is not a valid request.
    #[error(transparent)]
    Request(#[from] RequestError),
}

impl LineError {
    /// The status to answer with: always [`Status::INVALID_REQUEST`].
    pub fn status(&self) -> Status {
        Status::INVALID_REQUEST
    }
}

/// Parses one request line (without its newline).
///
/// Well-formed requests take a quick path that reads only `command` and
/// `network_name` without building a JSON map; anything it does not accept
/// goes through the general decoder, which applies every rule and produces
/// the exact error.
pub fn parse_request(line: &[u8], max_name_len: usize) -> Result<Request, LineError> {
    if let Some(request) = parse_common_request(line, max_name_len) {
        return Ok(request);
    }
    let map = parse_object(line)?;
    Ok(Request::decode(&map, max_name_len)?)
}

/// Parses one line as a JSON object.
pub fn parse_object(line: &[u8]) -> Result<Map<String, Value>, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(LineError::NotAnObject),
        Err(e) => Err(LineError::NotJson(e.to_string())),
    }
}

/// The two keys of the common requests, borrowed from the line when they
/// hold no escapes.
#[derive(serde::Deserialize)]
struct CommonRequest<'a> {
    #[serde(borrow, default)]
    command: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    network_name: Option<Cow<'a, str>>,
}

/// Decodes a well-formed request without building a JSON map: an object
/// whose `command` and `network_name` are strings (other keys are skipped
/// unparsed) and name a valid request. A name of any form is kept as asked
/// for ([`NetworkName::requested`]), as the general path keeps it. Anything
/// else (wrong types, repeated keys, unknown commands, not an object)
/// returns `None`. Whatever this returns, the general path would return
/// too.
fn parse_common_request(line: &[u8], max_name: usize) -> Option<Request> {
    // A struct also deserializes from a JSON array; only objects qualify.
    if line.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let fields: CommonRequest<'_> = serde_json::from_str(text).ok()?;
    let name = || {
        fields
            .network_name
            .as_deref()
            .map(|n| NetworkName::requested(n, max_name))
    };
    match fields.command.as_deref()? {
        commands::ACQUIRE => Some(Request::Acquire { network: name()? }),
        commands::RELEASE => Some(Request::Release { network: name()? }),
        commands::STATUS => Some(Request::Status),
        _ => None,
    }
}

/// Serializes a request object as one line, newline included.
pub fn to_line(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_else(|_| ERROR_7.to_vec());
    out.push(b'\n');
    out
}

/// The reply sent when a reply cannot be encoded, newline excluded.
const ERROR_7: &[u8] = b"{\"error\":7}";

/// Appends `{"network": serialization, "network_info": {...}}` and a
/// newline to `out`.
pub fn write_acquired(out: &mut Vec<u8>, network: &Value, info: &NetworkInfo) {
    #[derive(serde::Serialize)]
    struct Acquired<'a> {
        network: &'a Value,
        network_info: &'a NetworkInfo,
    }
    write_line(
        out,
        &Acquired {
            network,
            network_info: info,
        },
    );
}

/// Appends `{}` and a newline: the reply to a successful `release`.
pub fn write_released(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{}\n");
}

/// Appends `{"status": report}` and a newline.
pub fn write_status(out: &mut Vec<u8>, report: &StatusReport) {
    #[derive(serde::Serialize)]
    struct StatusReply<'a> {
        status: &'a StatusReport,
    }
    write_line(out, &StatusReply { status: report });
}

/// Appends `{"error": code}` and a newline.
pub fn write_error(out: &mut Vec<u8>, status: Status) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = writeln!(out, "{{\"{}\":{}}}", keys::ERROR, status.code());
}

/// Appends `value` as one line; `{"error":7}` if it cannot be encoded
/// (a map with non-string keys, a float that is not finite...).
fn write_line<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(start);
        out.extend_from_slice(ERROR_7);
    }
    out.push(b'\n');
}

/// What [`LineFramer::next_line`] yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line, newline removed (a trailing `\r` is kept).
    Line(&'a [u8]),
    /// A line went over the limit. Its bytes up to and including the next
    /// newline are discarded; later lines are read normally.
    TooLong,
}

/// Splits a byte stream into newline-terminated lines of at most `max`
/// bytes, using memory bounded by `max` plus one read.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out as lines.
    start: usize,
    /// Bytes of `buf` already scanned for a newline (from `start`).
    scanned: usize,
    max: usize,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
}

impl LineFramer {
    /// A framer with a line limit of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max,
            discarding: false,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as lines.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete line, or `None` if more input is needed.
    pub fn next_line(&mut self) -> Option<Frame<'_>> {
        loop {
            let window = &self.buf[self.start + self.scanned..];
            match window.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let line_start = self.start;
                    let line_end = self.start + self.scanned + pos;
                    self.start = line_end + 1;
                    self.scanned = 0;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if line_end - line_start > self.max {
                        return Some(Frame::TooLong);
                    }
                    return Some(Frame::Line(&self.buf[line_start..line_end]));
                }
                None => {
                    self.scanned += window.len();
                    if self.discarding {
                        // Drop what we have: it belongs to the over-long line.
                        self.buf.clear();
                        self.start = 0;
                        self.scanned = 0;
                        return None;
                    }
                    if self.scanned > self.max {
                        self.discarding = true;
                        self.buf.clear();
                        self.start = 0;
                        self.scanned = 0;
                        return Some(Frame::TooLong);
                    }
                    self.compact();
                    return None;
                }
            }
        }
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(framer: &mut LineFramer) -> Vec<Result<String, ()>> {
        let mut out = Vec::new();
        while let Some(f) = framer.next_line() {
            out.push(match f {
                Frame::Line(l) => Ok(String::from_utf8_lossy(l).into_owned()),
                Frame::TooLong => Err(()),
            });
        }
        out
    }

    #[test]
    fn splits_lines_across_pushes() {
        let mut f = LineFramer::new(100);
        f.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(lines(&mut f), vec![Ok("{\"a\":1}".into())]);
        f.push(b":2}\n\n");
        assert_eq!(
            lines(&mut f),
            vec![Ok("{\"b\":2}".into()), Ok(String::new())]
        );
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_skipped() {
        let mut f = LineFramer::new(8);
        f.push(b"0123456789");
        assert_eq!(lines(&mut f), vec![Err(())]);
        f.push(b"abcdef");
        assert_eq!(lines(&mut f), vec![]);
        f.push(b"xyz\nok\n");
        assert_eq!(lines(&mut f), vec![Ok("ok".into())]);
        // A long line that arrives whole with its newline.
        f.push(b"0123456789abc\nfine\n");
        assert_eq!(lines(&mut f), vec![Err(()), Ok("fine".into())]);
        assert!(f.buf.capacity() < 64);
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut f = LineFramer::new(4);
        f.push(b"abcd\nabcde\n");
        assert_eq!(lines(&mut f), vec![Ok("abcd".into()), Err(())]);
    }

    #[test]
    fn parse_request_errors() {
        assert_eq!(parse_request(b"\xff", 64), Err(LineError::NotUtf8));
        assert!(matches!(
            parse_request(b"nope", 64),
            Err(LineError::NotJson(_))
        ));
        assert_eq!(parse_request(b"[1]", 64), Err(LineError::NotAnObject));
        assert!(matches!(
            parse_request(b"{}", 64),
            Err(LineError::Request(RequestError::MissingCommand))
        ));
        assert!(parse_request(br#"{"command":"status"}"#, 64).is_ok());
    }

    #[test]
    fn reply_encoders() {
        let mut out = Vec::new();
        write_error(&mut out, Status::NOT_FOUND);
        write_released(&mut out);
        assert_eq!(out, b"{\"error\":5}\n{}\n");
        assert_eq!(to_line(&json!({})), b"{}\n");
        let info = NetworkInfo {
            mode: crate::Mode::Host,
            subnet: "192.168.64.0".parse().unwrap(),
            mask: "255.255.255.0".parse().unwrap(),
            ipv6_prefix: "fd00::".parse().unwrap(),
            ipv6_prefix_length: 64,
        };
        let mut out = Vec::new();
        write_acquired(&mut out, &json!({"id": 1}), &info);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["network"], json!({"id": 1}));
        assert_eq!(v["network_info"], serde_json::to_value(&info).unwrap());
    }

    #[test]
    fn an_unencodable_reply_becomes_error_7() {
        // A map with a non-string key cannot be JSON.
        let mut out = b"x".to_vec();
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1u8], 1);
        write_line(&mut out, &bad);
        assert_eq!(out, b"x{\"error\":7}\n");
    }

    /// The quick decoder agrees with the general one whenever it answers.
    #[test]
    fn common_request_parser_agrees_with_the_general_path() {
        let lines: &[&[u8]] = &[
            br#"{"command":"acquire","network_name":"shared"}"#,
            br#"  {"network_name":"host","command":"release","x":[1,{"a":2}]}"#,
            br#"{"command":"status"}"#,
            br#"{"command":"status","network_name":7}"#,
            br#"{"command":"acquire","network_name":7}"#,
            br#"{"command":"acquire"}"#,
            br#"{"command":"acquire","network_name":"a/b"}"#,
            br#"{"command":"acquire","network_name":"sh\u0061red"}"#,
            br#"{"command":"acquire","command":"release","network_name":"x"}"#,
            br#"{"command":null,"network_name":"x"}"#,
            br#"{"command":"launch","network_name":"x"}"#,
            br#"["acquire","shared"]"#,
            br#"{"command":"acquire","network_name":"shared"} trailing"#,
            b"",
            b"\xff",
        ];
        for line in lines {
            let general = parse_object(line)
                .ok()
                .and_then(|map| Request::decode(&map, 64).ok());
            if let Some(quick) = parse_common_request(line, 64) {
                assert_eq!(Some(quick), general, "{}", String::from_utf8_lossy(line));
            }
            assert_eq!(parse_request(line, 64).ok(), general);
        }
        assert!(parse_common_request(br#"["acquire","shared"]"#, 64).is_none());
        assert!(
            parse_common_request(br#"{"command":"acquire","network_name":"shared"}"#, 64).is_some()
        );
    }
}
