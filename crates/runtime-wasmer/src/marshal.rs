//! Engine errors to `MorphError`, and guest memory access from host calls.

use morph_core::{MorphError, Session};
use wasmer::{FunctionEnvMut, RuntimeError};
use wasmer_types::TrapCode;

use crate::engine::StoreState;

/// Maps a wasmer error from calling `export` onto a Morph kind. (A fatal
/// error recorded in the session wins over this in `morph_core::wasm::drive`.)
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
pub fn fail(session: &mut Session, error: MorphError) -> RuntimeError {
    RuntimeError::user(Box::new(session.fail(error)))
}

/// Runs `f` with the guest's memory and our state, borrowed together.
pub fn with_memory<R>(
    env: &mut FunctionEnvMut<'_, StoreState>,
    import: &str,
    f: impl FnOnce(&mut [u8], &mut Session) -> Result<R, MorphError>,
) -> Result<R, RuntimeError> {
    let (state, store) = env.data_and_store_mut();
    let Some(memory) = state.memory.clone() else {
        let e = MorphError::abi_violation(format!(
            "`{import}` called before the instance had a memory"
        ));
        return Err(fail(&mut state.session, e));
    };
    let view = memory.view(&store);
    // SAFETY: the store is single-threaded and mid-call in this host
    // function; threads and shared memories are refused by core's
    // validation, so nothing else reads or writes guest memory while this
    // slice lives, and it does not outlive the call.
    let bytes = unsafe { view.data_unchecked_mut() };
    f(bytes, &mut state.session).map_err(|e| fail(&mut state.session, e))
}
