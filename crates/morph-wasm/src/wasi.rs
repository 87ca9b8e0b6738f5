//! The WASI preview 1 shim, deny by default (ABI.md): clocks and
//! `random_get` work, `fd_write` to fd 1/2 goes to the log, args and
//! environment are empty, there are no preopened directories, `proc_exit`
//! ends the execution with `extension_error` (code `exit`), and every other
//! function returns `ENOSYS` or `EBADF`, never traps. Written once; every
//! wasm backend links the module's WASI imports to [`call`].

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::guest_memory::{GuestMemory, guest_range};
use morph_core::Session;
use morph_core::{MorphError, Result};

/// `ESUCCESS`.
pub const ESUCCESS: i32 = 0;
/// `EBADF`: bad file descriptor.
pub const EBADF: i32 = 8;
/// `EFAULT`: bad address.
pub const EFAULT: i32 = 21;
/// `EINVAL`: invalid argument.
pub const EINVAL: i32 = 28;
/// `ENOSYS`: function not supported.
pub const ENOSYS: i32 = 52;

/// Log level of `fd_write` to stdout (info) and stderr (warn).
const STDOUT_LEVEL: i32 = 2;
const STDERR_LEVEL: i32 = 3;

/// Calls the shim function `name` with the guest's arguments (i32 values
/// sign-extended). Returns the errno for functions with a result, `None`
/// for `proc_exit`-shaped ones; `Err` ends the execution (it is also
/// recorded in the session as fatal).
pub fn call<M: GuestMemory + ?Sized>(
    session: &mut Session,
    memory: &mut M,
    name: &str,
    args: &[i64],
) -> Result<Option<i32>> {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    let ptr = |i: usize| arg(i) as u32;
    let errno = match name {
        "proc_exit" => {
            let status = arg(0) as i32;
            let e =
                MorphError::extension("exit", format!("the extension called proc_exit({status})"));
            return Err(session.fail(e));
        }
        "clock_time_get" => match now_ns(arg(0) as i32) {
            Some(ns) => write(memory, ptr(2), &ns.to_le_bytes()),
            None => EINVAL,
        },
        "clock_res_get" => match now_ns(arg(0) as i32) {
            Some(_) => write(memory, ptr(1), &1_000u64.to_le_bytes()),
            None => EINVAL,
        },
        "random_get" => random_get(memory, ptr(0), ptr(1)),
        "args_sizes_get" | "environ_sizes_get" => {
            let first = write(memory, ptr(0), &0u32.to_le_bytes());
            if first != ESUCCESS {
                first
            } else {
                write(memory, ptr(1), &0u32.to_le_bytes())
            }
        }
        "args_get" | "environ_get" | "sched_yield" => ESUCCESS,
        "fd_write" => return fd_write(session, memory, args).map(Some),
        "fd_fdstat_get" => match arg(0) {
            1 | 2 => {
                // filetype character_device (2), no flags, rights: fd_write (bit 6).
                let mut stat = [0u8; 24];
                stat[0] = 2;
                stat[8..16].copy_from_slice(&(1u64 << 6).to_le_bytes());
                write(memory, ptr(1), &stat)
            }
            _ => EBADF,
        },
        n if n.starts_with("fd_") || n.starts_with("path_") => EBADF,
        _ => ENOSYS,
    };
    Ok(Some(errno))
}

fn write<M: GuestMemory + ?Sized>(memory: &mut M, ptr: u32, bytes: &[u8]) -> i32 {
    match memory.write(ptr, bytes, "wasi") {
        Ok(()) => ESUCCESS,
        Err(_) => EFAULT,
    }
}

/// `random_get(buf, len)`: bounds-checked before any bytes are drawn,
/// then filled in chunks (the host never holds more than one chunk).
fn random_get<M: GuestMemory + ?Sized>(memory: &mut M, ptr: u32, len: u32) -> i32 {
    const CHUNK: u32 = 64 << 10;
    if guest_range(memory.size(), ptr, len, "random_get").is_err() {
        return EFAULT;
    }
    let mut buf = vec![0u8; len.min(CHUNK) as usize];
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        if getrandom::fill(&mut buf[..n]).is_err() {
            return ENOSYS;
        }
        let errno = write(memory, ptr + done, &buf[..n]);
        if errno != ESUCCESS {
            return errno;
        }
        done += n as u32;
    }
    ESUCCESS
}

fn now_ns(clock: i32) -> Option<u64> {
    static START: OnceLock<Instant> = OnceLock::new();
    match clock {
        0 => Some(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        ),
        1 => Some(START.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1),
        _ => None,
    }
}

