//! The process table for `dvs ps`.

use super::table::{Life, PsRow};
use super::Pm;
use crate::abi::{Call, INIT_PID, PM};
use crate::server::{Ctx, Handler, Outcome, Request};

pub(super) const CALLS: &[(Call, Handler<Pm>)] = &[(Call::PmPs, Pm::ps)];

/// State letter and CPU ticks of a host task.
fn host_state(pid: i32) -> (String, u64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return ("?".into(), 0);
    };
    let Some(i) = stat.rfind(')') else {
        return ("?".into(), 0);
    };
    let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
    let ticks = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (f.first().unwrap_or(&"?").to_string(), ticks(14) + ticks(15))
}

impl Pm {
    /// The rows of `dvs ps`, init first.
    pub fn rows(&self) -> Vec<PsRow> {
        let mut rows = vec![PsRow {
            pid: INIT_PID,
            ppid: 0,
            pgid: INIT_PID,
            sid: INIT_PID,
            stat: "S".into(),
            node: self.node,
            endpoint: PM.0,
            host_pid: std::process::id() as i32,
            ticks: 0,
            cmd: "init".into(),
        }];
        for p in self.table.iter() {
            let (stat, ticks) = match p.life {
                Life::Alive => host_state(p.host_pid),
                Life::Zombie(_) => ("Z".into(), 0),
            };
            rows.push(PsRow {
                pid: p.pid,
                ppid: p.ppid,
                pgid: p.pgid,
                sid: p.sid,
                stat,
                node: p.node,
                endpoint: p.ep.0,
                host_pid: p.host_pid,
                ticks,
                cmd: p.cmd.clone(),
            });
        }
        rows
    }

    /// `PmPs [buf, len]`: the rows as JSON; returns the full length.
    fn ps(&mut self, ctx: &Ctx, req: &Request) -> Outcome {
        let json = match serde_json::to_vec(&self.rows()) {
            Ok(j) => j,
            Err(_) => return Outcome::err(libc::EIO),
        };
        let cap = req.args[1] as usize;
        if json.len() <= cap {
            if let Err(e) = ctx.copy_out(req.sender, req.args[0], &json) {
                return Outcome::err(e);
            }
        }
        Outcome::ok(json.len() as i64)
    }
}
