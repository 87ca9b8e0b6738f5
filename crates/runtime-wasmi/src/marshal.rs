//! Engine errors to `MorphError`, and guest memory access from host calls.

use morph_core::{MorphError, Session};
use wasmi::{Caller, TrapCode};

use crate::engine::StoreState;

/// Maps a wasmi error from calling `export` onto a Morph kind. (A fatal
/// error our host functions or limiter recorded in the session wins over
/// this in `morph_core::wasm::drive`.)
pub fn map_error(err: &wasmi::Error, export: &str) -> MorphError {
    match err.as_trap_code() {
        Some(TrapCode::StackOverflow) => {
            MorphError::stack_overflow(format!("`{export}` exhausted the guest stack"))
        }
        Some(trap) => MorphError::trap(format!("`{export}` trapped: {trap}")),
        None => MorphError::trap(format!("`{export}` failed: {err}")),
    }
}

/// Raises `error` as a trap after recording it as the execution's end.
pub fn fail(session: &mut Session, error: MorphError) -> wasmi::Error {
    wasmi::Error::new(session.fail(error).to_string())
}

/// The guest's exported memory and our state, borrowed together.
pub fn memory_and_state<'a>(
    caller: &'a mut Caller<'_, StoreState>,
    import: &str,
) -> Result<(&'a mut [u8], &'a mut StoreState), wasmi::Error> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        let e =
            MorphError::abi_violation(format!("`{import}` called but the guest exports no memory"));
        return Err(fail(&mut caller.data_mut().session, e));
    };
    Ok(memory.data_and_store_mut(caller))
}
