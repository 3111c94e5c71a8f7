//! libdispatch: serial queues (one thread each), `dispatch_main`, timer
//! and signal sources, and counting semaphores.
//!
//! Linux discards a signal whose disposition is `SIG_IGN` when it is
//! generated, while macOS's kqueue-based signal sources still see it (which
//! is why code using them sets `SIG_IGN` first). So this fake catches the
//! signal itself: activating a signal source installs a handler that
//! forwards the signal to the source, replacing `SIG_IGN`.

use std::cell::Cell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use block2::{Block, RcBlock};

use super::{Family, Live, check, lock, lock_at_exit, register, unregister, violation};

pub(crate) type DPtr = *mut c_void;
type Job = Box<dyn FnOnce() + Send>;

/// A block called later on another thread. Blocks handed to dispatch,
/// libxpc and vmnet run on whatever queue they are given, so the code that
/// passes them must make them safe to call from another thread (block2
/// cannot express that in the type).
pub(crate) struct SendBlock<F: ?Sized>(pub(crate) RcBlock<F>);
// SAFETY: see the type's documentation: that is the contract of every API
// that takes an escaping block.
unsafe impl<F: ?Sized> Send for SendBlock<F> {}
// SAFETY: as above; the block is only called, never mutated.
unsafe impl<F: ?Sized> Sync for SendBlock<F> {}
impl<F: ?Sized> SendBlock<F> {
    pub(crate) fn get(&self) -> &RcBlock<F> {
        &self.0
    }
}
impl<F: ?Sized> Clone for SendBlock<F> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// Copies a block given by C (`Block_copy`); NULL gives `None`.
///
/// # Safety
///
/// `p` is NULL or a valid block of the signature `F`.
pub(crate) unsafe fn copy_block<F: ?Sized + block2::BlockFn>(
    p: *const Block<F>,
) -> Option<SendBlock<F>> {
    // SAFETY: per the caller.
    unsafe { RcBlock::copy(p.cast_mut()) }.map(SendBlock)
}

/// `dispatch_source_type_s`: only the address matters.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct DispatchSourceType {
    _tag: u8,
}

/// `DISPATCH_SOURCE_TYPE_SIGNAL`.
#[unsafe(no_mangle)]
pub(crate) static _dispatch_source_type_signal: DispatchSourceType = DispatchSourceType { _tag: 1 };
/// `DISPATCH_SOURCE_TYPE_TIMER`.
#[unsafe(no_mangle)]
pub(crate) static _dispatch_source_type_timer: DispatchSourceType = DispatchSourceType { _tag: 2 };

struct DObj {
    rc: AtomicUsize,
    kind: DKind,
}

enum DKind {
    Queue(Arc<Queue>),
    Source(Arc<Source>),
    Semaphore(Semaphore),
}

/// A counting semaphore (`dispatch_semaphore_t`).
struct Semaphore {
    /// The value given to `dispatch_semaphore_create`.
    initial: isize,
    state: Mutex<SemaphoreState>,
    changed: Condvar,
}

struct SemaphoreState {
    /// Signals not yet taken by a wait.
    value: isize,
    /// Threads waiting now.
    waiters: usize,
}

struct Queue {
    label: String,
    tx: Mutex<Option<Sender<Job>>>,
    /// Work items sent to this queue and not finished (shared with the
    /// queue's thread).
    pending: Arc<AtomicUsize>,
}

/// Work items sent to any queue and not finished: each holds a reference to
/// its queue until it has run. The report at exit waits for them (see
/// [`jobs_pending_elsewhere`]) so that such a reference, which the runtime
/// holds and not the program, is never taken for a leak.
static PENDING_JOBS: AtomicUsize = AtomicUsize::new(0);

