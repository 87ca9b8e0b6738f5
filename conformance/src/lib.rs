//! # morph-conformance
//!
//! The single judge of "behaves the same": cases are data
//! (`cases/*.yaml`), fixtures are extensions (`fixtures/<name>/`), and the
//! runner holds every backend to the same expectations. Use it three ways:
//! `cargo test` (each backend crate's `tests/conformance.rs` calls
//! [`main_for_backend`]), `morph conformance` (the [`Matrix`]), or as a
//! library.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod address_space;
mod case;
mod divergence;
mod matrix;
mod runner;
mod server;
mod timing;
mod trials;

pub use case::{Case, Expect, HostSetup, Plant, Step, Suite, SuiteError};
pub use divergence::{EXPECTED_DIVERGENCES, expected_divergence};
pub use matrix::Matrix;
pub use runner::{CaseResult, Status, contains, run_case};
pub use server::{ServerSetup, TestServer};
pub use timing::{CallCost, warm_call_cost};
pub use trials::{main_for_backend, trials};
