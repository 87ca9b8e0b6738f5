//! # morph-wasm
//!
//! What every WebAssembly backend shares, written once: validation of a
//! module before any engine sees it ([`WasmModule`]: one feature set, the
//! ABI's exports and imports, the declared memory), the ABI v1 call
//! sequence, the host side of every import ([`GuestContext`]: `morph.*`,
//! the deny-by-default WASI preview 1 shim in [`wasi`], and the hooks of
//! [`instrument`], core's deadline and memory-cap rewriting for engines
//! without their own), and [`WasmBackend`], the one adapter from a small
//! engine trait ([`WasmEngine`]) to `morph_core::Backend`.
//!
//! An engine crate implements [`WasmEngine`] and [`EngineInstance`]:
//! compile, link each [`Import`] to a host function that calls
//! [`GuestContext::serve`], instantiate, call an export, lend the memory.
//!
//! ```no_run
//! # fn demo<E: morph_wasm::WasmEngine>(engine: E) -> morph_core::Result<()> {
//! let runtime = morph_core::EngineRuntime::new(morph_wasm::WasmBackend::new(engine))?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_code)]

mod adapter;
mod address_space;
mod cache;
mod context;
mod driver;
mod guest_memory;
pub mod instrument;
mod module;
pub mod testing;
pub mod wasi;

pub use adapter::{EngineInstance, NotInstantiated, WasmBackend, WasmEngine, host_fault};
pub use address_space::address_space_limit;
pub use cache::CompiledModuleCache;
pub use context::GuestContext;
pub use guest_memory::{GuestMemory, guest_range, guest_slice, guest_slice_mut};
pub use instrument::Instrumentation;
pub use module::{
    GuestExport, HostImport, IMPORT_MODULE, Import, ImportKind, MAX_CODE_BYTES, MAX_CONTROL_DEPTH,
    MAX_FUNCTIONS, MAX_LOCALS_PER_FUNCTION, MAX_TABLE_ELEMENTS, MAX_TABLES, MAX_TOTAL_LOCALS,
    START_EXPORT, WASI_MODULE, WasmModule, WasmType, accepted_features,
};
