//! The wall-clock deadline of one execution, shared between the caller
//! (which may cancel) and the engine (which checks it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Nanoseconds since the first deadline of this process (a monotonic
/// base, so a start time fits in an atomic).
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    u64::try_from(BASE.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
struct Inner {
    start_ns: AtomicU64,
    limit_ns: AtomicU64,
}

/// A deadline: `limit` after its creation, or now once cancelled. Cheap to
/// clone and to check from any thread.
#[derive(Debug, Clone)]
pub struct Deadline(Arc<Inner>);

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Self {
        Deadline(Arc::new(Inner {
            start_ns: AtomicU64::new(now_ns()),
            limit_ns: AtomicU64::new(u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX)),
        }))
    }

    /// Starts the clock again from now, keeping the limit: an execution
    /// that waited in a queue gets its whole limit once it starts running.
    /// A cancelled deadline stays expired.
    pub fn restart(&self) {
        self.0.start_ns.store(now_ns(), Ordering::Relaxed);
    }

    fn elapsed_ns(&self) -> u64 {
        now_ns().saturating_sub(self.0.start_ns.load(Ordering::Relaxed))
    }

    /// Whether the deadline has passed (or was cancelled).
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.limit()
            .saturating_sub(Duration::from_nanos(self.elapsed_ns()))
    }

    /// The limit it was set with (zero once cancelled).
    pub fn limit(&self) -> Duration {
        Duration::from_nanos(self.0.limit_ns.load(Ordering::Relaxed))
    }

    /// How far past the deadline it is now (zero before it).
    pub fn overrun(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns()).saturating_sub(self.limit())
    }

    /// Time since the deadline was set (or last restarted).
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed_ns())
    }

    /// Pushes the deadline `by` later (not once cancelled): for host work
    /// that is not the guest's, such as starting a worker process.
    pub fn extend(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .limit_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |limit| {
                (limit != 0).then(|| limit.saturating_add(by))
            });
    }

    /// Moves the deadline to now: the engine stops at its next check.
    pub fn cancel(&self) {
        self.0.limit_ns.store(0, Ordering::Relaxed);
    }
}

/// Cancels a deadline when dropped, unless disarmed: ties an execution to
/// the future awaiting it.
#[derive(Debug)]
pub struct CancelOnDrop(Option<Deadline>);

impl CancelOnDrop {
    /// Guards `deadline`.
    pub fn new(deadline: Deadline) -> Self {
        CancelOnDrop(Some(deadline))
    }

    /// The awaited work finished: dropping no longer cancels.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            d.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_expires_now_and_drop_guard_cancels() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.expired());
        drop(CancelOnDrop::new(d.clone()));
        assert!(d.expired());
        let d = Deadline::after(Duration::from_secs(60));
        CancelOnDrop::new(d.clone()).disarm();
        assert!(!d.expired());
    }

    #[test]
    fn restart_gives_the_whole_limit_again_but_not_after_cancel() {
        let d = Deadline::after(Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert!(d.expired());
        d.restart();
        assert!(!d.expired());
        assert!(d.remaining() > Duration::from_millis(20));
        d.cancel();
        d.restart();
        assert!(d.expired());
    }

    #[test]
    fn extend_moves_a_live_deadline_only() {
        let d = Deadline::after(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(d.expired());
        d.extend(Duration::from_secs(60));
        assert!(!d.expired());
        d.cancel();
        d.extend(Duration::from_secs(60));
        assert!(d.expired());
    }
}
