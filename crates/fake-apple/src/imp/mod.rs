//! The fakes proper: a registry of live objects shared by all of them, the
//! abort on a contract violation, and the leak report at exit.

// These functions replace C functions whose contracts are Apple's headers,
// cited per rule in docs/macos-fakes.md; repeating them as `# Safety`
// sections on every symbol would add nothing.
#![allow(clippy::missing_safety_doc)]

pub(crate) mod cf;
pub(crate) mod conn;
pub(crate) mod dispatch;
pub(crate) mod faults;
pub(crate) mod vmnet;
pub(crate) mod wire;
pub(crate) mod xpc;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

/// Which library an object belongs to: a pointer of one family given to
/// another family's function is a foreign pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Xpc,
    Dispatch,
    Cf,
    Interface,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Self::Xpc => "XPC object",
            Self::Dispatch => "dispatch object",
            Self::Cf => "Core Foundation object",
            Self::Interface => "vmnet interface",
        }
    }
}

struct Registry {
    live: HashMap<usize, Family>,
    /// Addresses of freed objects not reused since: a pointer found here is
    /// a use after free rather than a foreign pointer.
    freed: HashSet<usize>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
static AT_EXIT: Once = Once::new();

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// For the report at exit: the lock, if another thread lets go of it
/// within a moment. The exiting thread may itself hold it (a program may
/// exit from anywhere), so waiting without a bound could hang the exit;
/// giving up at once would misread an object another thread is briefly
/// working on.
pub(crate) fn lock_at_exit<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    for _ in 0..200 {
        match m.try_lock() {
            Ok(g) => return Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => return Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    None
}

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = lock(&REGISTRY);
    let reg = guard.get_or_insert_with(|| Registry {
        live: HashMap::new(),
        freed: HashSet::new(),
    });
    f(reg)
}

/// Aborts the process: `rule` names the contract that was broken.
pub(crate) fn violation(rule: &str) -> ! {
    let bt = std::backtrace::Backtrace::force_capture();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "fake-apple: CONTRACT VIOLATION: {rule}\n(see docs/macos-fakes.md)\n{bt}"
    );
    let _ = err.flush();
    std::process::abort()
}

/// Records a new object (called once per allocation).
pub(crate) fn register(addr: usize, family: Family) {
    AT_EXIT.call_once(|| {
        // SAFETY: `report_at_exit` is an `extern "C" fn()` that never
        // unwinds (it catches panics); atexit only stores the pointer.
        unsafe { libc::atexit(report_at_exit) };
    });
    with_registry(|r| {
        r.freed.remove(&addr);
        r.live.insert(addr, family);
    });
}

/// Checks that `addr` is a live object of `family`; aborts otherwise.
pub(crate) fn check(addr: usize, family: Family, func: &str) {
    if addr == 0 {
        violation(&format!(
            "{func} was given NULL instead of a {}",
            family.name()
        ));
    }
    let found = with_registry(|r| (r.live.get(&addr).copied(), r.freed.contains(&addr)));
    match found {
        (Some(f), _) if f == family => {}
        (Some(other), _) => violation(&format!(
            "{func} was given a {} where a {} belongs (foreign pointer {addr:#x})",
            other.name(),
            family.name()
        )),
        (None, true) => violation(&format!(
            "{func} was given a {} that was already freed (use after free or over-release, \
             pointer {addr:#x})",
            family.name()
        )),
        (None, false) => violation(&format!(
            "{func} was given a pointer {addr:#x} that is not a live {} (foreign pointer)",
            family.name()
        )),
    }
}

/// Forgets an object whose last reference is gone (before it is freed).
pub(crate) fn unregister(addr: usize) {
    with_registry(|r| {
        r.live.remove(&addr);
        r.freed.insert(addr);
    });
}

/// One live object at exit.
pub(crate) struct Live {
    pub(crate) what: String,
    /// Still in use by design at exit (an active listener, client
    /// connection, queue or source), as opposed to leaked.
    pub(crate) in_use: bool,
    /// A dispatch queue this object targets (a queue in use by an object in
    /// use is itself in use).
    pub(crate) targets: Option<usize>,
}

extern "C" fn report_at_exit() {
    let status = std::panic::catch_unwind(report).unwrap_or(0);
    if status != 0 {
        // SAFETY: _exit ends the process at once without running the other
        // exit handlers again (calling exit from an exit handler is
        // undefined; _exit is not).
        unsafe { libc::_exit(status) };
    }
}

/// Writes the leak report; returns the exit status to force (0: none).
fn report() -> i32 {
    // Cancellation is asynchronous: let the work already queued (final
    // events, reply handlers) finish, so that neither cancellation in
    // progress nor a queue reference a work item still holds is taken for
    // a leak. Work behind the exiting thread's own job cannot run, hence
    // the limit.
    dispatch::wait_for_work_elsewhere(std::time::Duration::from_secs(2));
    conn::remove_sockets_at_exit();
    // The registry stays locked while the objects are described: another
    // thread still running (a reader that saw its socket close, a work item)
    // may drop an object's last reference, but cannot unregister and free
    // it until the report is done, so every object described is alive.
    // (Their locks are waited for with a bound, see `lock_at_exit`.)
    let registry = lock(&REGISTRY);
    let live: Vec<(usize, Family)> = registry
        .as_ref()
        .map(|r| r.live.iter().map(|(a, f)| (*a, *f)).collect())
        .unwrap_or_default();
    let mut entries: Vec<(usize, Live)> = live
        .into_iter()
        .map(|(addr, family)| {
            let l = match family {
                // SAFETY: registered objects stay allocated until
                // unregistered, and nothing is unregistered while the
                // registry is locked here.
                Family::Xpc => unsafe { xpc::describe(addr) },
                // SAFETY: as above.
                Family::Dispatch => unsafe { dispatch::describe(addr) },
                // SAFETY: as above.
                Family::Cf => unsafe { cf::describe(addr) },
                Family::Interface => Live {
                    what: "vmnet interface never stopped".into(),
                    in_use: false,
                    targets: None,
                },
            };
            (addr, l)
        })
        .collect();
    drop(registry);
    // Queues targeted by something in use are in use too.
    let used_queues: HashSet<usize> = entries
        .iter()
        .filter(|(_, l)| l.in_use)
        .filter_map(|(_, l)| l.targets)
        .collect();
    for (addr, l) in &mut entries {
        if used_queues.contains(addr) {
            l.in_use = true;
        }
    }
    let transactions = xpc::open_transactions();
    let leaked: Vec<&(usize, Live)> = entries.iter().filter(|(_, l)| !l.in_use).collect();
    let in_use = entries.len() - leaked.len();
    let mut text = format!(
        "fake-apple leak report (pid {}): {} leaked, {} still in use by design, {} open XPC \
         transactions\n",
        std::process::id(),
        leaked.len(),
        in_use,
        transactions
    );
    for (addr, l) in &entries {
        let tag = if l.in_use { "in use" } else { "LEAKED" };
        text.push_str(&format!("  {tag}: {addr:#x} {}\n", l.what));
    }
    let _ = std::io::stderr().write_all(text.as_bytes());
    if let Some(dir) = std::env::var_os("VMNET_BROKER_FAKE_REPORT_DIR") {
        let path = std::path::Path::new(&dir).join(format!("report-{}.txt", std::process::id()));
        let _ = std::fs::write(path, &text);
    }
    if leaked.is_empty() {
        0
    } else {
        crate::LEAK_EXIT_STATUS
    }
}
