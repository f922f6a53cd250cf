//! `dvs status`: the node's DVS, nodes, proxies and DCs, as the seed
//! prototype shows them under `/proc/dvs`.

use crate::client::{connect, DvkContext};
use crate::table::{Align, Table};
use dvk::proto::{DcStatus, StatusSnapshot};
use dvk::{Endpoint, ProcInfo, ProcKind};
use mol_servers::slots_group::SlotsStatus;
use std::fmt::Write as _;
use std::path::Path;

/// `dvs status [--json] [--dc NAME|ID]`.
pub fn run(socket: &Path, json: bool, dc: Option<&str>) -> anyhow::Result<()> {
    let dvk = connect(socket)?;
    let mut snap = dvk.status().doing("cannot read the node status")?;
    if let Some(spec) = dc {
        let i = find_dc(&snap, spec)
            .ok_or_else(|| anyhow::anyhow!("no DC {spec:?} is running on this node"))?;
        let one = snap.dcs.swap_remove(i);
        snap.dcs = vec![one];
    }
    let slots = slots_of(socket, &snap);
    let text = if json {
        let mut v = serde_json::to_value(&snap)?;
        if let Some(dcs) = v.get_mut("dcs").and_then(|d| d.as_array_mut()) {
            for (d, s) in dcs.iter_mut().zip(&slots) {
                if let Some(o) = d.as_object_mut() {
                    o.insert("slots".into(), serde_json::to_value(s)?);
                }
            }
        }
        let mut s = serde_json::to_string_pretty(&v)?;
        s.push('\n');
        s
    } else {
        let mut text = render(&snap);
        for s in slots.iter().flatten() {
            render_slots(&mut text, s);
        }
        text
    };
    crate::emit(&text)
}

/// The SLOTS view of this node's SYSTASK in each DC where it runs (MoL
/// DCs), asked through a probe endpoint.
fn slots_of(socket: &Path, snap: &StatusSnapshot) -> Vec<Option<SlotsStatus>> {
    let node = snap.info.node;
    snap.dcs
        .iter()
        .map(|dc| {
            let here = dc.procs.iter().any(|p| {
                p.endpoint == mol_servers::abi::systask(node) && p.kind == ProcKind::Local
            });
            if !here {
                return None;
            }
            let probe = crate::probe::Probe::join(socket, dc.info.params.dcid).ok()?;
            probe.slots(node).ok()
        })
        .collect()
}

