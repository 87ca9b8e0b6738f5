//! The execution threads: engines are synchronous, so morph-core runs them
//! on its own pool (explicit stack size, never the embedding application's
//! async runtime) and the async API awaits the result.

use std::sync::OnceLock;
use std::thread;

use crossbeam_channel::{Sender, unbounded};

use crate::error::{MorphError, Result};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Settings of an [`Executor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorOptions {
    /// Number of execution threads. Default: the machine's parallelism,
    /// at least 2.
    pub threads: usize,
    /// Native stack of each thread in bytes. Default 8 MiB; engines keep
    /// their own guest stack limits well below it.
    pub stack_size: usize,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            threads: thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            stack_size: 8 << 20,
        }
    }
}

/// A pool of execution threads. Cloning shares the pool; the threads end
/// when the last clone is dropped and the queue is empty.
#[derive(Debug, Clone)]
pub struct Executor {
    jobs: Sender<Job>,
    options: ExecutorOptions,
}

impl Executor {
    /// Starts a pool.
    pub fn new(options: ExecutorOptions) -> Result<Self> {
        let (jobs, queue) = unbounded::<Job>();
        for i in 0..options.threads.max(1) {
            let queue = queue.clone();
            thread::Builder::new()
                .name(format!("morph-exec-{i}"))
                .stack_size(options.stack_size)
                .spawn(move || {
                    for job in queue {
                        job();
                    }
                })
                .map_err(|e| MorphError::io_error(format!("cannot start execution thread: {e}")))?;
        }
        Ok(Executor { jobs, options })
    }

    /// The process-wide pool with default options, started on first use.
    pub fn shared() -> Result<Executor> {
        static SHARED: OnceLock<std::result::Result<Executor, MorphError>> = OnceLock::new();
        SHARED
            .get_or_init(|| Executor::new(ExecutorOptions::default()))
            .clone()
    }

    /// The pool's settings.
    pub fn options(&self) -> ExecutorOptions {
        self.options
    }

    /// Runs `f` on an execution thread and awaits its result. A panic in
    /// `f` (an engine bug) is caught and reported as `host_error`; the
    /// thread lives on.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(MorphError::host_error(format!(
                        "the engine panicked on an execution thread: {what}"
                    )))
                });
            // The receiver is gone when the caller stopped waiting.
            let _ = tx.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| MorphError::host_error("the execution pool has stopped"))?;
        rx.await
            .map_err(|_| MorphError::host_error("the execution thread dropped its result"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_a_named_thread_with_results_and_panics() {
        let ex = Executor::new(ExecutorOptions {
            threads: 1,
            stack_size: 1 << 20,
        })
        .unwrap();
        let name = ex
            .run(|| Ok(thread::current().name().map(str::to_string)))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("morph-exec-0"));
        let e = ex
            .run(|| -> Result<()> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(e.message().contains("boom"));
        assert_eq!(ex.run(|| Ok(7)).await.unwrap(), 7);
    }
}