/// Waits (up to `limit`) until no work item is pending on a queue other
/// than the one whose thread calls this: a program may exit from inside a
/// work item, and the items behind it on its own queue can then never run.
pub(crate) fn wait_for_work_elsewhere(limit: Duration) {
    let deadline = Instant::now() + limit;
    while jobs_pending_elsewhere() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn jobs_pending_elsewhere() -> bool {
    let own = OWN_PENDING.try_with(|p| {
        let p = p.get();
        if p.is_null() {
            0
        } else {
            // SAFETY: set by this queue's thread to its own count, which
            // that thread keeps alive for as long as it runs (and this is
            // that thread).
            unsafe { &*p }.load(Ordering::Acquire)
        }
    });
    let own = own.unwrap_or(0);
    PENDING_JOBS.load(Ordering::Acquire) > own
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Signal(c_int),
    Timer,
}

struct Source {
    kind: SourceKind,
    /// The target queue (retained until the source is freed).
    queue: usize,
    st: Mutex<SourceState>,
}

#[derive(Default)]
struct SourceState {
    handler: Option<SendBlock<dyn Fn()>>,
    active: bool,
    cancelled: bool,
    deadline: Option<Instant>,
    interval: u64,
}

thread_local! {
    static CURRENT_QUEUE: Cell<usize> = const { Cell::new(0) };
    /// On a queue's thread: that queue's count of pending work items. A
    /// plain pointer, as a thread-local without a destructor stays readable
    /// from exit handlers (glibc's `exit` destroys the calling thread's
    /// thread-locals that have destructors before it runs them).
    static OWN_PENDING: Cell<*const AtomicUsize> = const { Cell::new(std::ptr::null()) };
}

/// The queue whose thread is running now (0 if none).
pub(crate) fn current_queue() -> usize {
    CURRENT_QUEUE.with(Cell::get)
}

fn dobj(p: DPtr, func: &str) -> &'static DObj {
    check(p as usize, Family::Dispatch, func);
    // SAFETY: checked live; the caller holds a reference.
    unsafe { &*p.cast::<DObj>() }
}

fn alloc(kind: DKind) -> DPtr {
    let p = Box::into_raw(Box::new(DObj {
        rc: AtomicUsize::new(1),
        kind,
    }));
    register(p as usize, Family::Dispatch);
    p.cast()
}

pub(crate) fn queue_check(p: DPtr, func: &str) {
    if !matches!(dobj(p, func).kind, DKind::Queue(_)) {
        violation(&format!(
            "{func} was given a dispatch object that is not a queue"
        ));
    }
}

pub(crate) fn retain(p: DPtr) -> DPtr {
    dobj(p, "dispatch_retain")
        .rc
        .fetch_add(1, Ordering::Relaxed);
    p
}

pub(crate) fn release(p: DPtr) {
    let o = dobj(p, "dispatch_release");
    if o.rc.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    if let DKind::Source(s) = &o.kind {
        let mut st = lock(&s.st);
        if !st.active {
            violation(
                "the last reference to an inactive dispatch source was released (dispatch2's \
                 documentation of DispatchSource::new: activate a source before its last release)",
            );
        }
        st.cancelled = true;
        st.handler = None;
    }
    if let DKind::Semaphore(sem) = &o.kind
        && lock(&sem.state).value < sem.initial
    {
        violation(
            "a dispatch semaphore was released while its value was below the one it was created \
             with (dispatch/semaphore.h: signal it as often as it was waited on first)",
        );
    }
    unregister(p as usize);
    // SAFETY: last reference, unregistered.
    let o = unsafe { Box::from_raw(p.cast::<DObj>()) };
    match &o.kind {
        DKind::Queue(q) => {
            lock(&q.tx).take();
        }
        DKind::Source(s) => release(s.queue as DPtr),
        DKind::Semaphore(_) => {}
    }
}

/// Runs `job` on queue `q` (retained until the job has run).
pub(crate) fn enqueue(q: usize, job: Job) {
    retain(q as DPtr);
    enqueue_owned(q, job);
}

/// Runs `job` on queue `q`, whose reference the caller hands over: the work
/// item releases it once the job has run. A reference released after the
/// enqueue instead could outlive the job, and a program that exits as soon
/// as the job has run would then see it at exit.
pub(crate) fn enqueue_owned(q: usize, job: Job) {
    let DKind::Queue(queue) = &dobj(q as DPtr, "dispatch_async").kind else {
        violation("work was sent to a dispatch object that is not a queue");
    };
    let pending = Arc::clone(&queue.pending);
    pending.fetch_add(1, Ordering::AcqRel);
    PENDING_JOBS.fetch_add(1, Ordering::AcqRel);
    let done = move || {
        release(q as DPtr);
        pending.fetch_sub(1, Ordering::AcqRel);
        PENDING_JOBS.fetch_sub(1, Ordering::AcqRel);
    };
    let wrapped: Job = Box::new(move || {
        job();
        done();
    });
    let tx = lock(&queue.tx).clone();
    // The work item's reference keeps the queue (and so its sender) alive,
    // so the send cannot fail; should it, the item is finished unrun.
    if let Some(Err(std::sync::mpsc::SendError(_unrun))) = tx.map(|tx| tx.send(wrapped)) {
        violation("a queue that work still references has no thread");
    }
}

