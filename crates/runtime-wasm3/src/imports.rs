//! The module's imports as wasm3 host functions, every one routed to the
//! execution's [`GuestContext`].
//!
//! wasm3 lends host functions no memory slice, only copying reads and
//! writes, so guest memory is reached through [`CallerMemory`], a
//! [`GuestMemory`] over a wasm3 `Caller`.

use std::borrow::Cow;

use morph_core::{MorphError, Result};
use morph_wasm::{GuestContext, GuestMemory, Import, WasmType, guest_range};
use wasm3x::{Caller, Engine, FuncType, Linker, Memory, Val, ValType};

/// Store data host functions find the execution's context in. The
/// load-time compile check links the same functions into a store without
/// one.
pub trait ContextSlot: 'static {
    /// The context, when an execution is running.
    fn slot(&mut self) -> Option<&mut GuestContext>;
}

impl ContextSlot for GuestContext {
    fn slot(&mut self) -> Option<&mut GuestContext> {
        Some(self)
    }
}

impl ContextSlot for () {
    fn slot(&mut self) -> Option<&mut GuestContext> {
        None
    }
}

/// Guest memory through a wasm3 `Caller`: bounds-checked copies.
struct CallerMemory<'a, 'c, S> {
    caller: &'a mut Caller<'c, S>,
    memory: Option<Memory>,
}

impl<S> GuestMemory for CallerMemory<'_, '_, S> {
    fn size(&self) -> usize {
        self.memory.map_or(0, |m| m.data_size(&*self.caller))
    }

    fn read(&self, ptr: u32, len: u32, what: &str) -> Result<Cow<'_, [u8]>> {
        guest_range(self.size(), ptr, len, what)?;
        let mut buf = vec![0u8; len as usize];
        if let Some(memory) = self.memory {
            memory
                .read(&*self.caller, ptr as usize, &mut buf)
                .map_err(|e| MorphError::abi_violation(format!("{what}: {e}")))?;
        }
        Ok(Cow::Owned(buf))
    }

    fn write(&mut self, ptr: u32, bytes: &[u8], what: &str) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            MorphError::abi_violation(format!("{what}: {} bytes exceed 4 GiB", bytes.len()))
        })?;
        guest_range(self.size(), ptr, len, what)?;
        match self.memory {
            Some(memory) => memory
                .write(&mut *self.caller, ptr as usize, bytes)
                .map_err(|e| MorphError::abi_violation(format!("{what}: {e}"))),
            None => Ok(()),
        }
    }
}

fn valtype(t: WasmType) -> ValType {
    match t {
        WasmType::I32 => ValType::I32,
        WasmType::I64 => ValType::I64,
    }
}

fn widen(value: &Val) -> i64 {
    match value {
        Val::I32(x) => i64::from(*x),
        Val::I64(x) => *x,
        _ => 0,
    }
}

/// Serves one call of `import`. The context is moved out of the store for
/// the call (the memory borrows the caller) and put back after.
fn serve<S: ContextSlot>(
    caller: &mut Caller<'_, S>,
    import: &Import,
    args: &[Val],
    results: &mut [Val],
) -> wasm3x::Result<()> {
    let Some(slot) = caller.data_mut().slot() else {
        return Err(wasm3x::Error::host(MorphError::host_error(format!(
            "`{}.{}` called outside an execution",
            import.module, import.name
        ))));
    };
    let mut context = slot.take();
    let args: Vec<i64> = args.iter().map(widen).collect();
    let memory = caller.get_memory();
    let out = context.serve(
        import,
        &mut CallerMemory {
            caller: &mut *caller,
            memory,
        },
        &args,
    );
    if let Some(slot) = caller.data_mut().slot() {
        *slot = context;
    }
    let out = out.map_err(wasm3x::Error::host)?;
    if let (Some(value), Some(slot), Some(ty)) = (out, results.first_mut(), import.results.first())
    {
        *slot = match ty {
            WasmType::I32 => Val::I32(value as i32),
            WasmType::I64 => Val::I64(value),
        };
    }
    Ok(())
}

/// A linker defining `imports` (every function the validated, instrumented
/// module imports).
pub fn linker<S: ContextSlot>(engine: &Engine, imports: &[Import]) -> Result<Linker<S>> {
    let mut linker = Linker::<S>::new(engine);
    for import in imports {
        let ty = FuncType::new(
            import.params.iter().copied().map(valtype),
            import.results.iter().copied().map(valtype),
        );
        let served = import.clone();
        linker
            .func_new(
                import.module,
                &import.name,
                ty,
                move |mut caller: Caller<'_, S>, args: &[Val], results: &mut [Val]| {
                    serve(&mut caller, &served, args, results)
                },
            )
            .map_err(|e| {
                MorphError::host_error(format!(
                    "wasm3 cannot link `{}.{}`: {e}",
                    import.module, import.name
                ))
            })?;
    }
    Ok(linker)
}
