//! The ABI v1 call sequence, written once: an engine provides an
//! [`EngineInstance`] (call an export, expose memory) and this drives it.

use morph_core::abi::{self, ABI_VERSION};
use morph_core::{GuestCall, MorphError, Result};

use crate::adapter::EngineInstance;
use crate::guest_memory::{guest_slice, guest_slice_mut};
use crate::module::{GuestExport, WasmModule};

/// Runs one guest call on a fresh instance: the module's start function
/// (detached by validation) and `_initialize` if it has them, then `describe` (after checking `morph_abi_version`) or `execute` with
/// action, params and context placed through `morph_alloc`. Returns the
/// bytes the guest pointed at, bounds- and size-checked. A fatal error
/// recorded in the session wins over what the engine reported.
pub(crate) fn drive<I: EngineInstance + ?Sized>(
    instance: &mut I,
    module: &WasmModule,
    call: &GuestCall<'_>,
) -> Result<Vec<u8>> {
    let result = drive_inner(instance, module, call);
    let size = instance.memory().len() as u64;
    let session = instance.context().session();
    session.note_memory(size);
    result.map_err(|e| session.take_fatal().unwrap_or(e))
}

fn drive_inner<I: EngineInstance + ?Sized>(
    instance: &mut I,
    module: &WasmModule,
    call: &GuestCall<'_>,
) -> Result<Vec<u8>> {
    if module.has_start() {
        instance.call(GuestExport::Start, &[])?;
    }
    if module.has_initialize() {
        instance.call(GuestExport::Initialize, &[])?;
    }
    let packed = match call {
        GuestCall::Describe => {
            let version = instance.call(GuestExport::AbiVersion, &[])?;
            if version != i64::from(ABI_VERSION) {
                return Err(MorphError::invalid_module(format!(
                    "morph_abi_version() returned {version}; this host speaks ABI {ABI_VERSION}"
                )));
            }
            instance.call(GuestExport::Describe, &[])?
        }
        GuestCall::Execute {
            action,
            params,
            context,
        } => {
            let (a_ptr, a_len) = place(instance, action.as_bytes(), "action")?;
            let (p_ptr, p_len) = place(instance, params, "params")?;
            let (c_ptr, c_len) = place(instance, context, "context")?;
            instance.call(
                GuestExport::Execute,
                &[a_ptr, a_len, p_ptr, p_len, c_ptr, c_len],
            )?
        }
    };
    let what = match call {
        GuestCall::Describe => "describe() result",
        GuestCall::Execute { .. } => "execute() result",
    };
    let (ptr, len) = abi::unpack(packed);
    instance
        .context()
        .session()
        .check_output_len(len.into(), what)?;
    Ok(guest_slice(instance.memory(), ptr, len, what)?.to_vec())
}

/// Asks the guest for `bytes.len()` bytes and copies `bytes` there.
fn place<I: EngineInstance + ?Sized>(
    instance: &mut I,
    bytes: &[u8],
    what: &str,
) -> Result<(i32, i32)> {
    let len = i32::try_from(bytes.len())
        .map_err(|_| MorphError::invalid_params(format!("{what} is larger than 2 GiB")))?;
    let ptr = instance.call(GuestExport::Alloc, &[len])? as u32;
    if ptr == 0 {
        return Err(MorphError::abi_violation(format!(
            "morph_alloc({len}) for the {what} returned 0"
        )));
    }
    guest_slice_mut(
        instance.memory(),
        ptr,
        len as u32,
        &format!("morph_alloc for the {what}"),
    )?
    .copy_from_slice(bytes);
    Ok((ptr as i32, len))
}
