//! # morph-runtime-wasmtime
//!
//! Morph's backend on [wasmtime](https://wasmtime.dev), in two
//! configurations: `wasmtime` (the Cranelift JIT) and `wasmtime-pulley`
//! (Pulley, wasmtime's portable interpreter, [`WasmtimeOptions::pulley`]).
//! Engine glue only: every shared rule lives in `morph-core` and
//! `morph-wasm` ([`WasmtimeEngine`] implements `morph_wasm::WasmEngine`).
//!
//! Limits, all enforced natively by wasmtime:
//! - `max_execution_ms`: epoch interruption. A ticker thread advances the
//!   engine's epoch every [`WasmtimeOptions::epoch_tick`]; at each tick the
//!   store checks the execution's deadline and ends it with `timeout`.
//! - `max_memory_mb`: a `ResourceLimiter` refuses `memory.grow` beyond the
//!   cap and ends the execution with `memory_limit`.
//! - stack: `max_wasm_stack` ([`WasmtimeOptions::max_wasm_stack`]), mapped to
//!   `stack_overflow`; executions run on morph-core's threads whose native
//!   stack is larger.
//! - fuel: only when [`WasmtimeOptions::fuel`] is on (it slows every
//!   execution, so it is off by default and `RuntimeInfo` says so).
//!
//! ```no_run
//! use morph_core::EngineRuntime;
//! use morph_runtime_wasmtime::WasmtimeOptions;
//!
//! let runtime = EngineRuntime::new(morph_runtime_wasmtime::backend(WasmtimeOptions::default())?)?;
//! # Ok::<(), morph_core::MorphError>(())
//! ```
#![warn(missing_docs)]

mod engine;
mod marshal;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use morph_core::{Enforcement, EngineLimit, MorphError, Result, RuntimeInfo};
use morph_wasm::{MAX_TABLE_ELEMENTS, MAX_TABLES, WasmBackend};

pub use engine::WasmtimeInstance;

/// The backend name users choose for the Cranelift JIT configuration.
pub const BACKEND_NAME: &str = "wasmtime";

/// The backend name of the Pulley interpreter configuration.
pub const PULLEY_BACKEND_NAME: &str = "wasmtime-pulley";

/// The wasmtime version this crate is built against.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Settings of the wasmtime backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmtimeOptions {
    /// Guest stack budget in bytes before `stack_overflow`. Default 512 KiB
    /// (wasmtime's own default), well below the execution threads' 16 MiB.
    pub max_wasm_stack: usize,
    /// How often the epoch ticker checks deadlines. Default 5 ms: the
    /// worst-case overshoot of `max_execution_ms`.
    pub epoch_tick: Duration,
    /// Count instructions so the host may set a fuel budget. Default off.
    pub fuel: bool,
    /// Run on Pulley, wasmtime's portable interpreter, instead of native
    /// code from Cranelift. Default off (see [`WasmtimeOptions::pulley`]).
    pub pulley: bool,
    /// Instances the pooling allocator keeps ready: every execution takes a
    /// slot (memory reserved up front, reset copy-on-write) instead of
    /// mapping and unmapping a fresh linear memory. Default 128, or two per
    /// CPU on machines with more than 64 (the default pool runs one
    /// execution per CPU at a time); each slot
    /// reserves about 4 GiB of address space plus guards (not memory), so
    /// a process under `ulimit -v` wants 0 here. More simultaneous
    /// executions than slots fail with `trap` (no free slot). 0 uses the
    /// on-demand allocator instead.
    pub pool_slots: u32,
}

impl WasmtimeOptions {
    /// The Pulley interpreter configuration (`wasmtime-pulley`): the same
    /// engine and limits, no native code generation; for comparing a JIT
    /// and an interpreter of one engine, or for hosts that forbid JIT.
    pub fn pulley() -> Self {
        WasmtimeOptions {
            pulley: true,
            ..WasmtimeOptions::default()
        }
    }
}

