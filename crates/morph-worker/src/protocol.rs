//! The protocol between the host and a worker: frames of a 4-byte
//! little-endian length and a JSON message, on two kinds of channel.
//!
//! - The *control* socket (descriptor [`CONTROL_FD`] of the worker
//!   process, the zygote, which runs no guest code): [`ToZygote`] and
//!   [`FromZygote`]. Hello, load, one `Run` per call (carrying the two
//!   pipe ends of that call's channel and the write end of its own stderr
//!   pipe as `SCM_RIGHTS`), `Abort`, and
//!   `Ended` when the call's child is reaped. Every child closes it before
//!   guest code runs, so what it says about a child (how it ended) cannot
//!   be forged by the guest.
//! - The *call* channel, two pipes made by the host for one call and held
//!   only by that call's child: [`ToChild`] and [`FromChild`] (host calls,
//!   logs, the answer). Everything on it is untrusted guest output: sizes
//!   are capped before reading, host calls go through the parent's
//!   [`Session`](morph_core::Session), and a child may claim only the
//!   error kinds a guest can cause. It ends (end of file) when the child
//!   does, so nothing of one call can reach the next. Host calls strictly
//!   alternate: after a `HostCall` the child's next frame may come only
//!   once it has read the whole `HostResponse`; sending a `HostCall` or
//!   `Done` with the answer unread is `abi_violation` (no answer queue
//!   builds up in the host).

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use morph_core::GuestCall;
use morph_core::ResourceLimits;
use morph_core::RuntimeKind;
use morph_core::{ErrorKind, MorphError};

/// Protocol version; the worker's hello must match.
pub const PROTOCOL_VERSION: u32 = 3;

/// The worker's end of the control socket.
pub const CONTROL_FD: i32 = 3;

/// Host to zygote, on the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToZygote {
    /// Load the extension (first message; once per worker).
    Load {
        /// Which engine.
        kind: RuntimeKind,
        /// Entry file name, for messages.
        file: String,
        /// Source text.
        source: String,
        /// Effective limits.
        limits: ResourceLimits,
    },
    /// Run one guest call in a new child. The frame carries three
    /// descriptors: the read end of the call's input pipe, the write end
    /// of its output pipe, and the write end of its stderr pipe (the
    /// child's descriptors 1 and 2, read and charged per call).
    Run {
        /// The call.
        call: WireCall,
        /// Milliseconds until the deadline.
        remaining_ms: u64,
        /// Numbers the call; `Done` and `Ended` carry it back.
        seq: u64,
    },
    /// Kill the child running call `seq` now (its deadline passed, or the
    /// host ended the execution).
    Abort {
        /// The call.
        seq: u64,
    },
}

/// Zygote to host, on the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromZygote {
    /// First frame: the worker entry is installed and speaks this version.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// The engine is warm and sandboxed; compiling the source starts now
    /// (if the worker dies before `Loaded`, the source killed it).
    Compiling,
    /// The answer to `Load`.
    Loaded {
        /// `Err` when the source does not compile.
        result: Result<(), WireError>,
    },
    /// The child of call `seq` is gone (reaped).
    Ended {
        /// The call.
        seq: u64,
        /// Its exit status, or the signal that ended it.
        status: ChildStatus,
        /// What the child's own crash handler recorded (a guest could
        /// forge it, so it names only guest-causable kinds).
        verdict: Option<Verdict>,
    },
}

/// Host to a call's child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToChild {
    /// The answer to the child's `HostCall`.
    HostResponse {
        /// The response envelope, or the error that ends the execution.
        result: Result<String, WireError>,
    },
}

/// A call's child to the host.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum FromChild {
    /// A host call (JSON request).
    HostCall {
        /// `{"op": ..., "args": {...}}`.
        request: String,
    },
    /// A log line.
    Log {
        /// 0 trace ... 4 error.
        level: i32,
        /// The text.
        text: String,
    },
    /// The answer to `Run`.
    Done {
        /// Describe JSON or result envelope, or the error.
        result: Result<String, WireError>,
        /// Peak resident memory of the child above the zygote's, in bytes.
        memory_bytes: u64,
        /// The `seq` of the `Run` it answers.
        seq: u64,
    },
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// The zygote could not fork it.
    NotStarted,
}

impl std::fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildStatus::Exited(code) => write!(f, "exit status {code}"),
            ChildStatus::Signaled(signal) => write!(f, "signal {signal}"),
            ChildStatus::NotStarted => f.write_str("not started"),
        }
    }
}

