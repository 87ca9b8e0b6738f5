//! Compute kernels (`morph-kernels`: fib, sha256 over 1 MiB, JSON parse and
//! transform of ~100 KiB, a tight integer loop, memory copy) natively and
//! through Morph on every backend, from the same Rust source. Each wasm
//! result is checked against the native one before timing.
//! Run: `cargo bench -p morph-benches --bench kernels`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
mod common;

use common::{BACKENDS, artifact, kernels_dir, load, pooled, tokio};
use morph_core::ExecutionContext;
use serde_json::json;

fn kernels(c: &mut Criterion) {
    let rt = tokio();
    let artifact = artifact(&kernels_dir());
    let extensions: Vec<_> = BACKENDS
        .iter()
        .map(|name| (*name, load(&rt, &pooled(name), &artifact)))
        .collect();
    let ctx = ExecutionContext::default();
    for (kernel, n) in morph_kernels::KERNELS {
        let mut group = c.benchmark_group(format!("kernel_{kernel}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let expected = morph_kernels::run(kernel, *n).expect("native kernel");
        group.bench_function("native", |b| {
            b.iter(|| morph_kernels::run(black_box(kernel), black_box(*n)))
        });
        for (name, ext) in &extensions {
            let params = json!({ "n": n });
            let out = rt
                .block_on(ext.execute(kernel, params.clone(), &ctx))
                .unwrap_or_else(|e| panic!("{name} {kernel}: {e}"));
            assert_eq!(out, expected, "{name} {kernel} differs from native");
            group.bench_function(*name, |b| {
                b.iter(|| {
                    rt.block_on(ext.execute(kernel, params.clone(), &ctx))
                        .expect("kernel")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
