//! `kthw-pause`: the pause container's only program, a Rust port of Kubernetes'
//! `build/pause/linux/pause.c`.
//!
//! A pod's containers share network, IPC and UTS namespaces. Something must hold those
//! namespaces open while app containers come and go (a namespace lives as long as one
//! process is in it), and that something should do nothing else, so it never crashes.
//! The kubelet starts this *sandbox* container first; the app containers then join its
//! namespaces. When the pod shares one PID namespace (`shareProcessNamespace: true`),
//! pause is its PID 1, and PID 1 has two duties that no other process has:
//!
//! - **reaping**: an orphaned process is re-parented to PID 1, and when it exits it stays
//!   a zombie until PID 1 `wait`s for it. We reap on every `SIGCHLD`.
//! - **signals**: the kernel delivers to PID 1 of a namespace only the signals it has a
//!   handler for, so without one `SIGTERM` would do nothing and the kubelet would have
//!   to wait out the grace period and `SIGKILL` it. We exit 0 on `SIGINT` and `SIGTERM`.
//!
//! Everything else is `pause()` forever: the process sleeps until a signal arrives.
//!
//! It uses `libc` and nothing else (no argument parser, no logger) so that it stays
//! small and can be linked statically: the image holds this one file.
//!
//! What the real pause does differently: it is C, built with `-Os -static` for every
//! architecture (about 700 KB with glibc, 40 KB in recent releases); `-v` prints its
//! version. Our `-v` does the same.

use std::ffi::c_int;

/// Writes `msg` to stderr with `write(2)`, which is safe in a signal handler
/// (`eprintln!` takes a lock and may allocate: not safe there).
fn say(msg: &str) {
    // SAFETY: writing a valid buffer to fd 2; a failed write is ignored, as pause.c does.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

// ANCHOR: handlers
/// `SIGINT`, `SIGTERM`: the pod is being stopped. `_exit`, not `exit`: only
/// async-signal-safe calls are allowed in a handler, and there is nothing to flush.
extern "C" fn sigdown(signo: c_int) {
    say(if signo == libc::SIGTERM {
        "Shutting down, got signal: Terminated\n"
    } else {
        "Shutting down, got signal: Interrupt\n"
    });
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

/// `SIGCHLD`: one or more children exited. Signals of one kind do not queue (two exits
/// may arrive as one `SIGCHLD`), so reap in a loop until none is left, without blocking.
extern "C" fn sigreap(_signo: c_int) {
    // SAFETY: waitpid is async-signal-safe; a null status pointer is allowed.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}
// ANCHOR_END: handlers

/// Installs `handler` for `signo` with `flags`; `false` if `sigaction` fails.
fn handle(signo: c_int, handler: extern "C" fn(c_int), flags: c_int) -> bool {
    // SAFETY: an all-zero sigaction is valid (empty mask); we set the handler and flags.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = flags;
    // SAFETY: a valid action, and we do not want the old one.
    unsafe { libc::sigaction(signo, &action, std::ptr::null_mut()) == 0 }
}

// ANCHOR: main
fn main() {
    if std::env::args().skip(1).any(|a| a.eq_ignore_ascii_case("-v")) {
        println!("kthw-pause {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    // pause.c only warns: running it by hand to try it out is fine.
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } != 1 {
        say("Warning: pause should be the first process\n");
    }
    // The exit codes are pause.c's, so the two are interchangeable in a pod.
    if !handle(libc::SIGINT, sigdown, 0) {
        std::process::exit(1);
    }
    if !handle(libc::SIGTERM, sigdown, 0) {
        std::process::exit(2);
    }
    // SA_NOCLDSTOP: no SIGCHLD when a child is merely stopped (^Z), only when it exits.
    if !handle(libc::SIGCHLD, sigreap, libc::SA_NOCLDSTOP) {
        std::process::exit(3);
    }
    loop {
        // SAFETY: pause() only sleeps until a signal handler has run.
        unsafe { libc::pause() };
    }
}
// ANCHOR_END: main
