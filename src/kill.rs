//! `dvs kill`: like kill(1), with DC PIDs.

use crate::client::connect;
use crate::probe::{self, Probe};
use mol_servers::abi::{self, Call};
use std::path::Path;

/// Parses a signal name or number (`TERM`, `SIGTERM`, `15`).
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        anyhow::bail!("invalid signal number {n}");
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    nix::sys::signal::Signal::iterator()
        .find(|sig| sig.as_str().strip_prefix("SIG") == Some(name))
        .map(|sig| sig as i32)
        .ok_or_else(|| anyhow::anyhow!("unknown signal {s:?}"))
}

/// Parsed arguments of `dvs kill`.
#[derive(Debug, PartialEq, Eq)]
pub struct KillArgs {
    /// Signal (default SIGTERM).
    pub sig: i32,
    /// Targets: PIDs, or negative process groups.
    pub targets: Vec<i32>,
    /// DC name or id.
    pub dc: Option<String>,
}

/// Parses `[-s SIG | -SIG] [--dc NAME] PID|-PGID...` like kill(1).
pub fn parse(args: &[String]) -> anyhow::Result<KillArgs> {
    let mut sig = libc::SIGTERM;
    let mut targets = Vec::new();
    let mut dc = None;
    let mut i = 0;
    let mut only_targets = false;
    let mut sig_given = false;
    while i < args.len() {
        let a = &args[i];
        if only_targets {
            targets.push(
                a.parse()
                    .map_err(|_| anyhow::anyhow!("invalid process id {a:?}"))?,
            );
        } else if a == "--" {
            only_targets = true;
        } else if a == "-s" || a == "--signal" {
            i += 1;
            sig = parse_signal(
                args.get(i)
                    .ok_or_else(|| anyhow::anyhow!("-s needs a signal"))?,
            )?;
            sig_given = true;
        } else if a == "--dc" {
            i += 1;
            dc = Some(
                args.get(i)
                    .ok_or_else(|| anyhow::anyhow!("--dc needs a DC"))?
                    .clone(),
            );
        } else if let Some(v) = a.strip_prefix("--dc=") {
            dc = Some(v.to_string());
        } else if let Some(rest) = a
            .strip_prefix('-')
            .filter(|_| targets.is_empty() && !sig_given)
        {
            // Before any target, `-N` and `-NAME` name the signal (use
            // `--` before negative process groups).
            sig = parse_signal(rest)?;
            sig_given = true;
        } else {
            targets.push(
                a.parse()
                    .map_err(|_| anyhow::anyhow!("invalid process id {a:?}"))?,
            );
        }
        i += 1;
    }
    if targets.is_empty() {
        anyhow::bail!("no process given (usage: dvs kill [-s SIG|-SIG] PID|-PGID...)");
    }
    Ok(KillArgs { sig, targets, dc })
}

/// Sends the signal; fails if any target could not be signalled.
pub fn kill(socket: &Path, explicit: bool, args: &[String]) -> anyhow::Result<()> {
    let k = parse(args)?;
    let mut dcs = Vec::new();
    let socks = probe::sockets(socket, explicit);
    let many = socks.len() > 1;
    for sock in socks {
        // A daemon of a dvs-exec run that ends while we look is skipped.
        let found = match connect(&sock).and_then(|dvk| probe::mol_dcs(&dvk)) {
            Ok(v) => v,
            Err(_) if many => continue,
            Err(e) => return Err(e),
        };
        for (id, name) in found {
            if k.dc
                .as_deref()
                .is_none_or(|d| d == name || d.parse::<i32>().ok() == Some(id))
            {
                dcs.push((sock.clone(), id, name));
            }
        }
    }
    let (sock, id, _) = match dcs.len() {
        0 => anyhow::bail!(
            "no DC with running MoL servers{}",
            k.dc.map(|d| format!(" named {d:?}")).unwrap_or_default()
        ),
        1 => dcs.remove(0),
        _ => anyhow::bail!(
            "several DCs are running ({}); choose one with --dc",
            dcs.iter()
                .map(|d| d.2.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let probe = Probe::join(&sock, id)?;
    let mut failed = 0;
    for t in &k.targets {
        if let Err(e) = probe.call(abi::PM, Call::PmKill, &[*t as i64 as u64, k.sig as u64])? {
            eprintln!("dvs: kill {t}: {}", std::io::Error::from_raw_os_error(e));
            failed += 1;
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} targets could not be signalled",
            k.targets.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> KillArgs {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn kill_syntax() {
        assert_eq!(p(&["5"]).sig, libc::SIGTERM);
        assert_eq!(p(&["-9", "5"]).sig, 9);
        assert_eq!(p(&["-9", "5"]).targets, vec![5]);
        assert_eq!(p(&["-KILL", "5"]).sig, 9);
        assert_eq!(p(&["-s", "INT", "5", "-7"]).targets, vec![5, -7]);
        assert_eq!(p(&["-9", "--", "-7"]).targets, vec![-7]);
        assert_eq!(p(&["-s", "SIGINT", "5"]).sig, libc::SIGINT);
        assert_eq!(p(&["--", "-7"]).targets, vec![-7]);
        assert_eq!(p(&["--dc", "x", "3"]).dc.as_deref(), Some("x"));
        assert!(parse(&["-s".into()]).is_err());
        assert!(parse(&["-NOPE".into(), "1".into()]).is_err());
    }
}
