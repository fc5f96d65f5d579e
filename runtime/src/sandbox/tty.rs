//! `rbuild run -t`: a pty pair made inside the container's own devpts (so `tty` and
//! `ttyname` work there, as runc does it) whose master the init sends back over a unix
//! socket; the slave becomes the command's controlling terminal; the caller's terminal goes
//! raw, bytes are pumped both ways and the window size follows SIGWINCH.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// A pty pair.
pub struct Pty {
    master: OwnedFd,
}

fn window_size(fd: i32) -> Option<libc::winsize> {
    // SAFETY: TIOCGWINSZ fills a winsize.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// Open a pty pair from the devpts at `/dev/ptmx` (the container's, after pivot_root):
/// (master, slave).
pub fn open_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain open/unlockpt/ptsname_r calls; fds wrapped at once.
    unsafe {
        let m = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let master = OwnedFd::from_raw_fd(m);
        if libc::unlockpt(m) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut name = [0 as libc::c_char; 128];
        if libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if s < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((master, OwnedFd::from_raw_fd(s)))
    }
}

/// Send `fd` over the unix socket `sock` (SCM_RIGHTS).
pub fn send_fd(sock: i32, fd: i32) -> std::io::Result<()> {
    // SAFETY: a one-byte message with one SCM_RIGHTS control message, sized by CMSG_SPACE.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let space = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize;
        let mut buf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receive one fd sent with [`send_fd`]; `None` when the peer closed without sending.
pub fn recv_fd(sock: i32) -> std::io::Result<Option<OwnedFd>> {
    use std::os::fd::FromRawFd;
    // SAFETY: as in send_fd; the received fd is wrapped at once.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let space = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize;
        let mut buf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Ok(None);
        }
        Ok(Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))))
    }
}

impl Pty {
    /// The parent's side of a pair made in the container.
    pub fn from_master(master: OwnedFd) -> Pty {
        Pty { master }
    }

    /// Copy the caller's window size to the pty.
    pub fn copy_window_size(&self) {
        if let Some(ws) = window_size(0) {
            // SAFETY: TIOCSWINSZ from a valid winsize.
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }

    /// Start pumping: pty -> stdout (joined at the end) and, with `stdin`, stdin -> pty
    /// (detached: it blocks on the caller's terminal).
    pub fn pump(&self, stdin: bool) -> Result<Vec<std::thread::JoinHandle<()>>> {
        let mut so = std::io::stdout();
        self.pump_to(
            stdin,
            Box::new(move |b| {
                let ok = so.write_all(b).is_ok();
                let _ = so.flush();
                ok
            }),
        )
    }

    /// [`Pty::pump`], the output going to `out` (which returns false to stop) instead of
    /// stdout: a detached container's log.
    pub fn pump_to(&self, stdin: bool, mut out: PtyOut) -> Result<Vec<std::thread::JoinHandle<()>>> {
        let master = self.master.try_clone().map_err(Error::io("pty"))?;
        let h = std::thread::spawn(move || {
            let mut r = std::fs::File::from(master);
            let mut buf = [0u8; 16 * 1024];
            // EIO once every slave is closed: the command is gone.
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 || !out(&buf[..n]) {
                    break;
                }
            }
        });
        if stdin {
            let inp = self.master.try_clone().map_err(Error::io("pty"))?;
            std::thread::spawn(move || {
                let mut w = std::fs::File::from(inp);
                let mut buf = [0u8; 4096];
                let mut si = std::io::stdin();
                while let Ok(n) = si.read(&mut buf) {
                    if n == 0 {
                        // EOF on stdin: send the terminal's EOF character.
                        let _ = w.write_all(&[4]);
                        break;
                    }
                    if w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(vec![h])
    }
}

/// Where [`Pty::pump_to`] sends the terminal's output; false stops it.
pub type PtyOut = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// The caller's terminal in raw mode, restored when dropped.
pub struct RawMode(nix::sys::termios::Termios);

impl RawMode {
    /// Raw mode on stdin when it is a terminal.
    pub fn enter() -> Option<RawMode> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let old = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = old.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(old))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, &self.0);
    }
}