/// A new serial queue (+1).
pub(crate) fn new_queue(label: &str) -> usize {
    let (tx, rx) = channel::<Job>();
    let pending = Arc::new(AtomicUsize::new(0));
    let q = Arc::new(Queue {
        label: label.to_owned(),
        tx: Mutex::new(Some(tx)),
        pending: Arc::clone(&pending),
    });
    let p = alloc(DKind::Queue(q)) as usize;
    let spawned = std::thread::Builder::new()
        .name(format!("fake-dispatch {label}"))
        .spawn(move || {
            CURRENT_QUEUE.with(|c| c.set(p));
            // `pending` lives in this closure as long as the thread runs.
            OWN_PENDING.with(|o| o.set(Arc::as_ptr(&pending)));
            while let Ok(job) = rx.recv() {
                job();
            }
        });
    if spawned.is_err() {
        violation("the dispatch fake could not start a thread for a queue");
    }
    p
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_queue_create(
    label: *const c_char,
    attr: *const c_void,
) -> DPtr {
    if !attr.is_null() {
        violation(
            "dispatch_queue_create: the fake implements serial queues only (attr must be NULL)",
        );
    }
    let label = if label.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated label per dispatch/queue.h.
        unsafe { CStr::from_ptr(label) }
            .to_string_lossy()
            .into_owned()
    };
    new_queue(&label) as DPtr
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_retain(object: DPtr) {
    retain(object);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_release(object: DPtr) {
    release(object);
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn dispatch_main() -> ! {
    // pause(2) rather than a park: a signal sent to the process usually
    // lands on this thread, and ThreadSanitizer runs a handler only when
    // the thread is in, or leaves, a call it intercepts (a futex wait is
    // not one), so a parked main thread would never see SIGTERM under TSan.
    loop {
        // SAFETY: pause has no arguments and only waits for a signal.
        unsafe { libc::pause() };
    }
}

// ----- Time -----

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

const FOREVER: u64 = !0;

/// Fake dispatch times are nanoseconds since a process epoch, plus one (0
/// is `DISPATCH_TIME_NOW`).
#[unsafe(no_mangle)]
pub(crate) extern "C" fn dispatch_time(when: u64, delta: i64) -> u64 {
    if when == FOREVER {
        return FOREVER;
    }
    let base = if when == 0 {
        u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(FOREVER - 1) + 1
    } else {
        when
    };
    let t = i128::from(base) + i128::from(delta);
    u64::try_from(t.clamp(1, i128::from(FOREVER - 1))).unwrap_or(1)
}

fn instant_of(t: u64) -> Option<Instant> {
    match t {
        FOREVER => None,
        0 => Some(Instant::now()),
        t => Some(epoch() + Duration::from_nanos(t - 1)),
    }
}

// ----- Semaphores -----

fn semaphore(p: DPtr, func: &str) -> &'static Semaphore {
    match &dobj(p, func).kind {
        DKind::Semaphore(s) => s,
        _ => violation(&format!(
            "{func} was given a dispatch object that is not a semaphore"
        )),
    }
}

/// `dispatch_semaphore_create` (+1); NULL for a negative value, as
/// dispatch/semaphore.h says.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn dispatch_semaphore_create(value: isize) -> DPtr {
    if value < 0 {
        return std::ptr::null_mut();
    }
    alloc(DKind::Semaphore(Semaphore {
        initial: value,
        state: Mutex::new(SemaphoreState { value, waiters: 0 }),
        changed: Condvar::new(),
    }))
}

/// `dispatch_semaphore_signal`: non-zero when it woke a waiter.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_semaphore_signal(sem: DPtr) -> isize {
    let s = semaphore(sem, "dispatch_semaphore_signal");
    let mut st = lock(&s.state);
    st.value += 1;
    let woke = st.waiters > 0;
    drop(st);
    s.changed.notify_one();
    isize::from(woke)
}

