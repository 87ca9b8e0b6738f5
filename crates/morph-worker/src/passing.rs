//! Descriptors over the control socket (`SCM_RIGHTS`): the host hands each
//! call's three pipe ends (input, output, stderr) to the zygote with the `Run` frame.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one frame carries.
const MAX_FDS: usize = 4;

/// Room for the control message of [`MAX_FDS`] descriptors.
fn cmsg_space() -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Writes `frame` on `socket`, with `fds` attached to its first byte.
pub(crate) fn send_with_fds<S: AsRawFd + Write>(
    socket: &mut S,
    frame: &[u8],
    fds: &[RawFd],
) -> io::Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS || frame.is_empty() {
        return Err(io::Error::other("a frame with 1 to 4 descriptors"));
    }
    let mut control = vec![0u8; cmsg_space()];
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    };
    // SAFETY: msghdr, its iovec and control buffer point at live buffers of
    // the given lengths; CMSG_* are used as the C macros are, within the
    // buffer; sendmsg only reads them.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        let data_len = std::mem::size_of_val(fds);
        msg.msg_controllen = libc::CMSG_SPACE(data_len as u32) as usize;
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(data_len as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr() as *const u8, libc::CMSG_DATA(header), data_len);
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    socket.write_all(&frame[sent as usize..])?;
    socket.flush()
}

/// Reads one frame of at most `max` bytes from `socket` and the
/// descriptors that came with it (close-on-exec). `Ok(None)` at a clean
/// end of the stream.
pub(crate) fn read_with_fds<S: AsRawFd + Read>(
    socket: &mut S,
    max: usize,
) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    let mut fds = Vec::new();
    while got < len.len() {
        let mut control = vec![0u8; cmsg_space()];
        let mut iov = libc::iovec {
            iov_base: len[got..].as_mut_ptr() as *mut libc::c_void,
            iov_len: len.len() - got,
        };
        // SAFETY: as in `send_with_fds`; recvmsg writes at most the given
        // lengths, and every descriptor it delivered is taken into an
        // OwnedFd exactly once.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = control.len();
            let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 {
                let mut header = libc::CMSG_FIRSTHDR(&msg);
                while !header.is_null() {
                    if (*header).cmsg_level == libc::SOL_SOCKET
                        && (*header).cmsg_type == libc::SCM_RIGHTS
                    {
                        let data = libc::CMSG_DATA(header) as *const RawFd;
                        let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                        for i in 0..bytes / std::mem::size_of::<RawFd>() {
                            fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                        }
                    }
                    header = libc::CMSG_NXTHDR(&msg, header);
                }
            }
            n
        };
        match n {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n as usize,
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("a worker frame of {len} bytes is above the {max}-byte cap"),
        ));
    }
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body)?;
    Ok(Some((body, fds)))
}