/// `fd_write(fd, iovs, iovs_len, nwritten)`: fd 1 and 2 to the log.
fn fd_write<M: GuestMemory + ?Sized>(
    session: &mut Session,
    memory: &mut M,
    args: &[i64],
) -> Result<i32> {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0) as u32;
    let level = match arg(0) {
        1 => STDOUT_LEVEL,
        2 => STDERR_LEVEL,
        _ => return Ok(EBADF),
    };
    let Some(iovs_bytes) = arg(2).checked_mul(8) else {
        return Ok(EFAULT);
    };
    let Ok(iovs) = memory.read(arg(1), iovs_bytes, "fd_write iovecs") else {
        return Ok(EFAULT);
    };
    let iovs = iovs.into_owned();
    let mut text = Vec::new();
    for iov in iovs.chunks_exact(8) {
        let (p, l) = iov.split_at(4);
        let (p, l) = (le_u32(p), le_u32(l));
        // Bounds and quota before any copy, so a guest cannot make the host
        // allocate more than its output allowance (engines like wasm3
        // only offer copying reads).
        if guest_range(memory.size(), p, l, "fd_write buffer").is_err() {
            return Ok(EFAULT);
        }
        session.count_output(u64::from(l), "fd_write output")?;
        let Ok(chunk) = memory.read(p, l, "fd_write buffer") else {
            return Ok(EFAULT);
        };
        text.extend_from_slice(&chunk);
    }
    let line = String::from_utf8_lossy(&text);
    session.log_text(level, line.trim_end_matches('\n'))?;
    Ok(write(memory, arg(3), &(text.len() as u32).to_le_bytes()))
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph_core::host::{CallState, CapabilityHost, ExtensionScope};
    use morph_core::{Deadline, EffectivePolicy, ErrorKind, LimitEnforcement, ResourceLimits};
    use std::sync::Arc;
    use std::time::Duration;

    fn session(max_output_bytes: u64) -> Session {
        let limits = ResourceLimits {
            max_output_bytes,
            ..ResourceLimits::default()
        };
        let scope = Arc::new(ExtensionScope {
            extension_id: "w".into(),
            policy: EffectivePolicy {
                permissions: Default::default(),
                allowed_hosts: vec![],
                limits,
                enforcement: LimitEnforcement::Strict,
                fuel: None,
                private_network: false,
            },
            events: vec![],
            unenforced: vec![],
        });
        Session::new(
            Arc::new(CapabilityHost::in_memory()),
            CallState::new(scope, "a", "r"),
            limits,
            None,
            Deadline::after(Duration::from_secs(5)),
        )
    }

    #[test]
    fn clocks_random_and_sizes_work_and_bad_input_gets_an_errno() {
        let (mut s, mut mem) = (session(1024), vec![0u8; 256]);
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "clock_time_get", &[0, 1, 8]).unwrap(),
            Some(0)
        );
        assert_ne!(&mem[8..16], &[0u8; 8]);
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "clock_time_get", &[7, 1, 8]).unwrap(),
            Some(EINVAL)
        );
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "clock_time_get", &[0, 1, 250]).unwrap(),
            Some(EFAULT)
        );
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "random_get", &[32, 32]).unwrap(),
            Some(0)
        );
        assert_ne!(&mem[32..64], &[0u8; 32]);
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "args_sizes_get", &[64, 68]).unwrap(),
            Some(0)
        );
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "fd_prestat_get", &[3, 0]).unwrap(),
            Some(EBADF)
        );
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "path_open", &[3]).unwrap(),
            Some(EBADF)
        );
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "poll_oneoff", &[]).unwrap(),
            Some(ENOSYS)
        );
    }

    #[test]
    fn fd_write_goes_to_the_log_within_the_output_cap() {
        let (mut s, mut mem) = (session(10), vec![0u8; 256]);
        mem[100..106].copy_from_slice(b"hello\n");
        mem[0..4].copy_from_slice(&100u32.to_le_bytes());
        mem[4..8].copy_from_slice(&6u32.to_le_bytes());
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "fd_write", &[1, 0, 1, 16]).unwrap(),
            Some(0)
        );
        assert_eq!(&mem[16..20], &6u32.to_le_bytes());
        assert_eq!(
            call(&mut s, mem.as_mut_slice(), "fd_write", &[9, 0, 1, 16]).unwrap(),
            Some(EBADF)
        );
        let e = call(&mut s, mem.as_mut_slice(), "fd_write", &[2, 0, 1, 16]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    }

    #[test]
    fn proc_exit_ends_the_execution_with_its_status() {
        let (mut s, mut mem) = (session(10), vec![0u8; 16]);
        let e = call(&mut s, mem.as_mut_slice(), "proc_exit", &[3]).unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::ExtensionError, Some("exit"))
        );
        assert!(e.message().contains("proc_exit(3)"));
        assert_eq!(
            s.take_fatal().map(|e| e.kind()),
            Some(ErrorKind::ExtensionError)
        );
    }
}
