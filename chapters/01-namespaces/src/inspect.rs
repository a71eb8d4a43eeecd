//! Looking at namespaces from the outside, through `/proc`.
//!
//! Every process has one namespace of each kind, shown as a symbolic link:
//! `/proc/PID/ns/uts -> 'uts:[4026531838]'`. The number is the inode of the namespace
//! in the kernel's internal `nsfs`: two processes are in the same namespace exactly
//! when their links show the same number. That is all `lsns` does, and all we do here.
//!
//! Some facts need no namespace switch: `/proc/PID/status` lists a process's PID in
//! every nested PID namespace (`NSpid`), and `/proc/PID/net/dev` lists the interfaces
//! of *its* network namespace. The host name is not in /proc, so [`hostname_of`] joins
//! the UTS namespace in a short-lived child.
//!
//! What the real tools do differently: `lsns` (util-linux) also reads the owning user
//! namespace and parent of each namespace with `ioctl(NS_GET_USERNS/NS_GET_PARENT)`, and
//! finds namespaces kept alive by a bind mount or an open descriptor, with no process
//! in them (`ip netns add` makes such bind mounts; chapter 5 uses one for a pod).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::fd::AsRawFd;

use kthw_lab::host::Namespace;
use nix::unistd::{ForkResult, Pid, fork};

use crate::{Error, Result};

// ANCHOR: inode
/// The inode number of `pid`'s namespace of kind `ns`: its identity.
///
/// # Errors
/// If the process does not exist, or this kernel lacks that kind.
pub fn inode(pid: Pid, ns: Namespace) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/{}", ns.proc_name());
    let link = fs::read_link(&path).map_err(Error::io("read the link", &path))?;
    let link = link.to_string_lossy();
    parse_ns_link(&link).map(|(_, inode)| inode).ok_or_else(|| Error::Parse { what: path, detail: format!("{link:?}") })
}

/// Splits a namespace link such as `uts:[4026531838]` into its kind and inode.
pub fn parse_ns_link(link: &str) -> Option<(&str, u64)> {
    let (kind, rest) = link.split_once(":[")?;
    Some((kind, rest.strip_suffix(']')?.parse().ok()?))
}
// ANCHOR_END: inode

/// Whether a process with this PID exists (a zombie counts).
pub fn exists(pid: Pid) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// Whether the process exists and is not a zombie.
pub fn is_running(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| state_of(&s).is_some_and(|c| c != 'Z'))
}

/// The state letter from a `/proc/PID/stat` line (after the parenthesised command,
/// which may itself contain spaces and parentheses).
pub fn state_of(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// One namespace kind of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsId {
    pub kind: Namespace,
    pub inode: u64,
}

/// Every namespace of `pid`, in [`Namespace::ALL`] order (kinds the kernel lacks are left out).
///
/// # Errors
/// [`Error::NoSuchProcess`] if there is no such process.
pub fn namespaces_of(pid: Pid) -> Result<Vec<NsId>> {
    if !exists(pid) {
        return Err(Error::NoSuchProcess { pid: pid.as_raw() });
    }
    Ok(Namespace::ALL.into_iter().filter_map(|kind| inode(pid, kind).ok().map(|inode| NsId { kind, inode })).collect())
}

// ANCHOR: show
/// `kthw ns show PID [OTHER]`: the namespaces of one process, or of two side by side
/// with "same" or "different" for each kind.
///
/// # Errors
/// [`Error::NoSuchProcess`] for a PID that does not exist.
pub fn show(pid: Pid, other: Option<Pid>) -> Result<String> {
    let a = namespaces_of(pid)?;
    let b = other.map(namespaces_of).transpose()?;
    let mut out = format!("{:<7} {:<13}", "TYPE", format!("PID {pid}"));
    if let Some(o) = other {
        let _ = write!(out, " {:<13} SHARED", format!("PID {o}"));
    }
    out = out.trim_end().to_string();
    out.push('\n');
    for ns in &a {
        let _ = write!(out, "{:<7} {:<13}", ns.kind.proc_name(), ns.inode);
        if let Some(b) = &b {
            let theirs = b.iter().find(|x| x.kind == ns.kind).map(|x| x.inode);
            let verdict = if theirs == Some(ns.inode) { "same" } else { "different" };
            let _ = write!(out, " {:<13} {verdict}", theirs.map(|i| i.to_string()).unwrap_or_else(|| "-".into()));
        }
        out = out.trim_end().to_string();
        out.push('\n');
    }
    Ok(out)
}
// ANCHOR_END: show

