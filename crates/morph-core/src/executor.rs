//! The execution threads: engines are synchronous, so morph-core runs them
//! on its own pool (explicit stack size, never the embedding application's
//! async runtime) and the async API awaits the result.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::deadline::Deadline;
use crate::error::{MorphError, Result};

type Job = Box<dyn FnOnce(&Slot) + Send + 'static>;

/// The next job: polled for `spin` (only by a thread that just finished
/// one), then waited for. `None` once the pool is dropped.
fn next_job(queue: &Receiver<Job>, spin: Duration) -> Option<Job> {
    let started = std::time::Instant::now();
    while started.elapsed() < spin {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    queue.recv().ok()
}

/// How often the watchdog looks at running executions.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(100);

/// What an execution thread is running, for the watchdog.
struct Running {
    deadline: Deadline,
    grace: Duration,
    on_overrun: Box<dyn FnOnce() + Send>,
}

/// One execution thread's current job, if it has a deadline.
#[derive(Default)]
struct Slot {
    running: Mutex<Option<Running>>,
    /// The watchdog gave up on this thread's execution and started a
    /// replacement: the thread ends once the engine returns.
    abandoned: AtomicBool,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Settings of an [`Executor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorOptions {
    /// Number of execution threads. Default: the machine's parallelism,
    /// at least 2.
    pub threads: usize,
    /// Native stack of each thread in bytes. Default 16 MiB (address space
    /// only: pages are touched as they are used). Engines keep their own
    /// guest stack limits below it; wasm3's native-stack guard allows
    /// 8 MiB − 128 KiB below the point where a call enters it, so a thread
    /// must leave more than 8 MiB free there.
    pub stack_size: usize,
    /// How long a thread that just finished an execution polls for the
    /// next one before it parks. Back-to-back executions then skip waking
    /// a parked thread (about 10 µs here; `hop` in docs/benchmarks.md), at
    /// the price of up to this much busy CPU after each execution. Default
    /// 50 µs; zero parks at once.
    pub spin_before_park: Duration,
    /// Executions that may wait for a thread; one more is refused with
    /// `quota_exceeded` (the host is overloaded). Default 1024.
    pub max_queued: usize,
    /// Threads the watchdog may replace while their abandoned execution
    /// is still running (an engine that ignores its deadline keeps its
    /// thread until it returns): past this many, no more replacements are
    /// started and the error log says so, and a stuck thread that was not
    /// replaced rejoins the pool when its engine returns (so the pool
    /// never shrinks below `threads`). Default: `threads`.
    pub max_replaced: usize,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        let threads = thread::available_parallelism().map_or(2, |n| n.get().max(2));
        ExecutorOptions {
            threads,
            stack_size: 16 << 20,
            spin_before_park: Duration::from_micros(50),
            max_queued: 1024,
            max_replaced: threads,
        }
    }
}

/// A pool of execution threads. Cloning shares the pool; the threads end
/// when the last clone is dropped and the queue is empty.
///
/// [`Executor::inline`] is the other choice: no pool, executions run on
/// the thread that awaits them.
#[derive(Debug, Clone)]
pub struct Executor {
    /// `None` for an inline executor.
    jobs: Option<Sender<Job>>,
    options: ExecutorOptions,
    _alive: Arc<()>,
}

/// What the pool's threads and its watchdog share.
struct Pool {
    queue: Receiver<Job>,
    slots: Mutex<Vec<Arc<Slot>>>,
    options: ExecutorOptions,
    next_id: AtomicUsize,
    /// Threads whose execution was abandoned and replaced, and that have
    /// not returned yet (each leaves the pool when it does).
    replaced: AtomicUsize,
}

impl Pool {
    fn slots(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts one more execution thread.
    fn spawn_thread(self: &Arc<Self>) -> std::io::Result<()> {
        let slot = Arc::new(Slot::default());
        self.slots().push(slot.clone());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pool = self.clone();
        let spawned = thread::Builder::new()
            .name(format!("morph-exec-{id}"))
            .stack_size(self.options.stack_size)
            .spawn(move || {
                let mut spin = Duration::ZERO;
                while let Some(job) = next_job(&pool.queue, spin) {
                    job(&slot);
                    if slot.abandoned.load(Ordering::Relaxed) {
                        // Replaced while it ran: leave the pool its size.
                        pool.replaced.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                    spin = pool.options.spin_before_park;
                }
                pool.slots().retain(|s| !Arc::ptr_eq(s, &slot));
            });
        if let Err(e) = spawned {
            self.slots().pop();
            return Err(e);
        }
        Ok(())
    }

    /// One round of the watchdog: answers `timeout` for every execution
    /// past its deadline and grace, and replaces its thread while fewer
    /// than [`ExecutorOptions::max_replaced`] replaced threads are still
    /// running. A thread that is not replaced (past that bound, or when no
    /// thread can be started) stays in the pool and serves again once its
    /// engine returns, so the pool never shrinks below its size.
    fn watch(self: &Arc<Self>) {
        let slots: Vec<Arc<Slot>> = self.slots().clone();
        for slot in slots {
            // Held until the thread's fate is decided: the thread clears
            // its job under this lock before it looks at `abandoned`, so
            // it cannot finish in between and miss (or wrongly see) it.
            let mut running = slot.lock();
            let late = running
                .as_ref()
                .is_some_and(|r| r.deadline.overrun() > r.grace);
            if !late {
                continue;
            }
            let Some(r) = running.take() else { continue };
            (r.on_overrun)();
            let replaced = self.replaced.load(Ordering::Relaxed);
            if replaced >= self.options.max_replaced {
                tracing::error!(
                    grace_ms = r.grace.as_millis() as u64,
                    replaced,
                    "an execution did not stop at its deadline; its caller gets `timeout`, and its thread is not replaced (too many replaced threads are still held by engines that ignore their deadline): it serves again when the engine returns"
                );
                continue;
            }
            match self.spawn_thread() {
                Ok(()) => {
                    slot.abandoned.store(true, Ordering::Relaxed);
                    self.replaced.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        grace_ms = r.grace.as_millis() as u64,
                        "an execution did not stop at its deadline; its caller gets `timeout` and its thread is replaced"
                    );
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "an execution did not stop at its deadline; its caller gets `timeout`, and no replacement thread can be started: the thread serves again when the engine returns"
                ),
            }
        }
    }
}

impl Executor {
    /// Starts a pool.
    pub fn new(options: ExecutorOptions) -> Result<Self> {
        let (jobs, queue) = bounded::<Job>(options.max_queued.max(1));
        let spawn_error = |e| MorphError::io_error(format!("cannot start execution thread: {e}"));
        let pool = Arc::new(Pool {
            queue,
            slots: Mutex::new(Vec::new()),
            options,
            next_id: AtomicUsize::new(0),
            replaced: AtomicUsize::new(0),
        });
        for _ in 0..options.threads.max(1) {
            pool.spawn_thread().map_err(spawn_error)?;
        }
        // The watchdog ends when the last clone of this executor is dropped.
        let alive = Arc::new(());
        let watching = Arc::downgrade(&alive);
        thread::Builder::new()
            .name("morph-watchdog".into())
            .spawn(move || {
                while watching.strong_count() > 0 {
                    thread::sleep(WATCHDOG_PERIOD);
                    pool.watch();
                }
            })
            .map_err(spawn_error)?;
        Ok(Executor {
            jobs: Some(jobs),
            options,
            _alive: alive,
        })
    }

    /// An executor without threads: each execution runs on the thread that
    /// polls its future, saving the hop to a pool thread and back (measured
    /// in `docs/benchmarks.md`). For hosts that already call Morph from
    /// their own blocking threads (a thread per request, or tokio's
    /// `spawn_blocking`): the future blocks that thread until the guest
    /// returns, and there is no watchdog backstop, so a guest is stopped
    /// only by its engine's own limits (which every backend has). The
    /// thread needs a few MiB of stack for the JIT engines and wasmi
    /// (tokio's blocking threads have 2 MiB unless `thread_stack_size`
    /// says more); a backend that needs a known larger native stack
    /// (wasm3, see [`Backend::native_stack_needed`](crate::Backend)) is
    /// never run inline: [`EngineRuntime::with_executor`](crate::EngineRuntime)
    /// gives it the shared pool. Not for a thread of an async runtime's
    /// worker pool.
    pub fn inline() -> Executor {
        Executor {
            jobs: None,
            options: ExecutorOptions {
                threads: 0,
                stack_size: 0,
                spin_before_park: Duration::ZERO,
                max_queued: 0,
                max_replaced: 0,
            },
            _alive: Arc::new(()),
        }
    }

    /// Whether executions run on the calling thread.
    pub fn is_inline(&self) -> bool {
        self.jobs.is_none()
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
        self.run_until(None, f).await
    }

    /// Like [`run`](Self::run), with a backstop: the engine must stop `f`
    /// at `deadline`, which counts from when `f` starts running (time in
    /// the queue is not the guest's); if it is still running
    /// `max(1 s, its limit)` later, the watchdog logs an error, the caller
    /// gets `timeout` at once, and a new thread takes the stuck one's
    /// place in the pool (at most [`ExecutorOptions::max_replaced`] at a
    /// time). The stuck thread cannot be killed: it ends when `f` returns.
    /// More than [`ExecutorOptions::max_queued`] waiting executions are
    /// refused with `quota_exceeded`.
    pub async fn run_until<T, F>(&self, deadline: Option<&Deadline>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let Some(jobs) = &self.jobs else {
            if let Some(deadline) = deadline {
                deadline.restart();
            }
            return run_caught(f);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let watched = deadline.map(|d| (d.clone(), tx.clone()));
        let job: Job = Box::new(move |slot: &Slot| {
            if let Some((deadline, tx)) = watched {
                // The limit counts from here, not from when it was queued.
                deadline.restart();
                let grace = deadline.limit().max(Duration::from_secs(1));
                *slot.lock() = Some(Running {
                    deadline,
                    grace,
                    on_overrun: Box::new(move || {
                        if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            let _ = tx.send(Err(MorphError::timeout(format!(
                                "the engine did not stop {} ms after the deadline; the execution was abandoned",
                                grace.as_millis()
                            ))));
                        }
                    }),
                });
            }
            let result = run_caught(f);
            *slot.lock() = None;
            if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                // The receiver is gone when the caller stopped waiting.
                let _ = tx.send(result);
            }
        });
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => MorphError::quota_exceeded(format!(
                "the execution queue is full: {} executions already wait for the {} execution threads",
                self.options.max_queued, self.options.threads
            )),
            TrySendError::Disconnected(_) => {
                MorphError::host_error("the execution pool has stopped")
            }
        })?;
        rx.await
            .map_err(|_| MorphError::host_error("the execution thread dropped its result"))?
    }
}

/// Runs `f`, turning a panic (an engine bug) into `host_error`.
fn run_caught<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(MorphError::host_error(format!(
            "the engine panicked on an execution thread: {what}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_a_named_thread_with_results_and_panics() {
        let ex = Executor::new(ExecutorOptions {
            threads: 1,
            stack_size: 1 << 20,
            ..ExecutorOptions::default()
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

    #[tokio::test]
    async fn the_watchdog_answers_for_an_engine_that_does_not_stop() {
        let ex = Executor::new(ExecutorOptions {
            threads: 2,
            stack_size: 1 << 20,
            ..ExecutorOptions::default()
        })
        .unwrap();
        let deadline = Deadline::after(Duration::from_millis(10));
        let started = std::time::Instant::now();
        // An "engine" that ignores its deadline for 3 s.
        let e = ex
            .run_until(Some(&deadline), || {
                thread::sleep(Duration::from_secs(3));
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Timeout);
        let waited = started.elapsed();
        assert!(waited < Duration::from_millis(2500), "{waited:?}");
        // The other thread still serves.
        assert_eq!(ex.run(|| Ok(1)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_stuck_thread_is_replaced_so_the_pool_keeps_serving() {
        let ex = Executor::new(ExecutorOptions {
            threads: 1,
            stack_size: 1 << 20,
            ..ExecutorOptions::default()
        })
        .unwrap();
        let deadline = Deadline::after(Duration::from_millis(10));
        let stuck = ex.run_until(Some(&deadline), || {
            thread::sleep(Duration::from_secs(4));
            Ok(())
        });
        assert_eq!(
            stuck.await.unwrap_err().kind(),
            crate::error::ErrorKind::Timeout
        );
        // The only thread is still asleep; its replacement serves at once.
        let started = std::time::Instant::now();
        assert_eq!(ex.run(|| Ok(2)).await.unwrap(), 2);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "waited {:?} for the stuck thread",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_stuck_thread_past_max_replaced_rejoins_the_pool() {
        // One thread, one replacement allowed: the first stuck execution
        // is replaced, the second (on the replacement) is not. Once both
        // return, the pool must still have a thread; it used to lose both.
        let ex = Executor::new(ExecutorOptions {
            threads: 1,
            max_replaced: 1,
            stack_size: 1 << 20,
            ..ExecutorOptions::default()
        })
        .unwrap();
        let stuck = |ms| {
            let deadline = Deadline::after(Duration::from_millis(10));
            let ex = ex.clone();
            async move {
                ex.run_until(Some(&deadline), move || {
                    thread::sleep(Duration::from_millis(ms));
                    Ok(())
                })
                .await
            }
        };
        // The first is still stuck when the second is given up on.
        let first = stuck(4000).await.unwrap_err();
        assert_eq!(first.kind(), crate::error::ErrorKind::Timeout);
        let second = stuck(1600).await.unwrap_err();
        assert_eq!(second.kind(), crate::error::ErrorKind::Timeout);
        // The second thread serves again once it returns (the first
        // leaves the pool when it does, as its replacement took its place).
        let served = tokio::time::timeout(Duration::from_secs(10), ex.run(|| Ok(4))).await;
        assert_eq!(
            served
                .expect("no execution thread is left in the pool")
                .unwrap(),
            4
        );
    }

    #[tokio::test]
    async fn the_deadline_counts_from_the_start_not_the_queue() {
        let ex = Executor::new(ExecutorOptions {
            threads: 1,
            stack_size: 1 << 20,
            ..ExecutorOptions::default()
        })
        .unwrap();
        let busy = ex.run(|| {
            thread::sleep(Duration::from_millis(400));
            Ok(())
        });
        let deadline = Deadline::after(Duration::from_millis(300));
        let seen = deadline.clone();
        let queued = ex.run_until(Some(&deadline), move || Ok(seen.remaining()));
        let (busy, left) = tokio::join!(busy, queued);
        busy.unwrap();
        let left = left.unwrap();
        assert!(
            left > Duration::from_millis(200),
            "the queued execution started with {left:?} of its 300 ms"
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let ex = Executor::new(ExecutorOptions {
            threads: 1,
            stack_size: 1 << 20,
            max_queued: 2,
            ..ExecutorOptions::default()
        })
        .unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let spawn = |f: Box<dyn FnOnce() -> Result<i32> + Send>| {
            let ex = ex.clone();
            tokio::spawn(async move { ex.run(f).await })
        };
        let blocker = spawn(Box::new(move || {
            let _ = wait.recv_timeout(Duration::from_secs(10));
            Ok(0)
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let a = spawn(Box::new(|| Ok(1)));
        let b = spawn(Box::new(|| Ok(1)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = ex.run(|| Ok(1)).await.unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::QuotaExceeded, "{e}");
        assert!(e.message().contains("queue is full"), "{e}");
        release.send(()).unwrap();
        assert_eq!(blocker.await.unwrap().unwrap(), 0);
        assert_eq!(a.await.unwrap().unwrap() + b.await.unwrap().unwrap(), 2);
    }

    #[tokio::test]
    async fn inline_runs_on_the_calling_thread() {
        let ex = Executor::inline();
        assert!(ex.is_inline());
        let here = thread::current().id();
        assert!(
            ex.run(move || Ok(thread::current().id() == here))
                .await
                .unwrap()
        );
        let e = ex
            .run(|| -> Result<()> { panic!("inline boom") })
            .await
            .unwrap_err();
        assert!(e.message().contains("inline boom"));
    }
}
