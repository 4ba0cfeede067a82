//! Ctrl-C (and SIGTERM, SIGHUP) during a sweep. Each engine runs in its own process group, so
//! that a timeout kill reaches everything it started; that also shields it from the terminal's
//! SIGINT. The runner therefore catches these signals: the first is only recorded, and the sweep
//! loop kills the running cell and stops; a second one kills the running cell's group at once
//! and ends the runner with the default action.

use std::sync::atomic::{AtomicI32, Ordering};

static PENDING: AtomicI32 = AtomicI32::new(0);
// The process group of the engine running now (0: none), for the second-signal path.
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

/// The signal received since [`Guard::install`], if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Records the process group of the engine now running (`None` when it has ended).
pub fn set_child_group(pgid: Option<u32>) {
    let v = pgid.and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    CHILD_GROUP.store(v, Ordering::SeqCst);
}

/// Handlers installed for the life of a sweep; dropping it restores the previous ones.
pub struct Guard {
    #[cfg(unix)]
    old: Vec<(libc::c_int, libc::sigaction)>,
}

#[cfg(unix)]
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: atomics, kill, signal, raise.
    if PENDING.swap(sig, Ordering::SeqCst) != 0 {
        let group = CHILD_GROUP.load(Ordering::SeqCst);
        // SAFETY: kill, signal and raise are async-signal-safe; the arguments are plain ints.
        unsafe {
            if group > 0 {
                libc::kill(-group, libc::SIGKILL);
            }
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

impl Guard {
    /// Installs the handlers and clears any earlier record.
    pub fn install() -> Guard {
        PENDING.store(0, Ordering::SeqCst);
        #[cfg(unix)]
        {
            let mut old = Vec::new();
            for sig in SIGNALS {
                // SAFETY: a zeroed sigaction is a valid value; the handler only touches atomics
                // and async-signal-safe functions; `prev` is written by sigaction.
                unsafe {
                    let mut sa: libc::sigaction = std::mem::zeroed();
                    sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                    libc::sigemptyset(&mut sa.sa_mask);
                    sa.sa_flags = libc::SA_RESTART;
                    let mut prev: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &sa, &mut prev) == 0 {
                        old.push((sig, prev));
                    }
                }
            }
            Guard { old }
        }
        #[cfg(not(unix))]
        Guard {}
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(unix)]
        for (sig, prev) in self.old.drain(..) {
            // SAFETY: restores the action sigaction returned for this signal.
            unsafe {
                libc::sigaction(sig, &prev, std::ptr::null_mut());
            }
        }
    }
}
