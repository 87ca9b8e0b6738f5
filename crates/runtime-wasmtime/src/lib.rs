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
#![deny(clippy::undocumented_unsafe_blocks)]

mod engine;
mod marshal;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use morph_core::{Enforcement, EngineLimit, MorphError, ResourceLimits, Result, RuntimeInfo};
use morph_wasm::{MAX_TABLE_ELEMENTS, MAX_TABLES, WasmBackend};

pub use engine::WasmtimeInstance;

/// The backend name users choose for the Cranelift JIT configuration.
pub const BACKEND_NAME: &str = "wasmtime";

/// The backend name of the Pulley interpreter configuration.
pub const PULLEY_BACKEND_NAME: &str = "wasmtime-pulley";

/// The wasmtime version this crate is built against.
pub const WASMTIME_VERSION: &str = "48.0.10";

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
    /// mapping and unmapping a fresh linear memory. More simultaneous
    /// executions than slots fail with `trap` (no free slot); 0 uses the
    /// on-demand allocator instead. Each slot reserves
    /// [`memory_reservation`](Self::memory_reservation) plus guards and
    /// 64 MiB of table space (address space, not memory). Default (see
    /// [`WasmtimeOptions::for_address_space`]): 128, or two per CPU on
    /// machines with more than 64, when the address space is unlimited;
    /// under `ulimit -v`, as many as fit in a quarter of it, at most two
    /// per CPU, and 0 when fewer than one per CPU fit. If the pool cannot
    /// be created, the engine says so in a warning and allocates on demand.
    pub pool_slots: u32,
    /// Address space reserved for each linear memory, in bytes, which is
    /// also the largest memory an instance can have: an extension whose
    /// `max_memory_mb` is above it is refused at load with `unsupported`.
    /// Default 4 GiB (wasmtime's own: no bounds checks in compiled code),
    /// or 128 MiB (the default ceiling of `max_memory_mb`) under `ulimit -v`.
    pub memory_reservation: u64,
    /// Guard region after (and before) each linear memory, in bytes.
    /// Default 32 MiB (wasmtime's own), or 2 MiB under `ulimit -v`.
    pub memory_guard: u64,
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

    /// The defaults for a process that may map `limit` bytes of address
    /// space (`None`: unlimited); [`Default`] passes this process's
    /// `RLIMIT_AS`. Under a limit, each linear memory reserves the default
    /// `max_memory_mb` ceiling instead of 4 GiB, and the pool gets as many
    /// slots as fit in a quarter of the limit.
    pub fn for_address_space(limit: Option<u64>) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let base = WasmtimeOptions {
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(5),
            fuel: false,
            pulley: false,
            // At least two slots per execution thread of the default pool,
            // so its threads can never exhaust the pool.
            pool_slots: cpus.saturating_mul(2).max(128),
            memory_reservation: 4 << 30,
            memory_guard: 32 << 20,
        };
        let Some(limit) = limit else {
            return base;
        };
        let memory_reservation = ResourceLimits::default().max_memory_bytes();
        let memory_guard = 2 << 20;
        let per_slot = pool_slot_bytes(memory_reservation, memory_guard);
        let fit = u32::try_from((limit / 4) / per_slot).unwrap_or(u32::MAX);
        let slots = fit.min(cpus.saturating_mul(2));
        WasmtimeOptions {
            pool_slots: if slots < cpus { 0 } else { slots },
            memory_reservation,
            memory_guard,
            ..base
        }
    }
}

/// Address space one pool slot reserves: the memory with a guard on each
/// side, [`MAX_TABLES`] tables of [`MAX_TABLE_ELEMENTS`] pointer-sized
/// elements, and a little instance state.
fn pool_slot_bytes(memory_reservation: u64, memory_guard: u64) -> u64 {
    memory_reservation
        + 2 * memory_guard
        + u64::from(MAX_TABLES) * MAX_TABLE_ELEMENTS * 8
        + (1 << 20)
}

impl Default for WasmtimeOptions {
    fn default() -> Self {
        WasmtimeOptions::for_address_space(morph_wasm::address_space_limit())
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
        config
            .memory_reservation(options.memory_reservation)
            .memory_guard_size(options.memory_guard);
        let on_demand = config.clone();
        if options.pool_slots > 0 {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            // Sized for what core's validation admits: one memory, at most
            // MAX_TABLES tables of at most MAX_TABLE_ELEMENTS elements.
            pool.total_core_instances(options.pool_slots)
                .total_memories(options.pool_slots)
                .max_memory_size(usize::try_from(options.memory_reservation).unwrap_or(usize::MAX))
                .total_tables(options.pool_slots.saturating_mul(MAX_TABLES))
                .max_tables_per_module(MAX_TABLES)
                .table_elements(MAX_TABLE_ELEMENTS as usize);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = match wasmtime::Engine::new(&config) {
            Ok(engine) => engine,
            Err(e) if options.pool_slots > 0 => {
                tracing::warn!(
                    pool_slots = options.pool_slots,
                    memory_reservation = options.memory_reservation,
                    address_space_limit = ?morph_wasm::address_space_limit(),
                    "wasmtime cannot create its pool of {} instances ({e:#}); allocating each instance on demand instead (lower --pool-slots, or 0, to silence this)",
                    options.pool_slots
                );
                wasmtime::Engine::new(&on_demand)
                    .map_err(|e| MorphError::host_error(format!("wasmtime engine: {e:#}")))?
            }
            Err(e) => return Err(MorphError::host_error(format!("wasmtime engine: {e:#}"))),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_is_sized_from_the_address_space() {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        let unlimited = WasmtimeOptions::for_address_space(None);
        assert_eq!(unlimited.memory_reservation, 4 << 30);
        assert!(unlimited.pool_slots >= 128);

        // The issue's `ulimit -v 8000000`: 128 MiB memories, and the slots
        // that fit in a quarter of 7.6 GiB (9), at most two per CPU.
        let limited = WasmtimeOptions::for_address_space(Some(8_000_000 << 10));
        assert_eq!(limited.memory_reservation, 128 << 20);
        assert_eq!(limited.memory_guard, 2 << 20);
        let fit = 9.min(cpus * 2);
        assert_eq!(limited.pool_slots, if fit < cpus { 0 } else { fit });
        let cost = u64::from(limited.pool_slots)
            * pool_slot_bytes(limited.memory_reservation, limited.memory_guard);
        assert!(cost <= (8_000_000 << 10) / 4, "{cost}");

        // Too little for one slot per CPU: allocate on demand.
        assert_eq!(
            WasmtimeOptions::for_address_space(Some(256 << 20)).pool_slots,
            0
        );
    }
}
