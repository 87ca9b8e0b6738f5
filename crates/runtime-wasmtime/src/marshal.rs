//! Engine errors to `MorphError`, and guest memory access from host calls.

use morph_core::{MorphError, Session, wasm::GuestExport};
use wasmtime::{Caller, Trap};

use crate::engine::StoreState;

/// Maps a wasmtime error from calling `export` onto a Morph kind. A
/// `MorphError` raised by our own host functions or limiter passes through.
pub fn map_error(err: wasmtime::Error, export: &str, session: &Session) -> MorphError {
    if let Some(e) = err.downcast_ref::<MorphError>() {
        return e.clone();
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => {
            MorphError::stack_overflow(format!("`{export}` exhausted the guest stack"))
        }
        Some(Trap::Interrupt) => session.timeout_error(),
        Some(Trap::OutOfFuel) => MorphError::fuel_exhausted(format!(
            "`{export}` used its whole fuel budget of {}",
            session.fuel().unwrap_or(0)
        )),
        Some(trap) => MorphError::trap(format!("`{export}` trapped: {trap}")),
        None => MorphError::trap(format!("`{export}` failed: {err}")),
    }
}

/// The name used in messages for a guest export.
pub fn export_name(export: GuestExport) -> &'static str {
    export.name()
}

/// The guest's exported memory and our state, borrowed together.
pub fn memory_and_state<'a>(
    caller: &'a mut Caller<'_, StoreState>,
    import: &str,
) -> wasmtime::Result<(&'a mut [u8], &'a mut StoreState)> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        let e =
            MorphError::abi_violation(format!("`{import}` called but the guest exports no memory"));
        return Err(wasmtime::Error::new(caller.data_mut().session.fail(e)));
    };
    Ok(memory.data_and_store_mut(caller))
}