/// One namespace in use, as `lsns` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsUse {
    pub inode: u64,
    pub kind: Namespace,
    /// Every process in it, lowest PID first.
    pub pids: Vec<i32>,
    /// The user and command line of the lowest PID.
    pub user: String,
    pub command: String,
}

// ANCHOR: list
/// Every namespace some process is in: read `/proc/*/ns/*` and group by inode.
///
/// # Errors
/// If `/proc` cannot be read. Processes that exit during the scan are skipped.
pub fn list() -> Result<Vec<NsUse>> {
    let mut by_inode: BTreeMap<(u64, &str), (Namespace, Vec<i32>)> = BTreeMap::new();
    let entries = fs::read_dir("/proc").map_err(Error::io("read", "/proc"))?;
    let mut pids: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    for pid in pids {
        for kind in Namespace::ALL {
            if let Ok(inode) = inode(Pid::from_raw(pid), kind) {
                by_inode.entry((inode, kind.proc_name())).or_insert_with(|| (kind, Vec::new())).1.push(pid);
            }
        }
    }
    let users = users();
    Ok(by_inode
        .into_iter()
        .map(|((inode, _), (kind, pids))| {
            let first = pids[0];
            NsUse { inode, kind, user: user_of(first, &users), command: command_of(first), pids }
        })
        .collect())
}
// ANCHOR_END: list

/// Formats [`list`]'s result as `lsns` does: NS TYPE NPROCS PID USER COMMAND.
pub fn render_list(list: &[NsUse]) -> String {
    let mut out = format!("{:>10} {:<6} {:>6} {:>7} {:<8} {}\n", "NS", "TYPE", "NPROCS", "PID", "USER", "COMMAND");
    for ns in list {
        let _ = writeln!(
            out,
            "{:>10} {:<6} {:>6} {:>7} {:<8} {}",
            ns.inode,
            ns.kind.proc_name(),
            ns.pids.len(),
            ns.pids[0],
            ns.user,
            ns.command
        );
    }
    out
}

/// The command line of a process, or `[comm]` for a kernel thread (as `ps` shows it).
pub fn command_of(pid: i32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    if args.is_empty() {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        format!("[{}]", comm.trim())
    } else {
        args.join(" ")
    }
}

/// uid → name, from /etc/passwd.
fn users() -> BTreeMap<u32, String> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            Some((f.nth(1)?.parse().ok()?, name.to_string()))
        })
        .collect()
}

fn user_of(pid: i32, users: &BTreeMap<u32, String>) -> String {
    let uid =
        status_field(Pid::from_raw(pid), "Uid").ok().and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
    match uid {
        Some(uid) => users.get(&uid).cloned().unwrap_or_else(|| uid.to_string()),
        None => "?".into(),
    }
}

/// A field of `/proc/PID/status`, such as `NSpid` or `Uid`.
///
/// # Errors
/// If the process does not exist or has no such field.
pub fn status_field(pid: Pid, field: &str) -> Result<String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(Error::io("read", &path))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(|v| v.trim().to_string()))
        .ok_or_else(|| Error::Parse { what: path, detail: format!("no {field} line") })
}

// ANCHOR: nspid
/// The PIDs of a process in each PID namespace it is in, outermost (the host's) first:
/// `[4242, 1]` for the first process of a new PID namespace.
///
/// # Errors
/// If the process does not exist.
pub fn nspid(pid: Pid) -> Result<Vec<i32>> {
    let field = status_field(pid, "NSpid")?;
    Ok(field.split_whitespace().filter_map(|p| p.parse().ok()).collect())
}
// ANCHOR_END: nspid

/// The network interfaces of `pid`'s network namespace, from `/proc/PID/net/dev`.
///
/// # Errors
/// If the process does not exist.
pub fn interfaces_of(pid: Pid) -> Result<Vec<String>> {
    let path = format!("/proc/{pid}/net/dev");
    let dev = fs::read_to_string(&path).map_err(Error::io("read", &path))?;
    // Two header lines, then "  name: counters...".
    Ok(dev.lines().skip(2).filter_map(|l| Some(l.split_once(':')?.0.trim().to_string())).collect())
}

