//! The process table for `dvs ps`.

use super::table::{Life, PsRow};
use super::Pm;
use crate::abi::{self, Call, INIT_PID, PM};
use crate::server::{Ctx, Handler, Outcome, Request};
use crate::systask::host_state;

pub(super) const CALLS: &[(Call, Handler<Pm>)] = &[(Call::PmPs, Pm::ps)];

impl Pm {
    /// The rows of `dvs ps`, init first. The host state of a process of
    /// another node comes from that node's SYSTASK.
    pub fn rows(&self, ctx: &Ctx) -> Vec<PsRow> {
        let state_on = |node: i32, pid: i32| {
            if node == self.node {
                return host_state(pid);
            }
            ctx.call(abi::systask(node), Call::SysStat, &[pid as u64])
                .ok()
                .filter(|m| abi::result(m).is_ok())
                .map_or(("?".into(), 0), |m| {
                    let w = m.words();
                    (char::from(w[1] as u8).to_string(), w[0])
                })
        };
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
                Life::Alive => state_on(p.node, p.host_pid),
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
        let json = match serde_json::to_vec(&self.rows(ctx)) {
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
