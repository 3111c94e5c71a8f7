//! Bodies of the fuzz targets, kept in a library so that the same code runs
//! under libFuzzer (`cargo fuzz run TARGET`) and as ordinary tests over
//! pseudo-random inputs (`cargo test --manifest-path fuzz/Cargo.toml --lib`),
//! which needs neither cargo-fuzz nor a nightly compiler.
//!
//! Each body panics when it finds a bug; anything else is a pass.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use vmnet_broker_core::backend::sim::{FailurePlan, SimBackend};
use vmnet_broker_core::broker::{BrokerOptions, ClientCredentials, ClientId, NoAccounts};
use vmnet_broker_core::config::{
    Ipv4Subnet, NetworkConfig, Principal, StaticConfig, parse_json, parse_plist,
};
use vmnet_broker_core::testing::Harness;
use vmnet_broker_proto::json::{Frame, LineFramer, parse_request};
use vmnet_broker_proto::{Mode, NetworkName, Request};

/// Splits arbitrary bytes into lines with [`LineFramer`], fed in arbitrary
/// chunks, and compares the result with a simple reference: split the whole
/// input at each newline; a piece longer than the limit gives one
/// `TooLong`, a complete shorter piece gives a line. Every line is then
/// parsed; a request that parses must survive a round trip.
pub fn json_framing(data: &[u8]) {
    let (max, chunk, input) = match data {
        [a, b, rest @ ..] => (usize::from(*a % 64) + 1, usize::from(*b % 17) + 1, rest),
        _ => return,
    };

    let mut framer = LineFramer::new(max);
    let mut got: Vec<Option<Vec<u8>>> = Vec::new();
    for piece in input.chunks(chunk) {
        framer.push(piece);
        while let Some(frame) = framer.next_line() {
            match frame {
                Frame::Line(line) => {
                    assert!(line.len() <= max, "line over the limit");
                    assert!(!line.contains(&b'\n'), "newline inside a line");
                    got.push(Some(line.to_vec()));
                }
                Frame::TooLong => got.push(None),
            }
        }
        assert!(
            framer.pending() <= max + piece.len(),
            "framer buffers too much"
        );
    }

    let mut want: Vec<Option<Vec<u8>>> = Vec::new();
    let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let trailing = pieces.pop().unwrap_or_default();
    for p in pieces {
        want.push((p.len() <= max).then(|| p.to_vec()));
    }
    if trailing.len() > max {
        want.push(None);
    }
    assert_eq!(got, want, "framing differs from the reference");

    for line in got.into_iter().flatten() {
        if let Ok(request) = parse_request(&line, 64) {
            let text = serde_json_line(&request);
            let again = parse_request(text.as_bytes(), 64).expect("re-encoded request parses");
            assert_eq!(again, request, "request changed in a round trip");
        }
    }
    // Whole input as one line, at the daemon's default limit.
    let _ = parse_request(input, 64);
}

fn serde_json_line(request: &Request) -> String {
    serde_json::Value::Object(request.to_json()).to_string()
}

/// Parses arbitrary bytes as a JSON network configuration: it may fail, but
/// never panic, and gives the same answer twice.
pub fn config_json(data: &[u8]) {
    let first = parse_json(data);
    assert_eq!(first, parse_json(data), "parse_json is not deterministic");
}

/// Parses arbitrary bytes as a property list (XML or binary).
pub fn config_plist(data: &[u8]) {
    let first = parse_plist(data);
    assert_eq!(first, parse_plist(data), "parse_plist is not deterministic");
}

const NETS: [&str; 6] = ["shared", "host", "wide", "narrow", "private", "missing"];
const SLOTS: u8 = 4;

/// One input to the broker.
#[derive(Debug, Arbitrary)]
enum Op {
    Connect { slot: u8, user: u8 },
    Disconnect { slot: u8 },
    Acquire { slot: u8, net: u8 },
    Release { slot: u8, net: u8 },
    Status { slot: u8 },
    BadRequest { slot: u8 },
    Advance { millis: u32 },
    FireNextTimer,
    FailNext { count: u8 },
    FailAll { on: bool },
    Shutdown,
}

