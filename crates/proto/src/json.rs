//! The development transport: one JSON object per line, each way.
//!
//! [`LineFramer`] splits a byte stream into lines with a size limit and
//! recovers after an over-long line; [`parse_request`] turns one line into a
//! [`Request`]; the `*_reply` functions build the reply objects; and
//! [`AcquireReply::decode`] reads an `acquire` reply on the client side.

use serde_json::{Map, Value};

use crate::{NetworkInfo, ReplyDecodeError, Request, RequestError, Status, keys};

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
pub fn parse_request(line: &[u8], max_name_len: usize) -> Result<Request, LineError> {
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

/// `{"error": code}`.
pub fn error_reply(status: Status) -> Value {
    let mut map = Map::new();
    map.insert(keys::ERROR.into(), status.code().into());
    Value::Object(map)
}

/// `{"network": serialization, "network_info": {...}}`.
pub fn acquire_reply(network: Value, info: Option<&NetworkInfo>) -> Value {
    let mut map = Map::new();
    map.insert(keys::NETWORK.into(), network);
    if let Some(info) = info.and_then(|i| serde_json::to_value(i).ok()) {
        map.insert(keys::NETWORK_INFO.into(), info);
    }
    Value::Object(map)
}

/// `{}`: the reply to a successful `release`.
pub fn empty_reply() -> Value {
    Value::Object(Map::new())
}

/// `{"status": report}`.
pub fn status_reply(report: &crate::StatusReport) -> Value {
    let mut map = Map::new();
    match serde_json::to_value(report) {
        Ok(v) => {
            map.insert(keys::STATUS.into(), v);
        }
        Err(_) => {
            map.insert(keys::ERROR.into(), Status::INTERNAL_ERROR.code().into());
        }
    }
    Value::Object(map)
}

/// Serializes `value` as one line, newline included.
pub fn to_line(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_else(|_| b"{\"error\":7}".to_vec());
    out.push(b'\n');
    out
}

/// The error status of a reply with the upstream rule: an integer `error`
/// other than 0, or `None`.
pub fn reply_error(map: &Map<String, Value>) -> Option<Status> {
    match map.get(keys::ERROR).and_then(Value::as_i64) {
        Some(0) | None => None,
        Some(code) => Some(Status(code)),
    }
}

/// A successful `acquire` reply as read by a client.
#[derive(Debug, Clone, PartialEq)]
pub struct AcquireReply {
    /// The network serialization, opaque to the client.
    pub network: Value,
    /// Addresses, when the broker sent them (ours does; upstream does not).
    pub info: Option<NetworkInfo>,
}

impl AcquireReply {
    /// Reads an `acquire` reply with the upstream rule (a non-zero `error`
    /// wins, then `network` is required). A malformed `network_info` is
    /// ignored, as an older client would.
    pub fn decode(reply: &Value) -> Result<Self, ReplyDecodeError> {
        let Value::Object(map) = reply else {
            return Err(ReplyDecodeError::Invalid("reply is not an object".into()));
        };
        let error = map.get(keys::ERROR).and_then(Value::as_i64);
        let network = map.get(keys::NETWORK);
        match crate::decode_acquire_reply(error, network.is_some()) {
            s if s.is_success() => Ok(Self {
                network: network.cloned().unwrap_or(Value::Null),
                info: map
                    .get(keys::NETWORK_INFO)
                    .and_then(|v| serde_json::from_value(v.clone()).ok()),
            }),
            s if s == Status::INVALID_REPLY => Err(ReplyDecodeError::Invalid(
                "reply has neither 'error' nor 'network'".into(),
            )),
            s => Err(ReplyDecodeError::Broker(s)),
        }
    }
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
    fn acquire_reply_decoding() {
        let ok = AcquireReply::decode(&json!({"network": {"id": 1}})).unwrap();
        assert_eq!(ok.network, json!({"id": 1}));
        assert_eq!(ok.info, None);
        assert_eq!(
            AcquireReply::decode(&json!({"error": 5}))
                .unwrap_err()
                .status(),
            Status::NOT_FOUND
        );
        assert_eq!(
            AcquireReply::decode(&json!({"error": 999}))
                .unwrap_err()
                .status(),
            Status(999)
        );
        assert_eq!(
            AcquireReply::decode(&json!({})).unwrap_err().status(),
            Status::INVALID_REPLY
        );
        assert_eq!(
            AcquireReply::decode(&json!([1])).unwrap_err().status(),
            Status::INVALID_REPLY
        );
        // A string error counts as absent, as with xpc_dictionary_get_int64.
        assert!(AcquireReply::decode(&json!({"error": "5", "network": 1})).is_ok());
    }

    #[test]
    fn reply_builders() {
        assert_eq!(error_reply(Status::NOT_FOUND), json!({"error": 5}));
        assert_eq!(to_line(&json!({})), b"{}\n");
        assert_eq!(acquire_reply(json!(1), None), json!({"network": 1}));
    }
}
