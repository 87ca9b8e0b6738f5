//! How wasmer lays out memories and tables for Morph: every linear memory
//! is static (it never moves) with a bound of [`WasmerOptions`]'s
//! reservation, and no table may be declared larger than Morph's cap.
//!
//! wasmer's own `BaseTunables` reserve 4 GiB plus a 4 GiB guard for every
//! memory, so under `ulimit -v 8000000` not even a 2-page memory could be
//! created. The table clamp is defence in depth: core's instrumentation
//! already ends a growth past [`MAX_TABLE_ELEMENTS`] with `memory_limit`
//! before wasmer sees it (wasmer's `VMTable::grow` has no limiter and
//! would allocate the whole growth).

use std::ptr::NonNull;

use morph_wasm::MAX_TABLE_ELEMENTS;
use wasmer::sys::Tunables;
use wasmer::sys::vm::{
    MemoryError, MemoryStyle, TableStyle, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition,
};
use wasmer::{MemoryType, Pages, TableType};

use crate::WasmerOptions;

/// Morph's [`Tunables`] for one engine.
pub struct MorphTunables {
    bound: Pages,
    guard: u64,
}

impl MorphTunables {
    /// The layout `options` asks for.
    pub fn new(options: &WasmerOptions) -> Self {
        let pages = (options.memory_reservation / 65_536).min(u64::from(Pages::max_value().0));
        MorphTunables {
            bound: Pages(pages as u32),
            guard: options.memory_guard,
        }
    }

    fn memory(&self, ty: &MemoryType) -> MemoryType {
        MemoryType {
            maximum: Some(ty.maximum.unwrap_or(self.bound).min(self.bound)),
            ..*ty
        }
    }

    fn table(ty: &TableType) -> TableType {
        let cap = MAX_TABLE_ELEMENTS as u32;
        TableType {
            maximum: Some(ty.maximum.unwrap_or(cap).min(cap)),
            ..*ty
        }
    }
}

impl Tunables for MorphTunables {
    fn memory_style(&self, _memory: &MemoryType) -> MemoryStyle {
        MemoryStyle::Static {
            bound: self.bound,
            offset_guard_size: self.guard,
        }
    }

    fn table_style(&self, _table: &TableType) -> TableStyle {
        TableStyle::CallerChecksSignature
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        VMMemory::new(&self.memory(ty), style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        // SAFETY: forwarded from this function's contract (the location is
        // a valid, owned definition in the instance's VMContext).
        unsafe { VMMemory::from_definition(&self.memory(ty), style, vm_definition_location) }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        VMTable::new(&Self::table(ty), style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: as for `create_vm_memory`.
        unsafe { VMTable::from_definition(&Self::table(ty), style, vm_definition_location) }
    }
}