/// `dispatch_semaphore_wait`: 0 once it took a signal, non-zero when
/// `timeout` passed first.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_semaphore_wait(sem: DPtr, timeout: u64) -> isize {
    let s = semaphore(sem, "dispatch_semaphore_wait");
    let deadline = instant_of(timeout);
    let mut st = lock(&s.state);
    st.waiters += 1;
    let taken = loop {
        if st.value > 0 {
            st.value -= 1;
            break true;
        }
        match deadline {
            None => st = s.changed.wait(st).unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break false;
                }
                st = s
                    .changed
                    .wait_timeout(st, left)
                    .map_or_else(|e| e.into_inner().0, |(g, _)| g);
            }
        }
    };
    st.waiters -= 1;
    isize::from(!taken)
}

// ----- Sources -----

fn source(p: DPtr, func: &str) -> &'static Arc<Source> {
    match &dobj(p, func).kind {
        DKind::Source(s) => s,
        _ => violation(&format!(
            "{func} was given a dispatch object that is not a source"
        )),
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_source_create(
    kind: *const DispatchSourceType,
    handle: usize,
    mask: usize,
    queue: DPtr,
) -> DPtr {
    let kind = if std::ptr::eq(kind, &raw const _dispatch_source_type_signal) {
        match c_int::try_from(handle) {
            Ok(sig) if sig > 0 && sig < 65 => SourceKind::Signal(sig),
            _ => return std::ptr::null_mut(),
        }
    } else if std::ptr::eq(kind, &raw const _dispatch_source_type_timer) {
        SourceKind::Timer
    } else {
        violation("dispatch_source_create: the fake implements signal and timer sources only");
    };
    if mask != 0 {
        violation(
            "dispatch_source_create: signal and timer sources take mask 0 (dispatch/source.h)",
        );
    }
    let queue = if queue.is_null() {
        new_queue("fake-dispatch default target") as DPtr
    } else {
        queue_check(queue, "dispatch_source_create");
        retain(queue)
    };
    let s = Arc::new(Source {
        kind,
        queue: queue as usize,
        st: Mutex::new(SourceState {
            interval: FOREVER,
            ..SourceState::default()
        }),
    });
    let p = alloc(DKind::Source(s.clone()));
    lock(&SOURCES).push(Arc::downgrade(&s));
    p
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_source_set_event_handler(
    src: DPtr,
    handler: *const Block<dyn Fn()>,
) {
    let s = source(src, "dispatch_source_set_event_handler");
    // SAFETY: NULL or a block of this signature (dispatch_block_t).
    let block = unsafe { copy_block(handler) };
    lock(&s.st).handler = block;
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_activate(object: DPtr) {
    if let DKind::Source(s) = &dobj(object, "dispatch_activate").kind {
        let was = std::mem::replace(&mut lock(&s.st).active, true);
        if !was {
            if let SourceKind::Signal(sig) = s.kind {
                catch_signal(sig);
            }
            wake_timers();
        }
    }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_resume(object: DPtr) {
    // SAFETY: same contract.
    unsafe { dispatch_activate(object) }
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_source_cancel(src: DPtr) {
    let s = source(src, "dispatch_source_cancel");
    let handler = {
        let mut st = lock(&s.st);
        st.cancelled = true;
        st.deadline = None;
        st.handler.take()
    };
    drop(handler);
}

#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dispatch_source_set_timer(
    src: DPtr,
    start: u64,
    interval: u64,
    _leeway: u64,
) {
    let s = source(src, "dispatch_source_set_timer");
    if s.kind != SourceKind::Timer {
        violation("dispatch_source_set_timer on a source that is not a timer");
    }
    {
        let mut st = lock(&s.st);
        if st.cancelled {
            return;
        }
        st.deadline = instant_of(start);
        st.interval = interval;
    }
    wake_timers();
}

/// Queues the source's handler on its queue (unless cancelled by then).
fn fire(s: &Arc<Source>) {
    let s2 = s.clone();
    enqueue(
        s.queue,
        Box::new(move || {
            let h = {
                let st = lock(&s2.st);
                if st.cancelled || !st.active {
                    return;
                }
                st.handler.clone()
            };
            if let Some(h) = h {
                h.get().call(());
            }
        }),
    );
}

static SOURCES: Mutex<Vec<Weak<Source>>> = Mutex::new(Vec::new());
static TIMER_WAKE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
static TIMER_THREAD: Once = Once::new();

fn live_sources() -> Vec<Arc<Source>> {
    let mut v = lock(&SOURCES);
    v.retain(|w| w.strong_count() > 0);
    v.iter().filter_map(Weak::upgrade).collect()
}

fn wake_timers() {
    TIMER_THREAD.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("fake-dispatch timers".into())
            .spawn(timer_loop);
    });
    *lock(&TIMER_WAKE.0) = true;
    TIMER_WAKE.1.notify_all();
}

fn timer_loop() {
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for s in live_sources() {
            if s.kind != SourceKind::Timer {
                continue;
            }
            let due = {
                let mut st = lock(&s.st);
                match st.deadline {
                    Some(d) if st.active && !st.cancelled => {
                        if d <= now {
                            st.deadline = if st.interval == FOREVER {
                                None
                            } else {
                                Some(now + Duration::from_nanos(st.interval.max(1)))
                            };
                            true
                        } else {
                            next = Some(next.map_or(d, |n| n.min(d)));
                            false
                        }
                    }
                    _ => false,
                }
            };
            if due {
                fire(&s);
            }
        }
        let mut woken = lock(&TIMER_WAKE.0);
        if !*woken {
            let wait = next.map_or(Duration::from_secs(3600), |n| {
                n.saturating_duration_since(Instant::now())
            });
            woken = TIMER_WAKE
                .1
                .wait_timeout(woken, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        *woken = false;
    }
}

// Signals: a self-pipe written by the handler, read by one thread.
static SIGNAL_PIPE: OnceLock<[c_int; 2]> = OnceLock::new();

extern "C" fn on_signal(sig: c_int) {
    if let Some(fds) = SIGNAL_PIPE.get() {
        let b = u8::try_from(sig).unwrap_or(0);
        // SAFETY: write(2) is async-signal-safe; one byte from a local.
        unsafe { libc::write(fds[1], (&raw const b).cast(), 1) };
    }
}

fn catch_signal(sig: c_int) {
    let fds = SIGNAL_PIPE.get_or_init(|| {
        let mut fds = [0 as c_int; 2];
        // SAFETY: a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            violation("the dispatch fake could not create its signal pipe");
        }
        let rd = fds[0];
        let _ = std::thread::Builder::new()
            .name("fake-dispatch signals".into())
            .spawn(move || {
                loop {
                    let mut b = 0u8;
                    // SAFETY: reads one byte into a local.
                    let n = unsafe { libc::read(rd, (&raw mut b).cast(), 1) };
                    if n != 1 {
                        continue;
                    }
                    for s in live_sources() {
                        let armed = {
                            let st = lock(&s.st);
                            st.active && !st.cancelled
                        };
                        if armed && s.kind == SourceKind::Signal(c_int::from(b)) {
                            fire(&s);
                        }
                    }
                }
            });
        fds
    });
    let _ = fds;
    // SAFETY: sigaction is plain data; all zeroes is a valid value (no
    // handler, no flags, an empty-or-garbage mask set just below).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_signal as extern "C" fn(c_int) as usize;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: a fully initialized sigaction with our async-signal-safe
    // handler; the signal number was checked by dispatch_source_create;
    // the old action is not wanted (NULL is allowed).
    unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
}

/// For the leak report.
///
/// # Safety
///
/// `addr` is a registered dispatch object.
pub(crate) unsafe fn describe(addr: usize) -> Live {
    // SAFETY: per the caller.
    let o = unsafe { &*(addr as *const DObj) };
    match &o.kind {
        DKind::Queue(q) => Live {
            what: format!("dispatch queue {:?}", q.label),
            in_use: false,
            targets: None,
        },
        DKind::Source(s) => {
            let (active, cancelled) = lock_at_exit(&s.st)
                .map(|st| (st.active, st.cancelled))
                .unwrap_or((true, false));
            let kind = match s.kind {
                SourceKind::Signal(n) => format!("signal {n}"),
                SourceKind::Timer => "timer".into(),
            };
            Live {
                what: format!("dispatch {kind} source (active {active}, cancelled {cancelled})"),
                in_use: active && !cancelled,
                targets: Some(s.queue),
            }
        }
        DKind::Semaphore(s) => {
            let waiters = lock_at_exit(&s.state).map_or(1, |st| st.waiters);
            Live {
                what: format!("dispatch semaphore ({waiters} waiting)"),
                in_use: waiters > 0,
                targets: None,
            }
        }
    }
}
