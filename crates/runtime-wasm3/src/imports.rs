//! The module's imports as wasm3 host functions: the Morph ABI, the WASI
//! shim and core's instrumentation hooks, all routed to the [`Session`].
//!
//! wasm3 lends host functions no memory slice, only copying reads and
//! writes, so guest memory is reached through [`CallerMemory`], core's
//! [`GuestMemory`] over a wasm3 `Caller`.

use std::borrow::Cow;

use morph_core::wasm::instrument::{self, DEADLINE_IMPORT, INSTRUMENT_MODULE, MEMORY_LIMIT_IMPORT};
use morph_core::wasm::{HostImport, IMPORT_MODULE, WASI_MODULE, WasmModule, WasmType, wasi};
use morph_core::{GuestMemory, MorphError, Result, Session, guest_range};
use wasm3x::{Caller, Engine, FuncType, Linker, Memory, Val, ValType};

/// Store data host functions find the execution's session in. The load-time
/// compile check links the same functions into a store without one.
pub trait SessionSlot: 'static {
    /// The session, when an execution is running.
    fn slot(&mut self) -> Option<&mut Session>;
}

impl SessionSlot for Session {
    fn slot(&mut self) -> Option<&mut Session> {
        Some(self)
    }
}

impl SessionSlot for () {
    fn slot(&mut self) -> Option<&mut Session> {
        None
    }
}

/// Guest memory through a wasm3 `Caller`: bounds-checked copies.
struct CallerMemory<'a, 'c, S> {
    caller: &'a mut Caller<'c, S>,
    memory: Memory,
}

impl<S> GuestMemory for CallerMemory<'_, '_, S> {
    fn size(&self) -> usize {
        self.memory.data_size(&*self.caller)
    }

    fn read(&self, ptr: u32, len: u32, what: &str) -> Result<Cow<'_, [u8]>> {
        guest_range(self.size(), ptr, len, what)?;
        let mut buf = vec![0u8; len as usize];
        self.memory
            .read(&*self.caller, ptr as usize, &mut buf)
            .map_err(|e| MorphError::abi_violation(format!("{what}: {e}")))?;
        Ok(Cow::Owned(buf))
    }

    fn write(&mut self, ptr: u32, bytes: &[u8], what: &str) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            MorphError::abi_violation(format!("{what}: {} bytes exceed 4 GiB", bytes.len()))
        })?;
        guest_range(self.size(), ptr, len, what)?;
        self.memory
            .write(&mut *self.caller, ptr as usize, bytes)
            .map_err(|e| MorphError::abi_violation(format!("{what}: {e}")))
    }
}

fn no_session(import: &str) -> wasm3x::Error {
    wasm3x::Error::host(MorphError::host_error(format!(
        "`{import}` called outside an execution"
    )))
}

/// Runs `f` with the guest's memory and the session. The session is moved
/// out of the store for the call (the memory borrows the caller) and put
/// back after; an error is recorded as the execution's end.
fn with_memory<S: SessionSlot, R>(
    caller: &mut Caller<'_, S>,
    import: &str,
    f: impl FnOnce(&mut CallerMemory<'_, '_, S>, &mut Session) -> Result<R>,
) -> wasm3x::Result<R> {
    let Some(slot) = caller.data_mut().slot() else {
        return Err(no_session(import));
    };
    let mut session = slot.take();
    let result = match caller.get_memory() {
        Some(memory) => f(
            &mut CallerMemory {
                caller: &mut *caller,
                memory,
            },
            &mut session,
        ),
        None => Err(MorphError::abi_violation(format!(
            "`{import}` called but the guest has no memory"
        ))),
    };
    let result = result.map_err(|e| session.fail(e));
    if let Some(slot) = caller.data_mut().slot() {
        *slot = session;
    }
    result.map_err(wasm3x::Error::host)
}

fn link_error(import: &str) -> impl FnOnce(wasm3x::Error) -> MorphError + '_ {
    move |e| MorphError::host_error(format!("wasm3 cannot link `{import}`: {e}"))
}

fn valtype(t: &WasmType) -> ValType {
    match t {
        WasmType::I32 => ValType::I32,
        WasmType::I64 => ValType::I64,
    }
}

/// A linker defining every import `module` may use (it was validated by
/// core, so it imports nothing else).
pub fn linker<S: SessionSlot>(engine: &Engine, module: &WasmModule) -> Result<Linker<S>> {
    let mut linker = Linker::<S>::new(engine);
    for import in module.imports() {
        let import = *import;
        let name = import.name();
        let linked = match import {
            HostImport::HostCall | HostImport::HostResponse => linker.func_wrap(
                IMPORT_MODULE,
                name,
                move |mut caller: Caller<'_, S>, ptr: i32, len: i32| -> wasm3x::Result<i32> {
                    with_memory(&mut caller, import.name(), |m, s| {
                        s.serve_pair(import, m, ptr as u32, len as u32)
                    })
                    .map(|n| n as i32)
                },
            ),
            HostImport::Log => linker.func_wrap(
                IMPORT_MODULE,
                name,
                |mut caller: Caller<'_, S>, level: i32, ptr: i32, len: i32| -> wasm3x::Result<()> {
                    with_memory(&mut caller, "log", |m, s| {
                        s.log(m, level, ptr as u32, len as u32)
                    })
                },
            ),
        };
        linked.map_err(link_error(name))?;
    }
    for import in module.wasi_imports() {
        let ty = FuncType::new(
            import.params.iter().map(valtype),
            import.results.iter().map(valtype),
        );
        let name = import.name.clone();
        linker
            .func_new(
                WASI_MODULE,
                &import.name,
                ty,
                move |mut caller: Caller<'_, S>, args: &[Val], results: &mut [Val]| {
                    let args: Vec<i64> = args
                        .iter()
                        .map(|v| match v {
                            Val::I32(x) => i64::from(*x),
                            Val::I64(x) => *x,
                            _ => 0,
                        })
                        .collect();
                    let errno =
                        with_memory(&mut caller, &name, |m, s| wasi::call(s, m, &name, &args))?;
                    if let (Some(errno), Some(slot)) = (errno, results.first_mut()) {
                        *slot = Val::I32(errno);
                    }
                    Ok(())
                },
            )
            .map_err(link_error(&import.name))?;
    }
    linker
        .func_wrap(
            INSTRUMENT_MODULE,
            DEADLINE_IMPORT,
            |mut caller: Caller<'_, S>| -> wasm3x::Result<()> {
                let Some(session) = caller.data_mut().slot() else {
                    return Err(no_session(DEADLINE_IMPORT));
                };
                instrument::check_deadline(session).map_err(wasm3x::Error::host)
            },
        )
        .map_err(link_error(DEADLINE_IMPORT))?;
    linker
        .func_wrap(
            INSTRUMENT_MODULE,
            MEMORY_LIMIT_IMPORT,
            |mut caller: Caller<'_, S>, pages: i64| -> wasm3x::Result<()> {
                let Some(session) = caller.data_mut().slot() else {
                    return Err(no_session(MEMORY_LIMIT_IMPORT));
                };
                Err(wasm3x::Error::host(instrument::memory_limit(
                    session, pages,
                )))
            },
        )
        .map_err(link_error(MEMORY_LIMIT_IMPORT))?;
    Ok(linker)
}
