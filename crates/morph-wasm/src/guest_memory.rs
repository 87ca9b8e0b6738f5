//! Bounds-checked access to a guest's linear memory.
//!
//! Most engines lend host functions the memory as a byte slice; wasm3 only
//! offers copying reads and writes. [`GuestMemory`] covers both, so the
//! session and the WASI shim are written once.

use std::borrow::Cow;
use std::ops::Range;

use morph_core::{MorphError, Result};

/// A guest's linear memory as host functions see it.
pub trait GuestMemory {
    /// The memory's size in bytes.
    fn size(&self) -> usize;

    /// The `len` bytes at `ptr` (borrowed where the engine lends a slice).
    /// Out of bounds is `abi_violation`, naming `what`.
    fn read(&self, ptr: u32, len: u32, what: &str) -> Result<Cow<'_, [u8]>>;

    /// Writes `bytes` at `ptr`. Out of bounds is `abi_violation`, naming
    /// `what`; nothing is written then.
    fn write(&mut self, ptr: u32, bytes: &[u8], what: &str) -> Result<()>;
}

impl GuestMemory for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn read(&self, ptr: u32, len: u32, what: &str) -> Result<Cow<'_, [u8]>> {
        guest_slice(self, ptr, len, what).map(Cow::Borrowed)
    }

    fn write(&mut self, ptr: u32, bytes: &[u8], what: &str) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            MorphError::abi_violation(format!("{what}: {} bytes exceed 4 GiB", bytes.len()))
        })?;
        guest_slice_mut(self, ptr, len, what)?.copy_from_slice(bytes);
        Ok(())
    }
}

/// The byte range of a guest `(ptr, len)` inside a memory of `size` bytes;
/// `abi_violation` naming `what` if it does not fit.
pub fn guest_range(size: usize, ptr: u32, len: u32, what: &str) -> Result<Range<usize>> {
    let start = ptr as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(MorphError::abi_violation(format!(
            "{what}: ({ptr}, {len}) is outside guest memory of {size} bytes"
        ))),
    }
}

/// Bounds-checks a guest `(ptr, len)` against its memory.
pub fn guest_slice<'m>(memory: &'m [u8], ptr: u32, len: u32, what: &str) -> Result<&'m [u8]> {
    Ok(&memory[guest_range(memory.len(), ptr, len, what)?])
}

/// Bounds-checks a writable guest `(ptr, len)`.
pub fn guest_slice_mut<'m>(
    memory: &'m mut [u8],
    ptr: u32,
    len: u32,
    what: &str,
) -> Result<&'m mut [u8]> {
    let range = guest_range(memory.len(), ptr, len, what)?;
    Ok(&mut memory[range])
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph_core::ErrorKind;

    #[test]
    fn slices_read_and_write_in_bounds_only() {
        let mut mem = vec![0u8; 16];
        let m: &mut [u8] = &mut mem;
        m.write(4, b"abcd", "test").unwrap();
        assert_eq!(&*m.read(4, 4, "test").unwrap(), b"abcd");
        let e = m.write(14, b"abcd", "the buffer").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AbiViolation);
        assert!(e.to_string().contains("the buffer"), "{e}");
        assert_eq!(&mem[12..16], &[0; 4], "nothing written on failure");
        let m: &[u8] = &mem;
        assert!(m.read(u32::MAX, 2, "x").is_err());
        assert_eq!(m.size(), 16);
    }
}
