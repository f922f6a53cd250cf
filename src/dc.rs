//! `dvs dc init|end|list`: Distributed Containers on this node.

use crate::client::{connect, DvkContext};
use crate::table::{Align, Table};
use dvk::{DcParams, Dvk, DvkError, Endpoint};
use std::path::Path;

/// What `dvs dc init` was asked for; `None` fields take the DVS limits.
#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    /// DC name.
    pub name: String,
    /// DC id; the lowest free one if `None`.
    pub id: Option<i32>,
    /// Processes (system + user).
    pub nr_procs: Option<i32>,
    /// Tasks.
    pub nr_tasks: Option<i32>,
    /// System processes.
    pub nr_sysprocs: Option<i32>,
    /// Largest copy, in bytes.
    pub max_copylen: Option<u32>,
    /// Endpoint warned when a process ends without unbinding.
    pub warn: Option<Endpoint>,
    /// Nodes the DC may span; only this node if empty.
    pub nodes: Vec<i32>,
}

/// `dvs dc init`: creates a DC and prints its id.
pub fn init(socket: &Path, req: &InitRequest) -> anyhow::Result<()> {
    let dvk = connect(socket)?;
    let dvs = dvk.getdvsinfo().doing("cannot read the DVS parameters")?;
    let dcid = match req.id {
        Some(id) => id,
        None => lowest_free_id(&dvk, dvs.params.nr_dcs)?,
    };
    let mut p = DcParams::new(dcid, &req.name, &dvs.params);
    if let Some(v) = req.nr_procs {
        p.nr_procs = v;
    }
    if let Some(v) = req.nr_tasks {
        p.nr_tasks = v;
    }
    // Fewer process slots than the DVS system processes: all of them are
    // system slots unless told otherwise.
    p.nr_sysprocs = req.nr_sysprocs.unwrap_or(p.nr_sysprocs.min(p.nr_procs));
    if let Some(v) = req.max_copylen {
        p.max_copylen = v;
    }
    if let Some(v) = req.warn {
        p.warn2proc = v;
    }
    let nodes = if req.nodes.is_empty() {
        vec![dvs.node]
    } else {
        req.nodes.clone()
    };
    p.nodes = node_bitmap(&nodes, dvs.params.nr_nodes)?;
    check(&p, &dvs.params)?;
    let node = dvk
        .dc_init(&p)
        .doing(format_args!("cannot create DC {} ({})", p.dcid, p.name))?;
    crate::emit(&format!(
        "DC {} {} initialised on node {node}\n",
        p.dcid, p.name
    ))
}

/// `dvs dc end`: ends a DC (unbinding all its endpoints).
pub fn end(socket: &Path, spec: &str) -> anyhow::Result<()> {
    let dvk = connect(socket)?;
    let dcid = resolve(&dvk, spec)?;
    let name = dvk
        .getdcinfo(dcid)
        .map(|i| i.params.name)
        .unwrap_or_default();
    dvk.dc_end(dcid)
        .doing(format_args!("cannot end DC {dcid} ({name})"))?;
    crate::emit(&format!("DC {dcid} {name} ended\n"))
}

/// `dvs dc list`: one line per DC.
pub fn list(socket: &Path) -> anyhow::Result<()> {
    let dvk = connect(socket)?;
    let snap = dvk.status().doing("cannot read the node status")?;
    let mut t = Table::new(&[
        ("id", Align::Right),
        ("name", Align::Left),
        ("procs", Align::Right),
        ("tasks", Align::Right),
        ("bound", Align::Right),
    ]);
    for dc in &snap.dcs {
        let p = &dc.info.params;
        t.row(vec![
            p.dcid.to_string(),
            p.name.clone(),
            p.nr_procs.to_string(),
            p.nr_tasks.to_string(),
            dc.info.nr_bound.to_string(),
        ]);
    }
    crate::emit(&t.render())
}

/// The DC named by `spec`: an id, or a name. A number is taken as an id
/// if such a DC exists, else as a name.
pub fn resolve(dvk: &Dvk, spec: &str) -> anyhow::Result<i32> {
    if let Ok(id) = spec.parse::<i32>() {
        match dvk.getdcinfo(id) {
            Ok(_) => return Ok(id),
            Err(DvkError::DcNotRun | DvkError::BadDcId) => {}
            Err(e) => return Err(e).doing(format_args!("cannot look up DC {id}")),
        }
    }
    match dvk.dc_lookup(spec) {
        Ok(id) => Ok(id),
        Err(DvkError::NoEnt | DvkError::DcNotRun) => {
            anyhow::bail!("no DC {spec:?} is running on this node")
        }
        Err(e) => Err(e).doing(format_args!("cannot look up DC {spec:?}")),
    }
}

