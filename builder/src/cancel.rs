//! Ctrl-C and SIGTERM cancel a build. The first signal sets the build's cancel flag: the
//! running RUN's sandbox (its whole pid namespace) is killed, no later step starts, no tag
//! is written, and the build's snapshots and temp directories are removed on the way out.
//! A second signal exits at once (the sandbox dies with us through its death signal).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

/// The flag the handler sets (an `Arc` leaked for the life of the process).
static FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());
/// The first signal received (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
    let p = FLAG.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: the pointer comes from Arc::into_raw and is never released.
        unsafe { (*p).store(true, Ordering::SeqCst) };
    }
}

/// Make SIGINT and SIGTERM set `flag` (for the rest of the process's life).
pub fn cancel_on_signals(flag: &Arc<AtomicBool>) {
    let raw = Arc::into_raw(Arc::clone(flag)) as *mut AtomicBool;
    // An earlier flag stays leaked: the handler may still be reading it.
    FLAG.store(raw, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches atomics and calls _exit.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The signal that cancelled the build (SIGINT, SIGTERM), if one came.
pub fn cancelled_by() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code for a build cancelled by `sig` (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(sig: Option<i32>) -> i32 {
    128 + sig.unwrap_or(libc::SIGINT)
}

/// The error a [`Checked`] stream fails with once its build is cancelled.
fn cancelled() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "build cancelled")
}

/// A reader or writer that fails once `cancel` is set: a COPY writing a big layer, an ADD
/// extracting a big archive, stop between chunks instead of running to the end. The error
/// is of kind `Other` (`write_all` and `read_to_end` would retry an `Interrupted` one).
pub struct Checked<T> {
    inner: T,
    cancel: Arc<AtomicBool>,
}

impl<T> Checked<T> {
    /// Wrap `inner`.
    pub fn new(inner: T, cancel: &Arc<AtomicBool>) -> Self {
        Checked { inner, cancel: cancel.clone() }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> T {
        self.inner
    }

    fn check(&self) -> std::io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) { Err(std::io::Error::other(cancelled())) } else { Ok(()) }
    }
}

impl<T: std::io::Write> std::io::Write for Checked<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<T: std::io::Read> std::io::Read for Checked<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}
