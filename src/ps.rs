//! `dvs ps`: the processes of every DC, from PM.

use crate::client::connect;
use crate::probe::{self, Probe};
use crate::table::{Align, Table};
use serde_json::json;
use std::path::Path;

fn ticks_to_time(ticks: u64) -> String {
    // SAFETY: sysconf with a constant name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let s = ticks / hz;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Prints the process table of the DCs (all, or the one named `dc`).
pub fn ps(socket: &Path, explicit: bool, dc: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let socks = probe::sockets(socket, explicit);
    let many = socks.len() > 1;
    for sock in socks {
        // With one daemon per dvs-exec run, a run may end while we look:
        // its daemon is skipped (unless it is the only one).
        let dcs = match connect(&sock).and_then(|dvk| probe::mol_dcs(&dvk)) {
            Ok(v) => v,
            Err(_) if many => continue,
            Err(e) => return Err(e),
        };
        for (id, name) in dcs {
            if dc.is_some_and(|d| d != name && d.parse::<i32>().ok() != Some(id)) {
                continue;
            }
            let rows = match Probe::join(&sock, id).and_then(|p| p.ps()) {
                Ok(r) => r,
                Err(_) if many && dc.is_none() => continue,
                Err(e) => return Err(e),
            };
            all.push((id, name, rows));
        }
    }
    if let Some(d) = dc {
        if all.is_empty() {
            anyhow::bail!("no DC {d:?} with running MoL servers on this node");
        }
    }
    if json_out {
        let v: Vec<_> = all
            .iter()
            .map(|(id, name, rows)| json!({"dc": id, "name": name, "processes": rows}))
            .collect();
        return crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    let mut out = String::new();
    let many = all.len() > 1;
    for (id, name, rows) in &all {
        if many {
            out.push_str(&format!("DC {id} {name}\n"));
        }
        let r = Align::Right;
        let l = Align::Left;
        let mut t = Table::new(&[
            ("PID", r),
            ("PPID", r),
            ("PGID", r),
            ("STAT", l),
            ("NODE", r),
            ("ENDPOINT", r),
            ("TIME", r),
            ("CMD", l),
        ]);
        for r in rows {
            t.row(vec![
                r.pid.to_string(),
                r.ppid.to_string(),
                r.pgid.to_string(),
                r.stat.clone(),
                r.node.to_string(),
                r.endpoint.to_string(),
                ticks_to_time(r.ticks),
                r.cmd.clone(),
            ]);
        }
        out.push_str(&t.render());
        if many {
            out.push('\n');
        }
    }
    crate::emit(&out)
}