/// The lowest DC id in `0..nr_dcs` that is not in use.
fn lowest_free_id(dvk: &Dvk, nr_dcs: i32) -> anyhow::Result<i32> {
    for id in 0..nr_dcs {
        match dvk.getdcinfo(id) {
            Ok(_) => continue,
            Err(DvkError::DcNotRun) => return Ok(id),
            Err(e) => return Err(e).doing(format_args!("cannot look up DC {id}")),
        }
    }
    anyhow::bail!("no free DC id: all {nr_dcs} are in use")
}

/// The `nodes` bitmap of a DC spanning `nodes`.
fn node_bitmap(nodes: &[i32], nr_nodes: i32) -> anyhow::Result<u64> {
    let mut map = 0u64;
    for &n in nodes {
        if n < 0 || n >= nr_nodes {
            anyhow::bail!("node {n} is out of range (0..{nr_nodes})");
        }
        if n >= 64 {
            anyhow::bail!("node {n} cannot be part of a DC (the DC node map holds nodes 0..63)");
        }
        map |= 1 << n;
    }
    Ok(map)
}

/// Explains which parameter [`DcParams::validate`] would reject, so the
/// user gets more than `EDVSBADVALUE`. The daemon checks again.
fn check(p: &DcParams, dvs: &dvk::DvsParams) -> anyhow::Result<()> {
    let range = |what: &str, v: i64, lo: i64, hi: i64| -> anyhow::Result<()> {
        if v < lo || v > hi {
            anyhow::bail!("{what} must be in {lo}..={hi} (got {v})");
        }
        Ok(())
    };
    range("the DC id", p.dcid.into(), 0, i64::from(dvs.nr_dcs) - 1)?;
    range("--nr-procs", p.nr_procs.into(), 1, dvs.nr_procs.into())?;
    range("--nr-tasks", p.nr_tasks.into(), 2, dvs.nr_tasks.into())?;
    range("--nr-sysprocs", p.nr_sysprocs.into(), 0, p.nr_procs.into())?;
    range(
        "--max-copylen",
        p.max_copylen.into(),
        1,
        dvs.max_copylen.into(),
    )?;
    let name_ok = !p.name.is_empty()
        && p.name.len() <= 32
        && p.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        anyhow::bail!(
            "bad DC name {:?}: use 1 to 32 characters among letters, digits, '-', '_' and '.'",
            p.name
        );
    }
    Ok(())
}

/// Parses a byte count: a number with an optional `K`, `M` or `G` suffix
/// (powers of 1024, `KiB`/`k` also accepted).
pub fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size in bytes"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("unknown size unit {u:?} (use K, M or G)")),
    };
    n.checked_mul(mult)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("{s:?} is too large (at most 4G - 1)"))
}

/// Parses an endpoint: a number, or `NONE`/`ANY`/`SELF`/`HARDWARE`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    match s.to_ascii_uppercase().as_str() {
        "NONE" => Ok(Endpoint::NONE),
        "ANY" => Ok(Endpoint::ANY),
        "SELF" => Ok(Endpoint::SELF),
        "HARDWARE" | "KERNEL" => Ok(Endpoint::HARDWARE),
        _ => s
            .parse::<i32>()
            .map(Endpoint)
            .map_err(|_| format!("{s:?} is not an endpoint (a number or NONE)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("5G").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("K").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("none"), Ok(Endpoint::NONE));
        assert_eq!(parse_endpoint("-2"), Ok(Endpoint(-2)));
        assert!(parse_endpoint("x").is_err());
    }

    #[test]
    fn bitmap() {
        assert_eq!(node_bitmap(&[0, 3], 32).ok(), Some(0b1001));
        assert!(node_bitmap(&[40], 32).is_err());
    }

    #[test]
    fn check_explains_bad_values() {
        let dvs = dvk::DvsParams::default();
        let mut p = DcParams::new(0, "ok", &dvs);
        assert!(check(&p, &dvs).is_ok());
        p.nr_tasks = 1;
        let msg = check(&p, &dvs).unwrap_err().to_string();
        assert!(msg.contains("--nr-tasks"), "{msg}");
        let p = DcParams::new(0, "bad name", &dvs);
        assert!(check(&p, &dvs).is_err());
    }
}
