//! The DC's view of `/proc/<pid>/stat` and `/proc/<pid>/status`: the
//! host files name host ids (the process's own pid, its parent, process
//! group and session), which mean nothing in the DC. Opening one for
//! reading gives a snapshot of the host file with those ids turned into
//! DC pids (PM's answers), held by FS as an anonymous file: `ps`, `pgrep`
//! and `pstree` then show the DC's pids, as in a pid namespace.

use crate::Shim;
use mol_servers::abi::{self, Call, FS, PM};

/// Which file of a process directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Stat,
    Status,
}

/// The DC ids of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    pid: i64,
    ppid: i64,
    pgid: i64,
    sid: i64,
}

/// `/proc/<N>/stat` or `/proc/<N>/status` (`N` digits or `self`): the DC
/// pid named (`None` for `self`) and the file.
fn parse(path: &[u8]) -> Option<(Option<i64>, Which)> {
    let rest = path.strip_prefix(b"/proc/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (who, file) = (&rest[..slash], &rest[slash + 1..]);
    let which = match file {
        b"stat" => Which::Stat,
        b"status" => Which::Status,
        _ => return None,
    };
    if who == b"self" {
        return Some((None, which));
    }
    if who.is_empty() || !who.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid = std::str::from_utf8(who).ok()?.parse().ok()?;
    Some((Some(pid), which))
}

/// `stat` with fields 1 (pid), 4 (ppid), 5 (process group) and 6
/// (session) replaced by `ids`; `None` if it is not a stat line.
fn rewrite_stat(text: &[u8], ids: Ids) -> Option<Vec<u8>> {
    // The command name is in parentheses and may hold anything: the fields
    // after it start after the last ')'.
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let mut out = format!("{} ", ids.pid).into_bytes();
    out.extend_from_slice(&text[open..=close]);
    let tail = std::str::from_utf8(&text[close + 1..]).ok()?;
    let mut fields: Vec<String> = tail.split_whitespace().map(str::to_owned).collect();
    // fields[0] is the state (field 3); then ppid, pgrp, session.
    if fields.len() < 4 {
        return None;
    }
    fields[1] = ids.ppid.to_string();
    fields[2] = ids.pgid.to_string();
    fields[3] = ids.sid.to_string();
    out.push(b' ');
    out.extend_from_slice(fields.join(" ").as_bytes());
    out.push(b'\n');
    Some(out)
}

/// `status` with its id lines (`Tgid`, `Pid`, `PPid`, and the namespace
/// ones, which show a single level) given as DC pids.
fn rewrite_status(text: &[u8], ids: Ids) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        let key = line.split(|&b| b == b':').next().unwrap_or_default();
        let v = match key {
            b"Tgid" | b"Pid" | b"NStgid" | b"NSpid" => Some(ids.pid),
            b"PPid" => Some(ids.ppid),
            b"NSpgid" => Some(ids.pgid),
            b"NSsid" => Some(ids.sid),
            _ => None,
        };
        match v {
            Some(v) => {
                out.extend_from_slice(key);
                out.extend_from_slice(format!(":\t{v}\n").as_bytes());
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// Field 4 (the parent's pid) of a host `stat` line.
fn host_ppid(stat: &[u8]) -> Option<i32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    std::str::from_utf8(&stat[close + 1..])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Shim {
    /// An `open` of `/proc/<pid>/stat` or `status` for reading: the DC
    /// view of it as a new descriptor, or `None` for any other open (and
    /// for a process the DC does not have here, whose directory FS then
    /// reports missing).
    pub(crate) fn open_proc_view(&self, path: &[u8], flags: u64) -> Option<Result<i64, i32>> {
        let flags = flags as i32;
        if flags & (libc::O_ACCMODE | libc::O_CREAT | libc::O_DIRECTORY | libc::O_PATH) != 0 {
            return None;
        }
        let (pid, which) = parse(path)?;
        let pid = match pid {
            Some(p) => p,
            None => self.getpid(),
        };
        let host = self.dc_proc_path(format!("/proc/{pid}").into_bytes());
        let host = std::str::from_utf8(&host).ok()?.to_owned();
        if host == "/proc/0" {
            return None;
        }
        let stat = std::fs::read(format!("{host}/stat")).ok()?;
        let ids = self.dc_ids(pid, &stat);
        let text = match which {
            Which::Stat => rewrite_stat(&stat, ids)?,
            Which::Status => rewrite_status(&std::fs::read(format!("{host}/status")).ok()?, ids),
        };
        Some(self.anonymous_file(&text, flags & libc::O_CLOEXEC != 0))
    }

    /// DC pid `pid`'s parent, group and session (0 where PM has none).
    fn dc_ids(&self, pid: i64, host_stat: &[u8]) -> Ids {
        let ppid = if pid == i64::from(abi::INIT_PID) {
            0
        } else {
            match host_ppid(host_stat) {
                // Orphans and the first program are the children of the
                // process that runs PM (dvs-exec, the host subreaper): init.
                Some(h) if h == self.ipc.host_pid(PM) => i64::from(abi::INIT_PID),
                Some(h) => self.value(PM, Call::PmPidOfHost, &[h as u64]).unwrap_or(0),
                None => 0,
            }
        };
        let of = |call| self.value(PM, call, &[pid as u64]).unwrap_or(0);
        Ids {
            pid,
            ppid,
            pgid: of(Call::PmGetpgid),
            sid: of(Call::PmGetsid),
        }
    }

    /// A new FS descriptor of an anonymous file holding `text`, at offset
    /// 0.
    fn anonymous_file(&self, text: &[u8], cloexec: bool) -> Result<i64, i32> {
        let name = b"proc";
        let mfd = if cloexec { libc::MFD_CLOEXEC } else { 0 };
        let fd = self.value(
            FS,
            Call::FsMemfdCreate,
            &[name.as_ptr() as u64, name.len() as u64, mfd as u64],
        )?;
        let filled = self
            .value(
                FS,
                Call::FsWrite,
                &[fd as u64, text.as_ptr() as u64, text.len() as u64],
            )
            .and_then(|_| self.value(FS, Call::FsLseek, &[fd as u64, 0, libc::SEEK_SET as u64]));
        if let Err(e) = filled {
            let _ = self.value(FS, Call::FsClose, &[fd as u64]);
            return Err(e);
        }
        Ok(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: Ids = Ids {
        pid: 7,
        ppid: 2,
        pgid: 7,
        sid: 2,
    };

    #[test]
    fn paths() {
        assert_eq!(parse(b"/proc/12/stat"), Some((Some(12), Which::Stat)));
        assert_eq!(parse(b"/proc/self/status"), Some((None, Which::Status)));
        assert_eq!(parse(b"/proc/12/statm"), None);
        assert_eq!(parse(b"/proc/12/task/12/stat"), None);
        assert_eq!(parse(b"/proc/x1/stat"), None);
        assert_eq!(parse(b"proc/12/stat"), None);
    }

    #[test]
    fn stat_fields() {
        let host = b"41234 (a (weird) name) S 41200 41200 41000 0 -1 4194560 96 0\n";
        let out = rewrite_stat(host, IDS).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "7 (a (weird) name) S 2 7 2 0 -1 4194560 96 0\n"
        );
        assert_eq!(host_ppid(host), Some(41200));
        assert_eq!(rewrite_stat(b"garbage", IDS), None);
    }

    #[test]
    fn status_lines() {
        let host = b"Name:\tsh\nTgid:\t41234\nNgid:\t0\nPid:\t41234\nPPid:\t41200\nNSpid:\t41234\nNSsid:\t41000\nUid:\t0\t0\t0\t0\n";
        let out = String::from_utf8(rewrite_status(host, IDS)).unwrap();
        assert_eq!(
            out,
            "Name:\tsh\nTgid:\t7\nNgid:\t0\nPid:\t7\nPPid:\t2\nNSpid:\t7\nNSsid:\t2\nUid:\t0\t0\t0\t0\n"
        );
    }
}
