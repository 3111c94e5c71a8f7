//! Injected faults: a seeded, scriptable schedule that makes chosen fake
//! calls fail or misbehave, read once per process from
//! `VMNET_BROKER_FAKE_FAULTS` (docs/macos-fakes.md, "Injected faults").
//!
//! The schedule is a list of rules separated by `;`:
//!
//! - `seed=N`: the seed of the random draws (default 0);
//! - `POINT@N=ACTION`: the Nth call of `POINT` (counted from 1);
//! - `POINT@N..M=ACTION`: calls N to M;
//! - `POINT%P=ACTION`: each call with probability P (0 to 1);
//! - `POINT*=ACTION`: every call.
//!
//! The points and what they can do:
//!
//! | point | actions |
//! |---|---|
//! | `vmnet_network_create` | `fail` (NULL, `VMNET_FAILURE`) |
//! | `vmnet_interface_start` | `fail` (the completion gets `VMNET_FAILURE`) |
//! | `vmnet_network_copy_serialization` | `null` (NULL, `VMNET_FAILURE`) |
//! | `xpc_dictionary_create` | `null` (an allocation that failed) |
//! | `xpc_dictionary_create_reply` | `null` |
//! | `reply` (a reply sent on a peer connection) | `drop` (never sent), `interrupt` (the connection ends instead) |
//! | `event` (a message or error delivered to a handler) | `delay:MS` |
//!
//! A schedule that does not parse aborts the process with a message that
//! names the rule. Every fault injected is written to standard error as
//! `fake-apple: injected fault: POINT call N: ACTION`, so a test can count
//! them.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::lock;

/// The environment variable that holds the schedule.
pub(crate) const ENV: &str = "VMNET_BROKER_FAKE_FAULTS";

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Action {
    Fail,
    Null,
    Drop,
    Interrupt,
    Delay(Duration),
}

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Point {
    NetworkCreate,
    InterfaceStart,
    CopySerialization,
    DictionaryCreate,
    DictionaryCreateReply,
    Reply,
    Event,
}

impl Point {
    const ALL: [(Self, &'static str); 7] = [
        (Self::NetworkCreate, "vmnet_network_create"),
        (Self::InterfaceStart, "vmnet_interface_start"),
        (Self::CopySerialization, "vmnet_network_copy_serialization"),
        (Self::DictionaryCreate, "xpc_dictionary_create"),
        (Self::DictionaryCreateReply, "xpc_dictionary_create_reply"),
        (Self::Reply, "reply"),
        (Self::Event, "event"),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("?", |(_, n)| n)
    }

    fn allows(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Self::NetworkCreate | Self::InterfaceStart, Action::Fail)
                | (
                    Self::CopySerialization | Self::DictionaryCreate | Self::DictionaryCreateReply,
                    Action::Null
                )
                | (Self::Reply, Action::Drop | Action::Interrupt)
                | (Self::Event, Action::Delay(_))
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    Calls(u64, u64),
    Probability(f64),
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    point: Point,
    when: When,
    action: Action,
}

#[derive(Debug)]
struct Schedule {
    rules: Vec<Rule>,
    calls: HashMap<Point, u64>,
    rng: fastrand::Rng,
}

fn parse_action(text: &str) -> Result<Action, String> {
    Ok(match text {
        "fail" => Action::Fail,
        "null" => Action::Null,
        "drop" => Action::Drop,
        "interrupt" => Action::Interrupt,
        _ => match text.strip_prefix("delay:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms <= 60_000 => Action::Delay(Duration::from_millis(ms)),
            _ => {
                return Err(format!(
                    "unknown action {text:?} (fail, null, drop, interrupt, delay:MS up to 60000)"
                ));
            }
        },
    })
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let (lhs, action) = text.split_once('=').ok_or_else(|| {
        format!("{text:?}: expected POINT@N=ACTION, POINT%P=ACTION or POINT*=ACTION")
    })?;
    let action = parse_action(action)?;
    let (name, when) = if let Some(name) = lhs.strip_suffix('*') {
        (name, When::Calls(1, u64::MAX))
    } else if let Some((name, p)) = lhs.split_once('%') {
        match p.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => (name, When::Probability(p)),
            _ => {
                return Err(format!(
                    "{text:?}: the probability must be a number from 0 to 1"
                ));
            }
        }
    } else if let Some((name, n)) = lhs.split_once('@') {
        let range = match n.split_once("..") {
            Some((a, b)) => a.parse().ok().zip(b.parse().ok()),
            None => n.parse().ok().map(|a| (a, a)),
        };
        match range {
            Some((a, b)) if a >= 1 && a <= b => (name, When::Calls(a, b)),
            _ => return Err(format!("{text:?}: calls are counted from 1 (N or N..M)")),
        }
    } else {
        return Err(format!("{text:?}: expected POINT@N=, POINT%P= or POINT*="));
    };
    let point = Point::ALL
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(p, _)| *p)
        .ok_or_else(|| {
            let names: Vec<&str> = Point::ALL.iter().map(|(_, n)| *n).collect();
            format!(
                "{text:?}: unknown point {name:?} (one of {})",
                names.join(", ")
            )
        })?;
    if !point.allows(action) {
        return Err(format!("{text:?}: {name} cannot {action:?}"));
    }
    Ok(Rule {
        point,
        when,
        action,
    })
}

