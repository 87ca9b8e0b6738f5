//! [`GuestContext`]: what an engine's store carries for one execution,
//! and the one place every import of a wasm guest is served.

use morph_core::{MorphError, Result, Session};

use crate::guest_memory::GuestMemory;
use crate::instrument;
use crate::module::{HostImport, Import, ImportKind, MAX_TABLE_ELEMENTS};
use crate::wasi;

/// One execution's state inside an engine's store: the [`Session`] (limits,
/// deadline, host calls) and the ABI's pending host-call response.
#[derive(Debug)]
pub struct GuestContext {
    session: Session,
    pending: Option<Vec<u8>>,
}

/// The `u32` at argument `i` (guest pointers and lengths are i32 values,
/// sign-extended to i64 by the engine glue).
fn u32_arg(args: &[i64], i: usize) -> u32 {
    args.get(i).map_or(0, |a| *a as i32 as u32)
}

impl GuestContext {
    /// A context for one execution under `session`.
    pub fn new(session: Session) -> Self {
        GuestContext {
            session,
            pending: None,
        }
    }

    /// The session.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The session, once the execution has ended.
    pub fn into_session(self) -> Session {
        self.session
    }

    /// Moves this context out, leaving an empty one for the same execution
    /// in its place: for engines whose store cannot hand its data back by
    /// value.
    pub fn take(&mut self) -> GuestContext {
        GuestContext {
            session: self.session.take(),
            pending: self.pending.take(),
        }
    }

    /// Serves a call of `import` with `args` (i32 values sign-extended to
    /// i64): returns the result, widened the same way, for imports that
    /// have one. An error ends the execution: it is recorded in the session
    /// as fatal, and the engine glue raises it as a trap.
    pub fn serve<M: GuestMemory + ?Sized>(
        &mut self,
        import: &Import,
        memory: &mut M,
        args: &[i64],
    ) -> Result<Option<i64>> {
        let r = match import.kind {
            ImportKind::Abi(HostImport::HostCall) => self
                .host_call(memory, u32_arg(args, 0), u32_arg(args, 1))
                .map(|n| Some(i64::from(n as i32))),
            ImportKind::Abi(HostImport::HostResponse) => self
                .host_response(memory, u32_arg(args, 0), u32_arg(args, 1))
                .map(|n| Some(i64::from(n as i32))),
            ImportKind::Abi(HostImport::Log) => {
                let level = args.first().map_or(0, |l| *l as i32);
                self.log(memory, level, u32_arg(args, 1), u32_arg(args, 2))
                    .map(|()| None)
            }
            ImportKind::Wasi => {
                wasi::call(&mut self.session, memory, &import.name, args).map(|e| e.map(i64::from))
            }
            ImportKind::Deadline => instrument::check_deadline(&mut self.session).map(|()| None),
            ImportKind::MemoryLimit => {
                let pages = args.first().copied().unwrap_or(0);
                Err(instrument::memory_limit(&mut self.session, pages))
            }
            ImportKind::TableLimit => {
                let elements = args.first().copied().unwrap_or(0);
                Err(instrument::table_limit(&mut self.session, elements))
            }
        };
        r.map_err(|e| self.session.fail(e))
    }

    /// `morph.host_call(req_ptr, req_len)`: performs the request and keeps
    /// the response envelope; returns its length.
    fn host_call<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        self.pending = None;
        if self.session.deadline().expired() {
            return Err(self.session.timeout_error());
        }
        // Checked before reading, so a huge length never copies anything.
        self.session
            .check_output_len(len.into(), "host_call request")?;
        let request = memory.read(ptr, len, "host_call request")?;
        let response = self.session.guest_call(&request)?;
        let n = u32::try_from(response.len())
            .map_err(|_| MorphError::quota_exceeded("host_call response larger than 4 GiB"))?;
        self.pending = Some(response);
        Ok(n)
    }

    /// `morph.host_response(dst_ptr, dst_len)`: copies the pending response
    /// into guest memory; returns the bytes written.
    fn host_response<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        ptr: u32,
        len: u32,
    ) -> Result<u32> {
        let pending = self.pending.as_deref().ok_or_else(|| {
            MorphError::abi_violation("host_response called with no pending response")
        })?;
        let n = pending.len() as u32;
        if len < n {
            return Err(MorphError::abi_violation(format!(
                "host_response buffer of {len} bytes is shorter than the {n}-byte response"
            )));
        }
        memory.write(ptr, pending, "host_response buffer")?;
        Ok(n)
    }

    /// `morph.log(level, ptr, len)`: counted against `max_output_bytes`
    /// before anything is read, then logged.
    fn log<M: GuestMemory + ?Sized>(
        &mut self,
        memory: &M,
        level: i32,
        ptr: u32,
        len: u32,
    ) -> Result<()> {
        self.session.count_output(u64::from(len), "log output")?;
        let bytes = memory.read(ptr, len, "log message")?;
        self.session
            .log_text(level, &String::from_utf8_lossy(&bytes))
    }

    /// An engine's memory-growth hook: `Ok(false)` refuses a growth past the
    /// module's own maximum (`memory.grow` returns -1), and growth past
    /// `max_memory_mb` ends the execution with `memory_limit` (recorded as
    /// fatal), the same on every backend.
    pub fn memory_growing(&mut self, desired_bytes: u64, maximum: Option<u64>) -> Result<bool> {
        if desired_bytes > self.session.limits().max_memory_bytes() {
            let e = self.session.memory_limit_error(desired_bytes);
            return Err(self.session.fail(e));
        }
        Ok(maximum.is_none_or(|m| desired_bytes <= m))
    }

    /// An engine's table-growth hook: growth past [`MAX_TABLE_ELEMENTS`]
    /// ends the execution with `memory_limit`.
    pub fn table_growing(&mut self, desired: u64, maximum: Option<u64>) -> Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            let desired = i64::try_from(desired).unwrap_or(i64::MAX);
            return Err(instrument::table_limit(&mut self.session, desired));
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }
}