// ANCHOR: hostname_of
/// The host name as process `pid` sees it: a child joins its UTS namespace, calls
/// `uname`, and sends the name back through a pipe.
///
/// # Errors
/// If the process does not exist or its UTS namespace cannot be joined.
pub fn hostname_of(pid: Pid) -> Result<String> {
    let path = format!("/proc/{pid}/ns/uts");
    let ns = fs::File::open(&path).map_err(Error::io("open", &path))?;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(Error::sys("pipe2"))?;
    // SAFETY: the child only makes system calls (setns, uname, write, _exit).
    match unsafe { fork() }.map_err(Error::sys("fork"))? {
        ForkResult::Child => unsafe {
            let mut uts: libc::utsname = std::mem::zeroed();
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWUTS) == 0 && libc::uname(&mut uts) == 0 {
                let len = uts.nodename.iter().position(|c| *c == 0).unwrap_or(uts.nodename.len());
                libc::write(wr.as_raw_fd(), uts.nodename.as_ptr().cast(), len);
                libc::_exit(0);
            }
            libc::_exit(1)
        },
        ForkResult::Parent { child } => {
            drop(wr);
            let mut name = String::new();
            let read = std::io::Read::read_to_string(&mut fs::File::from(rd), &mut name);
            let status = nix::sys::wait::waitpid(child, None).map_err(Error::sys("waitpid"))?;
            match (read, status) {
                (Ok(_), nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(name),
                _ => Err(Error::Sys { call: "setns into the UTS namespace", errno: nix::Error::EPERM }),
            }
        }
    }
}
// ANCHOR_END: hostname_of

#[cfg(test)]
mod tests {
    use super::*;

    // A namespace link splits into its kind and inode; anything else is refused.
    #[test]
    fn ns_links_parse() {
        assert_eq!(parse_ns_link("uts:[4026531838]"), Some(("uts", 4026531838)));
        assert_eq!(parse_ns_link("pid_for_children:[4026532201]"), Some(("pid_for_children", 4026532201)));
        assert_eq!(parse_ns_link("uts"), None);
        assert_eq!(parse_ns_link("uts:[abc]"), None);
    }

    // The state letter is found even when the command name has spaces and parentheses.
    #[test]
    fn state_letter_after_odd_command_names() {
        assert_eq!(state_of("42 (sleep) S 1 42"), Some('S'));
        assert_eq!(state_of("43 (my (odd) cmd) Z 1 43"), Some('Z'));
        assert_eq!(state_of("garbage"), None);
    }

    // Our own process has every namespace kind the kernel offers, and is in the same
    // namespaces as itself.
    #[test]
    fn a_process_shares_every_namespace_with_itself() {
        let me = Pid::this();
        let text = show(me, Some(me)).unwrap();
        assert!(text.starts_with("TYPE"), "{text}");
        assert!(text.lines().skip(1).all(|l| l.ends_with(" same")), "{text}");
        assert!(text.contains("\nuts "), "{text}");
    }

    // A PID that does not exist is a clear error, not an empty table.
    #[test]
    fn missing_process_is_named() {
        let err = show(Pid::from_raw(i32::MAX), None).unwrap_err();
        assert!(err.to_string().contains("there is no process 2147483647"), "{err}");
    }

    // The listing groups processes by namespace: our own UTS namespace holds us.
    #[test]
    fn list_groups_processes_by_inode() {
        let me = std::process::id() as i32;
        let uts = inode(Pid::this(), Namespace::Uts).unwrap();
        let all = list().unwrap();
        let ours = all.iter().find(|n| n.inode == uts && n.kind == Namespace::Uts).unwrap();
        assert!(ours.pids.contains(&me));
        let text = render_list(&all);
        assert!(text.starts_with("        NS TYPE   NPROCS     PID USER     COMMAND\n"), "{text}");
    }

    // Our own network namespace's interfaces include lo.
    #[test]
    fn interfaces_include_lo() {
        assert!(interfaces_of(Pid::this()).unwrap().contains(&"lo".to_string()));
    }
}