fn parse(text: &str) -> Result<Schedule, String> {
    let mut seed = 0;
    let mut rules = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(s) = part.strip_prefix("seed=") {
            seed = s
                .parse()
                .map_err(|_| format!("{part:?}: the seed must be a whole number"))?;
        } else {
            rules.push(parse_rule(part)?);
        }
    }
    Ok(Schedule {
        rules,
        calls: HashMap::new(),
        rng: fastrand::Rng::with_seed(seed),
    })
}

static SCHEDULE: OnceLock<Option<Mutex<Schedule>>> = OnceLock::new();

fn schedule() -> Option<&'static Mutex<Schedule>> {
    SCHEDULE
        .get_or_init(|| {
            let text = std::env::var(ENV).ok()?;
            match parse(&text) {
                Ok(s) => Some(Mutex::new(s)),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "fake-apple: {ENV}: {e}");
                    std::process::abort()
                }
            }
        })
        .as_ref()
}

impl Schedule {
    /// Counts one call of `point`; returns its number and the fault to
    /// inject, if a rule fires for it (the first that does).
    fn next(&mut self, point: Point) -> (u64, Option<Action>) {
        let n = self.calls.entry(point).or_insert(0);
        *n += 1;
        let n = *n;
        let mut chosen = None;
        for rule in self.rules.iter().filter(|r| r.point == point) {
            let fires = match rule.when {
                When::Calls(a, b) => (a..=b).contains(&n),
                // Drawn for every probability rule of the point, fired or
                // not, so that a schedule replays the same way.
                When::Probability(p) => self.rng.f64() < p,
            };
            if fires && chosen.is_none() {
                chosen = Some(rule.action);
            }
        }
        (n, chosen)
    }
}

/// Counts one call of `point`; returns the fault to inject, if the
/// schedule has one for this call.
pub(crate) fn hit(point: Point) -> Option<Action> {
    let (n, chosen) = lock(schedule()?).next(point);
    if let Some(action) = chosen {
        let _ = writeln!(
            std::io::stderr(),
            "fake-apple: injected fault: {} call {n}: {action:?}",
            point.name()
        );
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_fire_as_written() {
        let mut s = parse("seed=7; vmnet_network_create@2..3=fail; reply%0.5=drop; event*=delay:5")
            .unwrap();
        assert_eq!(s.rules.len(), 3);
        let mut fire = |p: Point| s.next(p).1;
        let creates: Vec<_> = (0..4).map(|_| fire(Point::NetworkCreate)).collect();
        assert_eq!(
            creates,
            [None, Some(Action::Fail), Some(Action::Fail), None]
        );
        assert_eq!(
            fire(Point::Event),
            Some(Action::Delay(Duration::from_millis(5)))
        );
        let drops = (0..1000).filter(|_| fire(Point::Reply).is_some()).count();
        assert!((400..600).contains(&drops), "{drops} of 1000 at p = 0.5");
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, needle) in [
            ("reply@0=drop", "counted from 1"),
            ("reply%2=drop", "from 0 to 1"),
            ("nothing@1=fail", "unknown point"),
            ("reply@1=fail", "cannot"),
            ("event@1=delay:x", "unknown action"),
            ("seed=x", "whole number"),
            ("reply", "expected"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
