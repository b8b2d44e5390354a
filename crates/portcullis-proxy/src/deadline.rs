//! Coarse deadlines for the timeouts every request arms and almost never reaches: the
//! request-head read timeout (hyper's header timer) and the upstream response timeout.
//!
//! tokio's timer is exact, and arming one costs: it takes the time driver's lock, and when the
//! new deadline is the earliest, it wakes the driver through its eventfd: a `write` system
//! call on about every second request (measured with `strace -c` under wrk). These timeouts
//! are seconds long and need no such precision, so they go to a timer of our own: arming one
//! appends a weak reference to a list owned by the current thread (an uncontended lock), and
//! one background thread scans the lists every [`TICK`], waking what has expired and dropping
//! what was cancelled (the future dropped before its deadline). A deadline fires at most one
//! tick late. The scanning thread parks while no deadline is armed anywhere.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

/// How often armed deadlines are checked: the most a deadline fires late.
pub const TICK: Duration = Duration::from_millis(10);

struct Shared {
    at: Instant,
    fired: AtomicBool,
    waker: AtomicWaker,
}

type List = Mutex<Vec<Weak<Shared>>>;

/// Every thread's list of armed deadlines, and the scanning thread's parking spot.
struct Registry {
    lists: Mutex<Vec<Arc<List>>>,
    idle: Mutex<bool>,
    armed: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<&'static Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry: &'static Registry = Box::leak(Box::new(Registry {
            lists: Mutex::new(Vec::new()),
            idle: Mutex::new(true),
            armed: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("portcullis-deadlines".into())
            .spawn(move || scan(registry));
        if let Err(err) = spawned {
            // Without the thread no coarse deadline would ever fire: fail loudly, at start.
            panic!("cannot start the deadline thread: {err}");
        }
        registry
    })
}

thread_local! {
    static LOCAL: Arc<List> = {
        let list = Arc::new(Mutex::new(Vec::new()));
        lock(&registry().lists).push(Arc::clone(&list));
        list
    };
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn arm(shared: &Arc<Shared>) {
    let was_empty = LOCAL.with(|list| {
        let mut list = lock(list);
        list.push(Arc::downgrade(shared));
        list.len() == 1
    });
    if was_empty {
        let registry = registry();
        let mut idle = lock(&registry.idle);
        if *idle {
            *idle = false;
            registry.armed.notify_one();
        }
    }
}

fn scan(registry: &'static Registry) {
    loop {
        let lists: Vec<Arc<List>> = lock(&registry.lists).clone();
        let now = Instant::now();
        let mut pending = 0;
        for list in &lists {
            let mut list = lock(list);
            list.retain(|weak| match weak.upgrade() {
                // Cancelled: the request finished first.
                None => false,
                Some(shared) if shared.at <= now => {
                    shared.fired.store(true, Ordering::Release);
                    shared.waker.wake();
                    false
                }
                Some(_) => true,
            });
            pending += list.len();
        }
        if pending == 0 {
            let mut idle = lock(&registry.idle);
            *idle = true;
            // `arm` pushes before it looks at `idle`: a deadline armed before this check is
            // seen here, one armed after it finds `idle` set and notifies.
            while *idle {
                if lists_pending(registry) {
                    *idle = false;
                    break;
                }
                idle = registry
                    .armed
                    .wait(idle)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        } else {
            std::thread::sleep(TICK);
        }
    }
}

fn lists_pending(registry: &Registry) -> bool {
    lock(&registry.lists)
        .iter()
        .any(|list| !lock(list).is_empty())
}

/// A future that completes at (or at most one [`TICK`] after) its deadline.
pub struct Sleep {
    shared: Arc<Shared>,
    armed: bool,
}

/// Completes at `at`, coarsely.
pub fn sleep_until(at: Instant) -> Sleep {
    Sleep {
        shared: Arc::new(Shared {
            at,
            fired: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }),
        armed: false,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.shared.waker.register(cx.waker());
        if !self.armed {
            if Instant::now() >= self.shared.at {
                return Poll::Ready(());
            }
            arm(&self.shared);
            self.armed = true;
        }
        // The scanner may have fired between the first check and the registration.
        if self.shared.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for Sleep {}

/// [`Sleep`] as hyper's timer, for hyper's request-head read timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoarseTimer;

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(sleep_until(deadline))
    }
}

/// The deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs `future` until it completes or `duration` passes (coarsely: up to one [`TICK`]
/// later).
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let deadline = sleep_until(Instant::now() + duration);
    let mut future = std::pin::pin!(future);
    let mut deadline = std::pin::pin!(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        deadline.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn fires_after_its_deadline_and_not_before() {
        let start = Instant::now();
        sleep_until(start + Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A deadline already past is ready at once.
        sleep_until(start).await;
    }

    #[tokio::test]
    async fn timeout_returns_the_output_or_elapsed() {
        let fast = timeout(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(fast, Ok(7));
        let slow = timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
        assert_eq!(slow, Err(Elapsed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_deadlines_are_dropped_and_the_scanner_parks_and_resumes() {
        for _ in 0..1000 {
            assert_eq!(timeout(Duration::from_secs(60), async {}).await, Ok(()));
        }
        // Every one of those was cancelled: after a scan, nothing is pending.
        let registry = registry();
        let mut waited = Duration::ZERO;
        while lists_pending(registry) {
            assert!(waited < Duration::from_secs(5), "cancelled deadlines kept");
            tokio::time::sleep(TICK).await;
            waited += TICK;
        }
        // Deadlines armed from several threads after the scanner parked still fire.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(async {
                    timeout(Duration::from_millis(15), std::future::pending::<()>()).await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Err(Elapsed));
        }
    }
}
