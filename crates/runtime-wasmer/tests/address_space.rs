//! Under `ulimit -v 8000000` (RLIMIT_AS of 8,000,000 KiB, the issue's
//! setting) the wasmer backend still runs extensions: every memory is
//! static with a bound sized from the address space (wasmer's own layout
//! reserves 4 GiB plus a 4 GiB guard per memory, so not even a 2-page
//! memory could be created: "Failed to create memory ... os error 12").
//! Each scenario runs in a child process (this binary again, started by
//! `sh -c 'ulimit -v ...'`), since a process cannot lift its own hard
//! limit.

use std::sync::Arc;

use morph_conformance::address_space::{LIMIT_KIB, main_under_limit, pool_width};
use morph_core::{BaseMorphRuntime, EngineRuntime};
use morph_runtime_wasmer::WasmerOptions;

const SCENARIOS: &[&str] = &["default"];

fn child(scenario: &str) -> (Arc<dyn BaseMorphRuntime>, usize) {
    assert_eq!(
        morph_wasm::address_space_limit(),
        Some(LIMIT_KIB << 10),
        "the child runs under the limit"
    );
    assert_eq!(scenario, "default");
    let options = WasmerOptions::default();
    assert_eq!(options.memory_reservation, 128 << 20, "{options:?}");
    println!(
        "  memory_reservation {} MiB, memory_guard {} MiB",
        options.memory_reservation >> 20,
        options.memory_guard >> 20
    );
    let runtime: Arc<dyn BaseMorphRuntime> =
        Arc::new(EngineRuntime::new(morph_runtime_wasmer::backend(options)).expect("runtime"));
    (runtime, pool_width())
}

fn main() {
    main_under_limit(SCENARIOS, child);
}
