//! Engine errors to `MorphError`, values in and out, and guest memory
//! access from host functions.

use morph_core::{MorphError, Session};
use morph_wasm::{GuestContext, WasmType, host_fault};
use wasmtime::{Caller, Trap, Val};

use crate::engine::StoreData;

/// Maps a wasmtime error from calling `export` onto a Morph kind. A
/// `MorphError` raised by our own host functions or limiter passes through.
pub fn map_error(err: wasmtime::Error, export: &str, session: &mut Session) -> MorphError {
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

/// Maps wasmtime's refusal to instantiate as [`host_fault`] says: a Morph
/// error (a limit the store's limiter raised) and a trap keep their kinds;
/// anything else (an allocation or store error) is the host's.
pub fn map_instantiation_error(err: wasmtime::Error, session: &mut Session) -> MorphError {
    if err.downcast_ref::<MorphError>().is_some() || err.downcast_ref::<Trap>().is_some() {
        return map_error(err, "instantiation", session);
    }
    host_fault("wasmtime", "instantiate", &err)
}

/// An i32 or i64 value as i64 (i32 sign-extended); 0 for other types,
/// which validation keeps out of every import and export.
pub fn widen(value: &Val) -> i64 {
    match value {
        Val::I32(x) => i64::from(*x),
        Val::I64(x) => *x,
        _ => 0,
    }
}

/// An i64 as a value of type `ty` (truncated to i32 for `I32`).
pub fn narrow(value: i64, ty: WasmType) -> Val {
    match ty {
        WasmType::I32 => Val::I32(value as i32),
        WasmType::I64 => Val::I64(value),
    }
}

/// The guest's exported memory and the execution's context, borrowed
/// together.
pub fn memory_and_context<'a>(
    caller: &'a mut Caller<'_, StoreData>,
    import: &str,
) -> wasmtime::Result<(&'a mut [u8], &'a mut GuestContext)> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        let e =
            MorphError::abi_violation(format!("`{import}` called but the guest exports no memory"));
        return Err(wasmtime::Error::new(caller.data_mut().0.session().fail(e)));
    };
    let (bytes, data) = memory.data_and_store_mut(caller);
    Ok((bytes, &mut data.0))
}
