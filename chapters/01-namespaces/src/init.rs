//! Our init: the PID 1 of a new PID namespace. It starts the command as its only child,
//! then does the two jobs the kernel gives every PID 1:
//!
//! - **Reap zombies.** A process that exits stays a zombie until its parent `wait`s
//!   for it. When a parent dies first, its children are re-parented to PID 1 of their
//!   namespace. An application that is PID 1 (`docker run app`) rarely expects that, so
//!   the orphans' zombies pile up and fill the PID table.
//! - **Forward signals.** The kernel does not deliver a signal to a namespace's PID 1
//!   unless PID 1 has a handler for it: SIGTERM from `docker stop` to an application
//!   without a handler does nothing, and Docker kills it with SIGKILL 10 seconds later.
//!   Our init blocks every signal and waits for them with `sigwait`, so it receives all
//!   of them, and passes each one to the command.
//!
//! When the command exits, init exits with its status (128 + N if signal N killed it,
//! as shells report it). The kernel then kills whatever is left in the namespace.
//!
//! The same loop also serves `kthw ns exec`: after joining a PID namespace, the joining
//! process stays outside it, so it forks the command and relays its signals and status.
//!
//! What the real inits do differently: Docker's `--init` runs tini, which is this loop
//! plus options (`-g` to signal the whole process group, `-s` subreaper mode, exit-code
//! remapping); Kubernetes' pause container is an init for a pod's shared namespaces. runc
//! itself runs no init: without `--init`, the application is PID 1.

use std::ffi::CStr;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::child::{self, Prepared, Step};

/// Every signal except those the kernel raises for a fault in this very process.
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for sig in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGSYS,
        Signal::SIGABRT,
    ] {
        set.remove(sig);
    }
    set
}

/// Runs `cmd` as our only child and supervises it; exits with its status. Runs in the
/// child after fork: system calls only. `name` is what `ps` will call us.
pub fn run(name: &CStr, cmd: &Prepared, err_wr: i32) -> ! {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    let signals = forwarded_signals();
    // Blocked before the fork, so no signal is lost between fork and the first sigwait.
    if let Err(errno) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&signals), None) {
        child::fail(err_wr, Step::Fork, errno);
    }
    let main = match child::raw_fork() {
        Ok(None) => child::exec(cmd, err_wr),
        Ok(Some(pid)) => pid,
        Err(errno) => child::fail(err_wr, Step::Fork, errno),
    };
    // Our copy of the report pipe would hide the command's successful exec from the
    // parent (it waits for end-of-file).
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(err_wr) };
    let status = supervise(main, &signals);
    // SAFETY: _exit skips Rust's and libc's exit handlers, which belong to the parent.
    unsafe { libc::_exit(status) }
}

// ANCHOR: supervise
/// Waits for signals: SIGCHLD means "reap", anything else is passed to `main`.
/// Returns `main`'s exit status as a shell reports it.
fn supervise(main: Pid, signals: &SigSet) -> i32 {
    loop {
        let mut signo: libc::c_int = 0;
        // SAFETY: sigwait on a valid set, writing into our local.
        if unsafe { libc::sigwait(signals.as_ref(), &mut signo) } != 0 {
            continue;
        }
        if signo != libc::SIGCHLD {
            // SAFETY: kill(2) with a number the kernel just gave us.
            unsafe { libc::kill(main.as_raw(), signo) };
            continue;
        }
        // Reap every child that has exited: `main`, and orphans re-parented to us.
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == main => return code,
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => return 128 + sig as i32,
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) => continue, // a zombie orphan, now gone
                Err(_) => break,
            }
        }
    }
}
// ANCHOR_END: supervise
