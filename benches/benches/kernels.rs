//! Compute kernels (`morph-kernels`: fib, sha256 over 1 MiB, JSON parse and
//! transform of ~100 KiB, a tight integer loop, memory copy) natively and
//! through Morph on every wasm backend, from the same Rust source (groups
//! `kernel_<name>`, sizes `morph_kernels::KERNELS`); then the JavaScript
//! and Python versions (`benches/kernels-js`, `benches/kernels-py`) at the
//! smaller script sizes (`morph_kernels::SCRIPT_KERNELS`), next to native
//! code and wasmtime at those same sizes (groups `script_kernel_<name>`),
//! so every ratio compares the same work. Each result is checked against
//! the native one before timing.
//! Run: `cargo bench -p morph-benches --bench kernels`.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
mod common;

use common::{BACKENDS, SCRIPT_BACKENDS, artifact, kernels_dir_for, load, pooled, tokio};
use morph_core::{ExecutionContext, LoadedExtension};
use serde_json::json;

/// Benchmarks `kernel` at size `n`: native code, then each of `extensions`
/// (whose result must equal native's).
fn kernel_group(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    extensions: &[(&str, Box<dyn LoadedExtension>)],
    kernel: &'static str,
    n: u64,
) {
    let ctx = ExecutionContext::default();
    let expected = morph_kernels::run(kernel, n).expect("native kernel");
    group.bench_function("native", |b| {
        b.iter(|| morph_kernels::run(black_box(kernel), black_box(n)))
    });
    for (name, ext) in extensions {
        let params = json!({ "n": n });
        let out = rt
            .block_on(ext.execute(kernel, params.clone(), &ctx))
            .unwrap_or_else(|e| panic!("{name} {kernel}: {e}"));
        assert_eq!(out, expected, "{name} {kernel}({n}) differs from native");
        group.bench_function(*name, |b| {
            b.iter(|| {
                rt.block_on(ext.execute(kernel, params.clone(), &ctx))
                    .expect("kernel")
            })
        });
    }
}

/// A group of slow benchmarks: ten samples, short warm-up.
fn slow_group<'a>(c: &'a mut Criterion, name: String) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

fn kernels(c: &mut Criterion) {
    let rt = tokio();
    let load_kernels = |name: &'static str| {
        let artifact = artifact(&kernels_dir_for(name));
        (name, load(&rt, &pooled(name), &artifact))
    };
    let wasm: Vec<_> = BACKENDS.iter().map(|name| load_kernels(name)).collect();
    for &(kernel, n) in morph_kernels::KERNELS {
        let mut group = slow_group(c, format!("kernel_{kernel}"));
        kernel_group(&mut group, &rt, &wasm, kernel, n);
        group.finish();
    }
    drop(wasm);

    // Scripts at their sizes, with native code and wasmtime as references.
    let scripts: Vec<_> = std::iter::once("wasmtime")
        .chain(SCRIPT_BACKENDS.iter().copied())
        .map(load_kernels)
        .collect();
    for &(kernel, n) in morph_kernels::SCRIPT_KERNELS {
        let mut group = slow_group(c, format!("script_kernel_{kernel}"));
        kernel_group(&mut group, &rt, &scripts, kernel, n);
        group.finish();
    }
}

fn main() {
    common::main_if_worker();
    let mut criterion = Criterion::default().configure_from_args();
    kernels(&mut criterion);
    criterion.final_summary();
}
