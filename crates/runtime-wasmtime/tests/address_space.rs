//! Under `ulimit -v 8000000` (RLIMIT_AS of 8,000,000 KiB, the issue's
//! setting) the wasmtime backend still runs extensions: the pool and the
//! per-memory reservation are sized from the address space, and a pool
//! that cannot be created falls back to on-demand allocation (it used to
//! fail: "failed to create memory pool mapping"). Each scenario runs in a
//! child process (this binary again, started by `sh -c 'ulimit -v ...'`),
//! since a process cannot lift its own hard limit.

use std::sync::Arc;

use morph_conformance::address_space::{LIMIT_KIB, main_under_limit, pool_width};
use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasmtime::WasmtimeOptions;

const SCENARIOS: &[&str] = &["default", "pulley", "on-demand", "pool-too-big"];

fn child(scenario: &str) -> (Arc<dyn BaseMorphRuntime>, usize) {
    assert_eq!(
        morph_wasm::address_space_limit(),
        Some(LIMIT_KIB << 10),
        "the child runs under the limit"
    );
    let (options, concurrent) = match scenario {
        "default" => {
            let options = WasmtimeOptions::default();
            assert_eq!(options.memory_reservation, 128 << 20, "{options:?}");
            (options, pool_width())
        }
        "pulley" => (WasmtimeOptions::pulley(), pool_width()),
        "on-demand" => (
            WasmtimeOptions {
                pool_slots: 0,
                ..WasmtimeOptions::default()
            },
            pool_width(),
        ),
        // The unlimited host's settings: 128 slots of 4 GiB cannot be
        // mapped, so the engine allocates on demand, where one 4 GiB
        // reservation at a time still fits.
        "pool-too-big" => (WasmtimeOptions::for_address_space(None), 1),
        other => panic!("unknown scenario {other}"),
    };
    println!(
        "  pool_slots {}, memory_reservation {} MiB, memory_guard {} MiB",
        options.pool_slots,
        options.memory_reservation >> 20,
        options.memory_guard >> 20
    );
    let backend = morph_runtime_wasmtime::backend(options).expect("the engine is created");
    let runtime: Arc<dyn BaseMorphRuntime> =
        Arc::new(EngineRuntime::new(backend).expect("runtime"));
    (runtime, concurrent)
}

fn main() {
    main_under_limit(SCENARIOS, child);
}
