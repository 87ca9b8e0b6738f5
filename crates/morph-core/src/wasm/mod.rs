//! WebAssembly specifics shared by every wasm backend: module validation
//! and the ABI call sequence.

mod driver;
pub mod instrument;
mod module;
pub mod wasi;

pub use driver::{GuestInstance, drive};
pub use module::{
    GuestExport, HostImport, IMPORT_MODULE, WASI_MODULE, WasiImport, WasmModule, WasmType,
    accepted_features,
};
