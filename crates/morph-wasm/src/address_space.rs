//! How much address space this process may map: engines that reserve
//! address space per linear memory (wasmtime's pool, wasmer's static
//! memories) size their reservations from it, so that a host started under
//! `ulimit -v` can still run extensions.

/// The process's soft `RLIMIT_AS` in bytes, or `None` when it is unlimited
/// (or the platform has no such limit).
pub fn address_space_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` through a pointer to a
        // valid, initialised local; it has no other effect.
        #[allow(unsafe_code)]
        let status = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) };
        if status != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        // `rlim_t` is u64 on Linux but not on every Unix.
        #[allow(clippy::unnecessary_cast)]
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_limit_of_this_process() {
        // Test runners normally run without `ulimit -v`; either answer must
        // be a sane value.
        if let Some(limit) = address_space_limit() {
            assert!(limit > 0);
        }
    }
}
