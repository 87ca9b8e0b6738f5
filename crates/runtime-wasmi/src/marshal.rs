//! Engine errors to `MorphError`, values in and out, and guest memory
//! access from host functions.

use morph_core::MorphError;
use morph_wasm::{GuestContext, WasmType, host_fault};
use wasmi::{Caller, TrapCode, Val};

use crate::engine::StoreData;

/// Maps a wasmi error from calling `export` onto a Morph kind. (A fatal
/// error our host functions or limiter recorded in the session wins over
/// this.)
pub fn map_error(err: &wasmi::Error, export: &str) -> MorphError {
    match err.as_trap_code() {
        Some(TrapCode::StackOverflow) => {
            MorphError::stack_overflow(format!("`{export}` exhausted the guest stack"))
        }
        Some(trap) => MorphError::trap(format!("`{export}` trapped: {trap}")),
        None => MorphError::trap(format!("`{export}` failed: {err}")),
    }
}

/// Maps wasmi's refusal to instantiate as [`host_fault`] says: a trap
/// keeps its kind (a limit the store's limiter raised is recorded in the
/// session and wins); anything else (a link or store error) is the host's.
pub fn map_instantiation_error(err: &wasmi::Error) -> MorphError {
    match err.as_trap_code() {
        Some(_) => map_error(err, "instantiation"),
        None => host_fault("wasmi", "instantiate", err),
    }
}

/// Raises `error` as a trap after recording it as the execution's end.
pub fn fail(context: &mut GuestContext, error: MorphError) -> wasmi::Error {
    wasmi::Error::new(context.session().fail(error).to_string())
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

/// The guest's exported memory and our state, borrowed together.
pub fn memory_and_context<'a>(
    caller: &'a mut Caller<'_, StoreData>,
    import: &str,
) -> Result<(&'a mut [u8], &'a mut StoreData), wasmi::Error> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        let e =
            MorphError::abi_violation(format!("`{import}` called but the guest exports no memory"));
        return Err(fail(&mut caller.data_mut().context, e));
    };
    Ok(memory.data_and_store_mut(caller))
}
