//! Waiting for an execution from a Python thread without making Ctrl-C
//! wait for it: the future is polled on this thread, which parks between
//! polls for at most [`SIGNAL_CHECK`] and then lets Python handle pending
//! signals. A `KeyboardInterrupt` (or any exception a signal handler
//! raises) drops the future, which cancels the execution (Morph moves its
//! deadline to now), and is raised to the caller.
//!
//! Python runs signal handlers on the main thread only; on other threads
//! the check finds nothing and the wait lasts until the execution ends.
//! With the inline executor the execution runs inside the first poll, so
//! a signal is handled when it returns.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use pyo3::prelude::*;

/// How long a wait goes without looking at Python's pending signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Wakes the thread that polls.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on this thread (the GIL released), unless a
/// Python signal handler raises first: then the future is dropped and the
/// exception returned.
pub fn block_on<F: Future>(future: F) -> PyResult<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
        return Ok(output);
    }
    loop {
        thread::park_timeout(SIGNAL_CHECK);
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Ok(output);
        }
        // Still running: a moment to let Python run its signal handlers
        // (the GIL is taken only here, not on the way out of a call).
        Python::attach(|py| py.check_signals())?;
    }
}
