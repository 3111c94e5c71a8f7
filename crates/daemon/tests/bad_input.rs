#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile and malformed input against the running broker.
//!
//! Every malformed request must be answered with the documented status
//! (INVALID_REQUEST; NOT_FOUND for any string name that names no network,
//! whatever its form, as the original broker answers), and none of it may disturb another client: its network keeps
//! its subnet and holder count, and the broker keeps answering.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Broker, Conn};
use serde_json::{Value, json};

const INVALID: i64 = 4;
const NOT_FOUND: i64 = 5;

/// One malformed request line (sent with a trailing newline) and the status
/// the broker must answer with.
fn cases() -> Vec<(&'static str, Vec<u8>, i64)> {
    let line = |s: &str| s.as_bytes().to_vec();
    let acquire = |name: &str| {
        serde_json::to_vec(&json!({"command": "acquire", "network_name": name})).unwrap()
    };
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", r#"{"command":"#.repeat(5_000), "}".repeat(5_000));
    let nested_name = format!(
        r#"{{"command":"acquire","network_name":{}"shared"{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    vec![
        ("plain text", line("hello broker"), INVALID),
        ("empty line", line(""), INVALID),
        ("only spaces", line("    \t  "), INVALID),
        ("json null", line("null"), INVALID),
        ("json number", line("42"), INVALID),
        ("json string", line(r#""acquire""#), INVALID),
        ("json array", line(r#"["acquire","shared"]"#), INVALID),
        ("json true", line("true"), INVALID),
        ("empty object", line("{}"), INVALID),
        (
            "truncated object",
            line(r#"{"command":"acquire","network_name":"sha"#),
            INVALID,
        ),
        (
            "trailing garbage",
            line(r#"{"command":"status"} extra"#),
            INVALID,
        ),
        (
            "two objects on one line",
            line(r#"{"command":"status"}{"command":"status"}"#),
            INVALID,
        ),
        ("single quotes", line("{'command':'status'}"), INVALID),
        (
            "unknown command",
            line(r#"{"command":"destroy","network_name":"shared"}"#),
            INVALID,
        ),
        ("empty command", line(r#"{"command":""}"#), INVALID),
        (
            "command in upper case",
            line(r#"{"command":"ACQUIRE","network_name":"shared"}"#),
            INVALID,
        ),
        (
            "command is a number",
            line(r#"{"command":1,"network_name":"shared"}"#),
            INVALID,
        ),
        ("command is null", line(r#"{"command":null}"#), INVALID),
        (
            "command is an object",
            line(r#"{"command":{"acquire":true}}"#),
            INVALID,
        ),
        (
            "command is an array",
            line(r#"{"command":["status"]}"#),
            INVALID,
        ),
        (
            "acquire without a name",
            line(r#"{"command":"acquire"}"#),
            INVALID,
        ),
        (
            "release without a name",
            line(r#"{"command":"release"}"#),
            INVALID,
        ),
        (
            "name is a number",
            line(r#"{"command":"acquire","network_name":7}"#),
            INVALID,
        ),
        ("name is a number as string", acquire("12345"), NOT_FOUND),
        (
            "name is null",
            line(r#"{"command":"acquire","network_name":null}"#),
            INVALID,
        ),
        (
            "name is a bool",
            line(r#"{"command":"acquire","network_name":true}"#),
            INVALID,
        ),
        (
            "name is an object",
            line(r#"{"command":"acquire","network_name":{"name":"shared"}}"#),
            INVALID,
        ),
        (
            "name deeply nested in arrays",
            nested_name.into_bytes(),
            INVALID,
        ),
        ("empty name", acquire(""), NOT_FOUND),
        ("name of 65 characters", acquire(&"a".repeat(65)), NOT_FOUND),
        (
            "name of 60000 characters",
            acquire(&"b".repeat(60_000)),
            NOT_FOUND,
        ),
        (
            "name of 64 characters, unknown",
            acquire(&"c".repeat(64)),
            NOT_FOUND,
        ),
        ("absolute path", acquire("/etc/passwd"), NOT_FOUND),
        ("parent directory", acquire("../shared"), NOT_FOUND),
        ("dot dot", acquire(".."), NOT_FOUND),
        ("hidden file", acquire(".shared"), NOT_FOUND),
        ("slash inside", acquire("a/b"), NOT_FOUND),
        ("backslash", acquire("a\\b"), NOT_FOUND),
        ("name with a space", acquire("shared net"), NOT_FOUND),
        (
            "name with a newline escape",
            acquire("shared\nhost"),
            NOT_FOUND,
        ),
        ("name with a tab", acquire("shared\t"), NOT_FOUND),
        (
            "name with an escaped NUL",
            acquire("shared\u{0}"),
            NOT_FOUND,
        ),
        ("name with DEL", acquire("shared\u{7f}"), NOT_FOUND),
        (
            "name with an escape sequence",
            acquire("\u{1b}[31mred"),
            NOT_FOUND,
        ),
        ("unicode name", acquire("réseau"), NOT_FOUND),
        ("unicode lookalike", acquire("ѕhared"), NOT_FOUND),
        ("emoji name", acquire("🦀"), NOT_FOUND),
        (
            "right-to-left override",
            acquire("shared\u{202e}"),
            NOT_FOUND,
        ),
        ("glob", acquire("*"), NOT_FOUND),
        ("shell metacharacters", acquire("shared;rm -rf"), NOT_FOUND),
        (
            "valid but unknown name",
            acquire("no-such-network"),
            NOT_FOUND,
        ),
        (
            "release of a network not held",
            line(r#"{"command":"release","network_name":"shared"}"#),
            NOT_FOUND,
        ),
        ("deeply nested array", deep_array.into_bytes(), INVALID),
        ("deeply nested object", deep_object.into_bytes(), INVALID),
        (
            "invalid UTF-8",
            b"{\"command\":\"acquire\",\"network_name\":\"\xff\xfe\"}".to_vec(),
            INVALID,
        ),
        ("lone continuation bytes", b"\x80\x80\x80".to_vec(), INVALID),
        (
            "overlong UTF-8 slash",
            b"{\"command\":\"acquire\",\"network_name\":\"a\xc0\xafb\"}".to_vec(),
            INVALID,
        ),
        ("raw NUL bytes", b"\0\0\0\0".to_vec(), INVALID),
        (
            "NUL inside the object",
            b"{\"command\":\"status\"\0}".to_vec(),
            INVALID,
        ),
        (
            "raw control character in string",
            b"{\"command\":\"acquire\",\"network_name\":\"a\x01b\"}".to_vec(),
            INVALID,
        ),
        (
            "duplicate keys, last one bad",
            line(r#"{"command":"acquire","network_name":"shared","network_name":"../x"}"#),
            NOT_FOUND,
        ),
        (
            "duplicate command keys, last unknown",
            line(r#"{"command":"status","command":"reboot"}"#),
            INVALID,
        ),
        (
            "number with exponent as name",
            line(r#"{"command":"acquire","network_name":1e400}"#),
            INVALID,
        ),
        (
            "huge integer",
            line(r#"{"command":"acquire","network_name":123456789012345678901234567890}"#),
            INVALID,
        ),
        ("UTF-16 BOM", b"\xff\xfe{\0}\0".to_vec(), INVALID),
        (
            "UTF-8 BOM before object",
            b"\xef\xbb\xbf{\"command\":\"status\"}".to_vec(),
            INVALID,
        ),
    ]
}

/// Reads the `error` of one reply.
fn error_of(reply: &Value) -> Option<i64> {
    reply.get("error").and_then(Value::as_i64)
}

/// Another client's view of the held network, for comparison.
fn snapshot(broker: &Broker) -> (Option<u64>, Value) {
    let status = broker.status();
    let net = status["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "shared")
        .cloned()
        .unwrap_or(Value::Null);
    (net["holders"].as_u64(), net["subnet"].clone())
}

#[test]
fn malformed_requests_get_the_documented_status_and_harm_no_one() {
    let broker = Broker::start(&[], &["--no-idle-exit"]);
    // A well-behaved client holds `shared` throughout.
    let mut holder = broker.connect();
    let first = holder.acquire("shared");
    let subnet = first["network_info"]["subnet"].clone();
    assert!(subnet.is_string(), "{first}");
    let before = snapshot(&broker);
    assert_eq!(before, (Some(1), subnet.clone()));

    let table = cases();
    assert!(table.len() >= 40);

    // Each case on a fresh connection...
    for (what, bytes, want) in &table {
        let mut c = broker.connect();
        let mut line = bytes.clone();
        line.push(b'\n');
        c.send_raw(&line);
        let reply = c.read_reply();
        assert_eq!(error_of(&reply), Some(*want), "{what}: {reply}");
        assert!(reply.get("network").is_none(), "{what}: {reply}");
    }

    // ...and all of them back to back on one connection: one reply per
    // line, in order, and the connection stays usable afterwards.
    let mut c = broker.connect();
    let mut all = Vec::new();
    for (_, bytes, _) in &table {
        all.extend_from_slice(bytes);
        all.push(b'\n');
    }
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        std::thread::spawn(move || s.write_all(&all).unwrap())
    };
    for (what, _, want) in &table {
        let reply = c.read_reply();
        assert_eq!(error_of(&reply), Some(*want), "pipelined {what}: {reply}");
    }
    writer.join().unwrap();
    let ok = c.acquire("host");
    assert!(ok.get("network").is_some(), "{ok}");

    assert_eq!(snapshot(&broker), before);
    let counters = &broker.status()["counters"];
    assert!(
        counters["failures"]["invalid_request"].as_u64().unwrap() >= 80,
        "{counters}"
    );
}

#[test]
fn a_line_over_the_limit_is_rejected_and_the_next_line_is_read() {
    let broker = Broker::start(&[], &["--no-idle-exit"]);
    let mut holder = broker.connect();
    holder.acquire("shared");
    let before = snapshot(&broker);

    let mut c = broker.connect();
    // 64 KiB + 1 of padding inside an otherwise valid request.
    let pad = "x".repeat(64 * 1024 + 1);
    let huge = format!(r#"{{"command":"status","pad":"{pad}"}}"#);
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        let mut bytes = huge.into_bytes();
        bytes.extend_from_slice(b"\n{\"command\":\"acquire\",\"network_name\":\"shared\"}\n");
        std::thread::spawn(move || s.write_all(&bytes).unwrap())
    };
    assert_eq!(error_of(&c.read_reply()), Some(INVALID));
    let next = c.read_reply();
    assert!(
        next.get("network").is_some(),
        "the line after the long one: {next}"
    );
    writer.join().unwrap();

    // A line of several megabytes without any newline, then a newline.
    let mut c2 = broker.connect();
    let writer = {
        let mut s = c2.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'{'; 1024 * 1024];
            for _ in 0..8 {
                s.write_all(&chunk).unwrap();
            }
            s.write_all(b"\n{\"command\":\"status\"}\n").unwrap();
        })
    };
    assert_eq!(error_of(&c2.read_reply()), Some(INVALID));
    assert!(c2.read_reply().get("status").is_some());
    writer.join().unwrap();

    // The well-behaved holder plus `c`, which acquired it too.
    assert_eq!(broker.holders("shared"), Some(2));
    assert_eq!(snapshot(&broker).1, before.1);
}

#[test]
fn partial_lines_vanishing_and_deaf_clients_leave_others_intact() {
    let broker = Broker::start(&[], &["--no-idle-exit"]);
    let mut holder = broker.connect();
    let subnet = holder.acquire("shared")["network_info"]["subnet"].clone();

    // A partial line, then the client closes its sending side: the broker
    // answers the fragment as a (bad) last line and closes.
    let mut c = broker.connect();
    c.send_raw(br#"{"command":"acquire","network_na"#);
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(error_of(&c.read_reply()), Some(INVALID));
    let mut rest = Vec::new();
    c.stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    // A partial line, then the client disappears completely.
    for _ in 0..20 {
        let mut s = UnixStream::connect(&broker.socket).unwrap();
        s.write_all(b"{\"command\":\"acq").unwrap();
    }

    // Clients that acquire and vanish without reading the reply.
    for _ in 0..20 {
        let mut s = UnixStream::connect(&broker.socket).unwrap();
        s.write_all(b"{\"command\":\"acquire\",\"network_name\":\"shared\"}\n")
            .unwrap();
    }

    // A client that sends many requests and never reads: the broker must
    // not block on it (others are served meanwhile) nor drop others' holds.
    let deaf = UnixStream::connect(&broker.socket).unwrap();
    deaf.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut request = Vec::new();
    for _ in 0..500 {
        request.extend_from_slice(b"{\"command\":\"status\"}\n");
    }
    let mut sent = 0usize;
    let mut w = &deaf;
    // Bounded: stop when the socket's buffers are full (write times out)
    // or after a fixed amount of data.
    for _ in 0..400 {
        match w.write(&request) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(sent > 0);

    // Meanwhile, a fresh client is served and sees the holder intact. The
    // vanished clients are gone, so only the first holder (plus the
    // deaf client, which holds nothing) remain.
    broker.wait_for("vanished clients to be dropped", |b| {
        b.holders("shared") == Some(1)
    });
    let mut fresh = broker.connect();
    let r = fresh.acquire("shared");
    assert_eq!(r["network_info"]["subnet"], subnet, "{r}");
    assert_eq!(broker.holders("shared"), Some(2));
    drop(fresh);
    broker.wait_for("fresh client to leave", |b| b.holders("shared") == Some(1));

    drop(deaf);
    let mut again: Conn = broker.connect();
    let st = again.request(&json!({"command": "status"}));
    assert!(st.get("status").is_some());
    assert_eq!(holder.acquire("shared")["network_info"]["subnet"], subnet);
    assert_eq!(broker.holders("shared"), Some(1));
}

/// A name that would lead out of the configuration directory is looked up
/// like any other string and is "not found", even when the file it would
/// name exists and is a valid configuration; the log says why.
#[test]
fn a_path_like_name_never_reaches_the_file_system() {
    let b = Broker::prepare(&[]);
    // A valid configuration just outside the configuration directory.
    common::write_config(b.dir.path(), "outside.json", r#"{"mode": "host"}"#);
    let b = b.spawn(&["--no-idle-exit"]);
    let mut c = b.connect();
    for name in ["../outside", "../conf/../outside", "/etc/passwd"] {
        assert_eq!(c.acquire(name), json!({"error": NOT_FOUND}), "{name}");
    }
    assert_eq!(b.holders("outside"), None);
    let log = b.log_text();
    assert!(
        log.contains("no network can have this name"),
        "the log does not say why:\n{log}"
    );
    // A missing or non-string name stays an invalid request.
    assert_eq!(
        c.request(&json!({"command": "acquire"})),
        json!({"error": INVALID})
    );
    assert_eq!(
        c.request(&json!({"command": "acquire", "network_name": ["shared"]})),
        json!({"error": INVALID})
    );
}
