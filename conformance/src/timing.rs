//! A quick measure of warm execution cost for tests that print it (the
//! benchmarks, not these, are the record: see `benches/`).

use std::time::{Duration, Instant};

use morph_core::{ExecutionContext, LoadedExtension, MorphError};
use serde_json::json;

/// How long warm executions of one action took.
#[derive(Debug, Clone, Copy)]
pub struct CallCost {
    /// Mean.
    pub mean: Duration,
    /// Median.
    pub median: Duration,
    /// 90th percentile.
    pub p90: Duration,
}

impl std::fmt::Display for CallCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "mean {:?}, median {:?}, p90 {:?}",
            self.mean, self.median, self.p90
        )
    }
}

/// Runs `action` (no params) once to warm up, then `calls` times, timing
/// each.
pub async fn warm_call_cost(
    ext: &dyn LoadedExtension,
    action: &str,
    calls: usize,
) -> Result<CallCost, MorphError> {
    let ctx = ExecutionContext::default();
    ext.execute(action, json!({}), &ctx).await?;
    let mut took = Vec::with_capacity(calls.max(1));
    for _ in 0..calls.max(1) {
        let started = Instant::now();
        ext.execute(action, json!({}), &ctx).await?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(CallCost {
        mean: took.iter().sum::<Duration>() / took.len() as u32,
        median: took[took.len() / 2],
        p90: took[took.len() * 9 / 10],
    })
}