/// Feeds the broker an arbitrary sequence of inputs and checks its
/// invariants after each one; at the end everyone leaves, time passes, and
/// nothing may be left in the broker or the backend.
pub fn broker_events(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let options = BrokerOptions {
        network_idle_timeout: Duration::from_secs(30),
        exit_idle_timeout: Some(Duration::from_secs(45)),
        max_networks_per_client: 3,
        max_clients: 3,
        // Below max_clients, so that the limit per user is reached too.
        max_clients_per_user: 2,
        max_networks: 4,
    };
    // `wide` and `narrow` overlap, so only one can be live; `private` is
    // only for uid 501 (and root).
    let mut wide = NetworkConfig::new(Mode::Host);
    wide.ipv4 = Some(Ipv4Subnet::new([192, 168, 100, 0].into(), 23));
    let mut narrow = NetworkConfig::new(Mode::Shared);
    narrow.ipv4 = Some(Ipv4Subnet::new([192, 168, 101, 0].into(), 24));
    let mut private = NetworkConfig::new(Mode::Host);
    private.allowed_users = Some(vec![Principal::Id(501)]);
    let config = StaticConfig::new()
        .with("wide", wide)
        .with("narrow", narrow)
        .with("private", private);

    let mut d: Harness<SimBackend, StaticConfig> = Harness::sim(options, config, NoAccounts, 11);
    // Invariants are checked below, naming the operation that broke them.
    d.check = false;
    let mut slots: [Option<u64>; SLOTS as usize] = [None; SLOTS as usize];
    let mut next_id = 1u64;

    for op in ops.iter().take(256) {
        match *op {
            Op::Connect { slot, user } => {
                let s = usize::from(slot % SLOTS);
                if slots[s].is_none() {
                    let uid = [0, 501, 502][usize::from(user % 3)];
                    let creds = ClientCredentials {
                        pid: 1000 + s as i32,
                        uid,
                        gid: 20,
                    };
                    let id = next_id;
                    next_id += 1;
                    let ok = d.connect(id, creds).is_ok();
                    if ok {
                        slots[s] = Some(id);
                    }
                    let connected = slots.iter().filter(|x| x.is_some()).count();
                    assert_eq!(d.broker.client_count(), connected);
                }
            }
            Op::Disconnect { slot } => {
                if let Some(id) = slots[usize::from(slot % SLOTS)].take() {
                    d.disconnect(id);
                }
            }
            Op::Acquire { slot, net } | Op::Release { slot, net } => {
                let Some(id) = slots[usize::from(slot % SLOTS)] else {
                    continue;
                };
                let network = NetworkName::new(NETS[usize::from(net) % NETS.len()])
                    .expect("test names are valid");
                let request = match op {
                    Op::Acquire { .. } => Request::Acquire { network },
                    _ => Request::Release { network },
                };
                let _ = d.request(id, request);
            }
            Op::Status { slot } => {
                let viewer = slots[usize::from(slot % SLOTS)].map(ClientId);
                let report = d.broker.status(d.now, viewer);
                assert_eq!(report.client_count, d.broker.client_count());
                assert_eq!(report.networks.len(), d.broker.network_count());
            }
            Op::BadRequest { slot } => {
                if let Some(id) = slots[usize::from(slot % SLOTS)] {
                    let _ = d.bad_request(id, "fuzzed");
                }
            }
            Op::Advance { millis } => d.advance(Duration::from_millis(u64::from(millis % 100_000))),
            Op::FireNextTimer => {
                d.fire_next();
            }
            Op::FailNext { count } => d.broker.backend_mut().fail_next(u32::from(count % 4)),
            Op::FailAll { on } => d.broker.backend_mut().set_failures(FailurePlan {
                all: on,
                ..FailurePlan::default()
            }),
            Op::Shutdown => {
                d.shutdown();
                assert_eq!(d.broker.network_count(), 0);
            }
        }
        d.events.clear();
        if let Err(e) = d.broker.check_invariants() {
            panic!("invariant broken after {op:?}: {e}");
        }
        assert_eq!(d.broker.backend().live_count(), d.broker.network_count());
    }

    for id in slots.iter_mut().filter_map(Option::take) {
        d.disconnect(id);
    }
    d.advance(Duration::from_secs(31));
    d.broker
        .check_invariants()
        .expect("invariants hold at the end");
    assert_eq!(
        d.broker.network_count(),
        0,
        "networks left after everyone left"
    );
    assert_eq!(
        d.broker.backend().live_count(),
        0,
        "backend networks leaked"
    );
    // Then the broker becomes quiet: the idle exit fires, nothing re-arms.
    d.drive();
    assert_eq!(d.broker.poll_timeout(), None, "a deadline is left");
}

#[cfg(test)]
mod tests {
    //! The fuzz bodies over pseudo-random and hand-made inputs, so that CI
    //! runs their code paths without cargo-fuzz.

    use super::*;

    /// A small xorshift generator: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Random bytes, biased towards the characters that matter.
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            const INTERESTING: &[u8] = b"{}[]\":,\n\n\n\\ acquirestatusnetwork_namecommand0123";
            (0..len)
                .map(|_| {
                    let r = self.next();
                    if r.is_multiple_of(4) {
                        r.to_le_bytes()[1]
                    } else {
                        INTERESTING[(r >> 8) as usize % INTERESTING.len()]
                    }
                })
                .collect()
        }
    }

    const CASES: usize = 400;

    fn seeds() -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = [
            &b"\x20\x05{\"command\":\"acquire\",\"network_name\":\"shared\"}\n"[..],
            b"\x08\x03{\"command\":\"status\"}\n{\"command\":\"release\",\"network_name\":\"host\"}\n",
            b"\x02\x01aaaaaaaaaaaaaaaaaaaa\nb\n",
            br#"{"mode": "shared", "subnet": "192.168.105.0", "mask": "255.255.255.0"}"#,
            br#"{"mode": "host", "allowed_users": ["alice", 501], "allowed_groups": ["staff"]}"#,
            br#"<?xml version="1.0"?><plist version="1.0"><dict><key>mode</key><string>host</string></dict></plist>"#,
            b"bplist00",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..CASES {
            let len = (rng.next() % 300) as usize + i % 5;
            out.push(rng.bytes(len));
        }
        out
    }

    #[test]
    fn json_framing_over_seeds() {
        for s in seeds() {
            json_framing(&s);
        }
    }

    #[test]
    fn config_parsers_over_seeds() {
        for s in seeds() {
            config_json(&s);
            config_plist(&s);
        }
        // The hand-made configuration seeds are valid.
        assert!(parse_json(&seeds()[3]).is_ok());
        assert!(parse_plist(&seeds()[5]).is_ok());
    }

    #[test]
    fn broker_events_over_random_sequences() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..CASES {
            let len = (rng.next() % 2000) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[3]).collect();
            broker_events(&data);
        }
    }

    #[test]
    fn the_framing_oracle_can_fail() {
        // A framer limited to 4 bytes must reject a 5-byte line; the
        // reference agrees, so a correct run passes...
        json_framing(b"\x03\x01abcde\nab\n");
        // ...and a wrong expectation is caught.
        let caught = std::panic::catch_unwind(|| {
            let mut f = LineFramer::new(4);
            f.push(b"abcde\n");
            assert!(matches!(f.next_line(), Some(Frame::Line(_))));
        });
        assert!(caught.is_err());
    }
}