/// Why a child's engine aborted, as its crash handler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// An allocation failed under the address-space cap (`memory_limit`).
    MemoryLimit,
    /// The native stack overflowed (`stack_overflow`).
    StackOverflow,
}

/// A guest call on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum WireCall {
    /// `describe()`.
    Describe,
    /// `execute(action, params, context)`.
    Execute {
        /// Action name.
        action: String,
        /// Params JSON.
        params: String,
        /// Context JSON.
        context: String,
    },
}

impl WireCall {
    /// The wire form of `call`.
    pub fn from_call(call: GuestCall<'_>) -> Self {
        match call {
            GuestCall::Describe => WireCall::Describe,
            GuestCall::Execute {
                action,
                params,
                context,
            } => WireCall::Execute {
                action: action.to_string(),
                params: String::from_utf8_lossy(params).into_owned(),
                context: String::from_utf8_lossy(context).into_owned(),
            },
        }
    }

    /// The call it stands for.
    pub fn as_call(&self) -> GuestCall<'_> {
        match self {
            WireCall::Describe => GuestCall::Describe,
            WireCall::Execute {
                action,
                params,
                context,
            } => GuestCall::Execute {
                action,
                params: params.as_bytes(),
                context: context.as_bytes(),
            },
        }
    }
}

/// A [`MorphError`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    /// `ErrorKind` string.
    pub kind: String,
    /// The guest's code, for `extension_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Message.
    pub message: String,
}

/// Error kinds a worker may report: what a guest itself can cause. Anything
/// else from a worker becomes `abi_violation`.
const GUEST_KINDS: [ErrorKind; 9] = [
    ErrorKind::ExtensionError,
    ErrorKind::AbiViolation,
    ErrorKind::InvalidModule,
    ErrorKind::Timeout,
    ErrorKind::MemoryLimit,
    ErrorKind::StackOverflow,
    ErrorKind::Trap,
    ErrorKind::PermissionDenied,
    ErrorKind::QuotaExceeded,
];

impl From<&MorphError> for WireError {
    fn from(e: &MorphError) -> Self {
        WireError {
            kind: e.kind().as_str().to_string(),
            code: e.code().map(str::to_string),
            message: e.message().to_string(),
        }
    }
}

impl WireError {
    /// The error as the parent reports it; only guest-causable kinds pass.
    pub fn into_error(self) -> MorphError {
        match ErrorKind::parse(&self.kind) {
            Some(ErrorKind::ExtensionError) => {
                MorphError::extension(self.code.unwrap_or_default(), self.message)
            }
            Some(kind) if GUEST_KINDS.contains(&kind) => MorphError::new(kind, self.message),
            _ => MorphError::abi_violation(format!(
                "the worker reported an error of kind `{}`, which a guest cannot cause: {}",
                self.kind, self.message
            )),
        }
    }
}

/// The bytes of one frame.
pub fn encode_frame<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::other("a worker frame larger than 4 GiB"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes one frame.
pub fn write_frame<W: Write, T: Serialize>(out: &mut W, message: &T) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::other("a worker frame larger than 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

/// Reads one frame of at most `max` bytes. `Ok(None)` at a clean end of
/// the stream.
pub fn read_frame<R: Read>(input: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("a worker frame of {len} bytes is above the {max}-byte cap"),
        ));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Parses a frame body.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad worker message: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_are_capped() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &FromZygote::Hello { protocol: 1 }).unwrap();
        let body = read_frame(&mut buf.as_slice(), 1024).unwrap().unwrap();
        assert!(matches!(
            parse::<FromZygote>(&body).unwrap(),
            FromZygote::Hello { protocol: 1 }
        ));
        let err = read_frame(&mut buf.as_slice(), 4).unwrap_err();
        assert!(err.to_string().contains("cap"), "{err}");
        assert!(read_frame(&mut [].as_slice(), 4).unwrap().is_none());
    }

    #[test]
    fn a_worker_cannot_claim_host_error_kinds() {
        let forged = WireError {
            kind: "signature_invalid".into(),
            code: None,
            message: "x".into(),
        };
        assert_eq!(forged.into_error().kind(), ErrorKind::AbiViolation);
        let guest = WireError {
            kind: "extension_error".into(),
            code: Some("bad_input".into()),
            message: "no".into(),
        };
        let e = guest.into_error();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::ExtensionError, Some("bad_input"))
        );
    }
}
