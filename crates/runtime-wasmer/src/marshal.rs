//! Engine errors to `MorphError`, values in and out, and guest memory
//! access from host functions.

use morph_core::MorphError;
use morph_wasm::{GuestContext, Import, ImportKind, WasmType};
use wasmer::{FunctionEnvMut, RuntimeError, Value};
use wasmer_types::TrapCode;

use crate::engine::StoreData;

/// Maps a wasmer error from calling `export` onto a Morph kind. (A fatal
/// error recorded in the session wins over this.)
pub fn map_error(err: RuntimeError, export: &str) -> MorphError {
    if let Some(e) = err.downcast_ref::<MorphError>() {
        return e.clone();
    }
    let message = err.message();
    match err.to_trap() {
        Some(TrapCode::StackOverflow) => {
            MorphError::stack_overflow(format!("`{export}` exhausted the guest stack"))
        }
        Some(_) => MorphError::trap(format!("`{export}` trapped: {message}")),
        None => MorphError::trap(format!("`{export}` failed: {message}")),
    }
}

/// Raises `error` as a trap after recording it as the execution's end.
pub fn fail(context: &mut GuestContext, error: MorphError) -> RuntimeError {
    RuntimeError::user(Box::new(context.session().fail(error)))
}

/// An i32 or i64 value as i64 (i32 sign-extended); 0 for other types,
/// which validation keeps out of every import and export.
pub fn widen(value: &Value) -> i64 {
    match value {
        Value::I32(x) => i64::from(*x),
        Value::I64(x) => *x,
        _ => 0,
    }
}

/// An i64 as a value of type `ty` (truncated to i32 for `I32`).
pub fn narrow(value: i64, ty: WasmType) -> Value {
    match ty {
        WasmType::I32 => Value::I32(value as i32),
        WasmType::I64 => Value::I64(value),
    }
}

/// Runs `f` with the guest's memory and the context, borrowed together;
/// an error ends the execution. The memory is known once instantiation has
/// finished (validation detaches start functions, so no guest code runs
/// before); should an import be called earlier, only the
/// instrumentation's, which need no memory, are served.
pub fn with_memory<R>(
    env: &mut FunctionEnvMut<'_, StoreData>,
    import: &Import,
    f: impl FnOnce(&mut [u8], &mut GuestContext) -> Result<R, MorphError>,
) -> Result<R, RuntimeError> {
    let (data, store) = env.data_and_store_mut();
    let Some(memory) = data.memory.clone() else {
        if matches!(
            import.kind,
            ImportKind::Deadline | ImportKind::MemoryLimit | ImportKind::TableLimit
        ) {
            return f(&mut [], &mut data.context).map_err(|e| fail(&mut data.context, e));
        }
        let e = MorphError::abi_violation(format!(
            "`{}.{}` called from the start function, before the instance had a memory",
            import.module, import.name
        ));
        return Err(fail(&mut data.context, e));
    };
    let view = memory.view(&store);
    // SAFETY: the store is single-threaded and mid-call in this host
    // function; threads and shared memories are refused by validation, so
    // nothing else reads or writes guest memory while this slice lives,
    // and it does not outlive the call.
    let bytes = unsafe { view.data_unchecked_mut() };
    f(bytes, &mut data.context).map_err(|e| fail(&mut data.context, e))
}