/// The SLOTS section of a DC: the members, how many slots each owns in
/// this node's replica, and this node's use of its own.
fn render_slots(out: &mut String, s: &SlotsStatus) {
    let mut owned: std::collections::BTreeMap<i32, usize> = std::collections::BTreeMap::new();
    for &o in &s.owner {
        *owned.entry(o).or_default() += 1;
    }
    let owned: Vec<String> = owned
        .iter()
        .map(|(n, c)| {
            if *n < 0 {
                format!("unknown:{c}")
            } else {
                format!("{n}:{c}")
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "\nSLOTS (node {}, group {}{})\n  members={} owned={} free={} in_use={}\n  allocs={} waits={} failed={} multicasts={} requests={} received={} donated={}",
        s.node,
        s.gcs,
        if s.synced { "" } else { ", no table yet" },
        id_list(&s.members),
        owned.join(","),
        s.free,
        s.in_use,
        s.allocs,
        s.waits,
        s.failed,
        s.multicasts,
        s.requests,
        s.received,
        s.donated,
    );
}

/// Index of the DC named by `spec` (an id, else a name) in the snapshot.
fn find_dc(snap: &StatusSnapshot, spec: &str) -> Option<usize> {
    let by_id = spec
        .parse::<i32>()
        .ok()
        .and_then(|id| snap.dcs.iter().position(|d| d.info.params.dcid == id));
    by_id.or_else(|| snap.dcs.iter().position(|d| d.info.params.name == spec))
}

/// The whole status as text.
pub fn render(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    render_dvs(&mut out, s);
    out.push('\n');
    render_nodes(&mut out, s);
    out.push('\n');
    render_proxies(&mut out, s);
    if s.dcs.is_empty() {
        out.push_str("\nno DC is running on this node\n");
    }
    for dc in &s.dcs {
        out.push('\n');
        render_dc(&mut out, dc);
    }
    out
}

fn render_dvs(out: &mut String, s: &StatusSnapshot) {
    let i = &s.info;
    let p = &i.params;
    let rows: [(&str, String); 11] = [
        ("node", i.node.to_string()),
        ("version", i.version.clone()),
        ("daemon pid", i.daemon_pid.to_string()),
        ("socket", i.socket.clone()),
        ("nr_nodes", p.nr_nodes.to_string()),
        ("nr_dcs", p.nr_dcs.to_string()),
        ("nr_procs", p.nr_procs.to_string()),
        ("nr_tasks", p.nr_tasks.to_string()),
        ("nr_sysprocs", p.nr_sysprocs.to_string()),
        ("max_copybuf", p.max_copybuf.to_string()),
        ("max_copylen", p.max_copylen.to_string()),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    out.push_str("DVS\n");
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
}

fn render_nodes(out: &mut String, s: &StatusSnapshot) {
    let mut t = Table::new(&[
        ("id", Align::Right),
        ("name", Align::Left),
        ("up", Align::Left),
        ("proxy", Align::Left),
        ("dcs", Align::Left),
    ]);
    for n in &s.nodes {
        t.row(vec![
            n.id.to_string(),
            n.name.clone(),
            yes_no(n.up).into(),
            n.proxy.map_or_else(|| "-".into(), |p| p.to_string()),
            id_list(&n.dcs),
        ]);
    }
    out.push_str("NODES\n");
    out.push_str(&t.render());
}

fn render_proxies(out: &mut String, s: &StatusSnapshot) {
    let mut t = Table::new(&[
        ("id", Align::Right),
        ("name", Align::Left),
        ("nodes", Align::Left),
        ("connected", Align::Left),
    ]);
    for p in &s.proxies {
        t.row(vec![
            p.id.to_string(),
            p.name.clone(),
            id_list(&p.nodes),
            yes_no(p.connected).into(),
        ]);
    }
    out.push_str("PROXIES\n");
    out.push_str(&t.render());
}

fn render_dc(out: &mut String, dc: &DcStatus) {
    let p = &dc.info.params;
    let nodes: Vec<i32> = (0..64).filter(|n| p.nodes & (1u64 << n) != 0).collect();
    let _ = writeln!(out, "DC {} {}", p.dcid, p.name);
    let _ = writeln!(
        out,
        "  nr_procs={} nr_tasks={} nr_sysprocs={} max_copylen={} nodes={} warn2proc={} bound={}",
        p.nr_procs,
        p.nr_tasks,
        p.nr_sysprocs,
        p.max_copylen,
        id_list(&nodes),
        p.warn2proc,
        dc.info.nr_bound,
    );
    let mut procs = Table::new(&[
        ("DC", Align::Right),
        ("p_nr", Align::Right),
        ("endp", Align::Right),
        ("lpid", Align::Right),
        ("node", Align::Right),
        ("flag", Align::Left),
        ("misc", Align::Left),
        ("getf", Align::Right),
        ("sndt", Align::Right),
        ("wmig", Align::Right),
        ("prxy", Align::Right),
        ("name", Align::Left),
    ]);
    let mut sorted: Vec<&ProcInfo> = dc.procs.iter().collect();
    sorted.sort_by_key(|p| p.p_nr);
    for pi in sorted {
        procs.row(vec![
            pi.dcid.to_string(),
            pi.p_nr.to_string(),
            pi.endpoint.to_string(),
            pi.lpid.to_string(),
            pi.node.to_string(),
            if pi.state.is_empty() {
                "-".into()
            } else {
                pi.state.clone()
            },
            misc(pi),
            endpoint(pi.getf),
            endpoint(pi.sndt),
            if pi.migrating { "1" } else { "0" }.into(),
            "-".into(),
            if pi.name.is_empty() {
                "-".into()
            } else {
                pi.name.clone()
            },
        ]);
    }
    out.push_str("PROCS\n");
    out.push_str(&procs.render());
    let mut stats = Table::new(&[
        ("DC", Align::Right),
        ("lsnt", Align::Right),
        ("rsnt", Align::Right),
        ("lcopy", Align::Right),
        ("rcopy", Align::Right),
    ]);
    stats.row(vec![
        p.dcid.to_string(),
        dc.stats.lsnt.to_string(),
        dc.stats.rsnt.to_string(),
        dc.stats.lcopy.to_string(),
        dc.stats.rcopy.to_string(),
    ]);
    out.push_str("STATS\n");
    out.push_str(&stats.render());
}

/// The `misc` column: the kind letter (`L`ocal, `R`emote, `B`ackup,
/// re`P`lica), then `M` if migrating, then `P` if privileged.
fn misc(p: &ProcInfo) -> String {
    let mut s = String::from(match p.kind {
        ProcKind::Local => "L",
        ProcKind::Remote => "R",
        ProcKind::Backup => "B",
        ProcKind::Replica => "P",
    });
    if p.migrating {
        s.push('M');
    }
    if p.privilege.privileged() {
        s.push('P');
    }
    s
}

/// An endpoint in a table: `-` for `NONE`, `ANY` for `ANY`, else its number.
fn endpoint(e: Endpoint) -> String {
    if e == Endpoint::NONE {
        "-".into()
    } else {
        e.to_string()
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `1,2,3`, or `-` when empty.
fn id_list(ids: &[i32]) -> String {
    if ids.is_empty() {
        "-".into()
    } else {
        ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvk::proto::{DcStats, NodeStatus};
    use dvk::{DcInfo, DcParams, DvsInfo, DvsParams, PrivRecord};

    fn proc(p_nr: i32, kind: ProcKind, privileged: bool, migrating: bool) -> ProcInfo {
        ProcInfo {
            dcid: 1,
            p_nr,
            endpoint: Endpoint(p_nr),
            lpid: 4242,
            tid: 4242,
            node: 0,
            kind,
            privilege: PrivRecord::default_for(privileged),
            migrating,
            state: "RECV".into(),
            getf: Endpoint::ANY,
            sndt: Endpoint::NONE,
            name: "srv".into(),
            lsnt: 3,
            rsnt: 0,
            lcopy: 1,
            rcopy: 0,
        }
    }

    fn snapshot() -> StatusSnapshot {
        let dvs = DvsParams::default();
        StatusSnapshot {
            info: DvsInfo {
                node: 0,
                params: dvs,
                version: "0.1.0".into(),
                daemon_pid: 77,
                socket: "/tmp/s".into(),
            },
            nodes: vec![NodeStatus {
                id: 0,
                name: "host".into(),
                up: true,
                proxy: None,
                dcs: vec![1],
            }],
            proxies: vec![],
            dcs: vec![DcStatus {
                info: DcInfo {
                    params: DcParams::new(1, "web", &dvs),
                    running: true,
                    nr_bound: 2,
                },
                procs: vec![
                    proc(100, ProcKind::Remote, false, true),
                    proc(5, ProcKind::Local, true, false),
                ],
                stats: DcStats {
                    lsnt: 6,
                    rsnt: 0,
                    lcopy: 2,
                    rcopy: 0,
                },
            }],
        }
    }

    #[test]
    fn renders_every_section() {
        let text = render(&snapshot());
        for needle in [
            "DVS\n",
            "NODES\n",
            "PROXIES\n",
            "DC 1 web\n",
            "PROCS\n",
            "STATS\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(
            text.contains("PROXIES\nid  name  nodes  connected\n(none)\n"),
            "{text}"
        );
        assert!(text.contains("nodes=0 warn2proc=NONE bound=2"), "{text}");
    }

    #[test]
    fn procs_table_is_aligned_and_sorted() {
        let text = render(&snapshot());
        let lines: Vec<&str> = text.lines().collect();
        let h = lines
            .iter()
            .position(|l| l.starts_with("DC  p_nr"))
            .unwrap();
        let header = lines[h];
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            [
                "DC", "p_nr", "endp", "lpid", "node", "flag", "misc", "getf", "sndt", "wmig",
                "prxy", "name"
            ]
        );
        let first: Vec<&str> = lines[h + 1].split_whitespace().collect();
        let second: Vec<&str> = lines[h + 2].split_whitespace().collect();
        assert_eq!(
            first,
            ["1", "5", "5", "4242", "0", "RECV", "LP", "ANY", "-", "0", "-", "srv"]
        );
        assert_eq!(
            second,
            ["1", "100", "100", "4242", "0", "RECV", "RM", "ANY", "-", "1", "-", "srv"]
        );
        // Every column starts at the same offset on all three lines.
        let name_at = header.find("name").unwrap();
        assert_eq!(lines[h + 1].find("srv"), Some(name_at));
        assert_eq!(lines[h + 2].find("srv"), Some(name_at));
    }

    #[test]
    fn dc_filter_by_id_or_name() {
        let s = snapshot();
        assert_eq!(find_dc(&s, "1"), Some(0));
        assert_eq!(find_dc(&s, "web"), Some(0));
        assert_eq!(find_dc(&s, "2"), None);
    }
}
