//! `kthw ns exec PID -- CMD`: run a command inside the namespaces of a running process,
//! with `setns(2)`. This is the mechanism behind `docker exec`, `kubectl exec` (the
//! kubelet asks the runtime, which asks runc) and `nsenter`.
//!
//! ```text
//!  kthw ns exec 4242 -- sh          open /proc/4242/ns/{user,ipc,uts,net,pid,cgroup,mnt}
//!   └─ child: setns(user) … setns(mnt); become uid 0 of the user namespace
//!       └─ sh   (forked after setns(pid): a PID namespace is entered by children only)
//! ```
//!
//! Only the kinds that differ from ours are joined (setns to our own user namespace
//! fails with EINVAL). The mount namespace comes last: joining it changes our root and
//! working directory to the target's, after which `/proc/4242/ns/...` may mean
//! something else, so every namespace file is opened before the first `setns`.
//!
//! What the real tools do differently: `runc exec` also joins the container's cgroups,
//! applies its capabilities, seccomp filter, AppArmor profile and `no_new_privs`, and
//! changes into its working directory; `nsenter` lets you choose which kinds to join.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use kthw_lab::host::Namespace;
use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid, fork};

use crate::child::{self, Prepared, Step};
use crate::run::{Process, require_root};
use crate::spec::Stdio;
use crate::{Error, Result, init, inspect};

/// The order in which namespaces are joined: user first (it grants the capabilities
/// needed for the rest), mount last.
const JOIN_ORDER: [Namespace; 7] = [
    Namespace::User,
    Namespace::Ipc,
    Namespace::Uts,
    Namespace::Net,
    Namespace::Pid,
    Namespace::Cgroup,
    Namespace::Mount,
];

// ANCHOR: exec
/// Starts `command` in the namespaces of process `target` and returns its handle.
///
/// # Errors
/// [`Error::NotRoot`], [`Error::NoSuchProcess`], [`Error::CommandNotFound`] (looked up
/// inside the target's root), or [`Error::Setup`] naming the step that failed.
pub fn spawn(target: Pid, command: &[String], stdio: Stdio) -> Result<Process> {
    require_root("joining namespaces")?;
    if command.is_empty() {
        return Err(Error::InvalidSpec("no command given; put it after `--`, e.g. `kthw ns exec 4242 -- sh`".into()));
    }
    let ours = Pid::this();
    let mut join: Vec<(Namespace, File)> = Vec::new();
    for ns in JOIN_ORDER {
        let (theirs, mine) = (inspect::inode(target, ns), inspect::inode(ours, ns));
        match (theirs, mine) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(_), _) => {
                let path = format!("/proc/{target}/ns/{}", ns.proc_name());
                join.push((ns, File::open(&path).map_err(Error::io("open", path))?));
            }
            (Err(_), _) if !inspect::exists(target) => return Err(Error::NoSuchProcess { pid: target.as_raw() }),
            (Err(_), _) => {} // a kind this kernel does not have
        }
    }
    let root = PathBuf::from(format!("/proc/{target}/root"));
    let cmd = Prepared::new(command, &root)?;
    let (err_rd, err_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
    let fds: Vec<(Namespace, RawFd)> = join.iter().map(|(ns, f)| (*ns, f.as_raw_fd())).collect();
    let raw = |fd: &Option<OwnedFd>| fd.as_ref().map(AsRawFd::as_raw_fd);
    let stdio_fds = [raw(&stdio.stdin), raw(&stdio.stdout), raw(&stdio.stderr)];
    let mut keep = [-1; 9];
    keep[0] = err_wr.as_raw_fd();
    for (slot, (_, fd)) in keep[1..].iter_mut().zip(&fds) {
        *slot = *fd;
    }
    // SAFETY: the child only makes system calls until it execs or exits.
    match unsafe { fork() }.map_err(Error::sys("fork"))? {
        ForkResult::Child => in_child(&fds, &cmd, stdio_fds, err_wr.as_raw_fd(), err_rd.as_raw_fd(), &mut keep),
        ForkResult::Parent { child } => {
            // Dropped on an error below: that kills and reaps the child.
            let process = Process::from_pid(child);
            drop(err_wr);
            child::read_report(&err_rd)?;
            Ok(process)
        }
    }
}
// ANCHOR_END: exec

// ANCHOR: join
/// The child: join each namespace, become root of the user namespace if we joined
/// one, then exec — or, after joining a PID namespace, fork the command and relay.
fn in_child(
    fds: &[(Namespace, RawFd)],
    cmd: &Prepared,
    stdio: [Option<RawFd>; 3],
    err_wr: RawFd,
    err_rd: RawFd,
    keep: &mut [RawFd],
) -> ! {
    // SAFETY: closing our copy of the parent's end.
    unsafe { libc::close(err_rd) };
    child::redirect_stdio(stdio, err_wr);
    child::close_others(keep);
    for (ns, fd) in fds {
        // SAFETY: setns on a namespace file we opened.
        if unsafe { libc::setns(*fd, ns.clone_flag().bits()) } != 0 {
            child::fail(err_wr, Step::SetNs, Errno::last());
        }
        // SAFETY: the descriptor is ours and no longer needed.
        unsafe { libc::close(*fd) };
    }
    let joined = |kind| fds.iter().any(|(ns, _)| *ns == kind);
    if joined(Namespace::User) {
        child::become_root(err_wr);
    }
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        child::fail(err_wr, Step::ParentDeathSignal, Errno::last());
    }
    if joined(Namespace::Pid) { init::run(c"kthw-exec", cmd, err_wr) } else { child::exec(cmd, err_wr) }
}
// ANCHOR_END: join