impl Default for WasmtimeOptions {
    fn default() -> Self {
        WasmtimeOptions {
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(5),
            fuel: false,
            pulley: false,
            // At least two slots per execution thread of the default pool,
            // so its threads can never exhaust the pool.
            pool_slots: std::thread::available_parallelism()
                .map_or(128, |n| (n.get() as u32).saturating_mul(2).max(128)),
        }
    }
}

/// The wasmtime backend as core runs it.
pub type WasmtimeBackend = WasmBackend<WasmtimeEngine>;

/// The wasmtime backend with `options` (the Cranelift JIT, or Pulley with
/// [`WasmtimeOptions::pulley`]); give it a module cache with
/// [`WasmBackend::with_cache`].
pub fn backend(options: WasmtimeOptions) -> Result<WasmtimeBackend> {
    Ok(WasmBackend::new(WasmtimeEngine::new(options)?))
}

/// wasmtime as a `morph_wasm::WasmEngine`: one engine, one epoch ticker.
pub struct WasmtimeEngine {
    engine: wasmtime::Engine,
    options: WasmtimeOptions,
    ticker: Arc<EpochTicker>,
}

/// Advances the engine's epoch until the last holder is dropped. Every
/// prepared extension holds it too, so deadlines keep working for an
/// extension that outlives the backend value it was loaded with.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> Result<Arc<Self>> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("morph-wasmtime-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| MorphError::io_error(format!("cannot start epoch ticker: {e}")))?;
        Ok(Arc::new(EpochTicker { stop }))
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WasmtimeEngine {
    /// Creates the engine and starts its epoch ticker.
    pub fn new(options: WasmtimeOptions) -> Result<Self> {
        let mut config = wasmtime::Config::new();
        config
            .epoch_interruption(true)
            .max_wasm_stack(options.max_wasm_stack)
            .consume_fuel(options.fuel)
            .wasm_simd(false)
            .wasm_relaxed_simd(false)
            .wasm_memory64(false);
        if options.pulley {
            if !cfg!(feature = "pulley") {
                return Err(MorphError::unsupported(
                    "wasmtime-pulley: this build lacks the `pulley` feature of morph-runtime-wasmtime",
                ));
            }
            // Pulley's 64-bit little-endian target, matching this host.
            config
                .target("pulley64")
                .map_err(|e| MorphError::host_error(format!("wasmtime pulley target: {e}")))?;
        }
        if options.pool_slots > 0 {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            // Sized for what core's validation admits: one memory, at most
            // MAX_TABLES tables of at most MAX_TABLE_ELEMENTS elements.
            pool.total_core_instances(options.pool_slots)
                .total_memories(options.pool_slots)
                .total_tables(options.pool_slots.saturating_mul(MAX_TABLES))
                .max_tables_per_module(MAX_TABLES)
                .table_elements(MAX_TABLE_ELEMENTS as usize);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = wasmtime::Engine::new(&config)
            .map_err(|e| MorphError::host_error(format!("wasmtime engine: {e}")))?;
        let ticker = EpochTicker::start(engine.clone(), options.epoch_tick)?;
        Ok(WasmtimeEngine {
            engine,
            options,
            ticker,
        })
    }

    /// The cache fingerprint of this engine: wasmtime's version and its
    /// precompile-compatibility hash (which covers the configuration).
    fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!(
            "wasmtime-{WASMTIME_VERSION}-{}-{:016x}",
            self.runtime_info().name,
            hasher.finish()
        )
    }
}

impl WasmtimeEngine {
    fn runtime_info(&self) -> RuntimeInfo {
        let fuel = if self.options.fuel {
            Enforcement::Native
        } else {
            Enforcement::Unsupported
        };
        let (name, execution) = if self.options.pulley {
            (PULLEY_BACKEND_NAME, "interpreter")
        } else {
            (BACKEND_NAME, "jit")
        };
        RuntimeInfo::wasm(
            name,
            "wasmtime",
            WASMTIME_VERSION,
            execution,
            [
                (EngineLimit::ExecutionTime, Enforcement::Native),
                (EngineLimit::Memory, Enforcement::Native),
                (EngineLimit::Stack, Enforcement::Native),
                (EngineLimit::Fuel, fuel),
            ],
        )
    }
}
