//! The cluster configuration file: nodes, DCs and proxy settings.
//!
//! One TOML file describes the whole cluster; every node daemon reads the
//! same file and picks its own entry (`dvs node start --config FILE --node
//! ID`). Errors, syntactic or semantic, name the file, line and column:
//!
//! ```toml
//! [cluster]
//! name = "lab"
//!
//! [[node]]
//! id = 0
//! name = "n0"
//! address = "10.213.0.1"
//!
//! [[node]]
//! id = 1
//! name = "n1"
//! address = "10.213.0.2"
//!
//! [[dc]]
//! name = "web"
//! nodes = [0, 1]
//! root = "/srv/web"
//!
//! [proxy]
//! port = 7500
//! ```

use crate::params::DvsParams;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Default TCP port of the proxies.
pub const DEFAULT_PROXY_PORT: u16 = 7500;

/// A validated cluster configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Cluster name (Corosync's `cluster_name`).
    pub name: String,
    /// Every node, by increasing id.
    pub nodes: Vec<NodeConfig>,
    /// The DCs created at start on the nodes they span.
    pub dcs: Vec<DcConfig>,
    /// Proxy settings, the same for every node.
    pub proxy: ProxyConfig,
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Node id, `0..nr_nodes`.
    pub id: i32,
    /// Node name (unique).
    pub name: String,
    /// Address its proxies listen on.
    pub address: IpAddr,
}

/// One DC of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct DcConfig {
    /// DC name (unique).
    pub name: String,
    /// DC id, `0..nr_dcs`; the lowest free one when absent.
    pub id: Option<i32>,
    /// Ids of the nodes the DC spans.
    pub nodes: Vec<i32>,
    /// Host directory that is the DC's root file system.
    pub root: PathBuf,
}

/// Proxy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// TCP port every node's proxy listens on.
    pub port: u16,
    /// Most bytes batched into one write under load.
    pub batch_bytes: usize,
    /// First reconnection delay after a lost connection (ms).
    pub reconnect_min_ms: u64,
    /// Largest reconnection delay (ms); delays double up to it.
    pub reconnect_max_ms: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            port: DEFAULT_PROXY_PORT,
            batch_bytes: 64 * 1024,
            reconnect_min_ms: 50,
            reconnect_max_ms: 2000,
        }
    }
}

impl ClusterConfig {
    /// The node with id `id`.
    pub fn node(&self, id: i32) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The DCs that span node `id`.
    pub fn dcs_of(&self, id: i32) -> impl Iterator<Item = &DcConfig> {
        self.dcs.iter().filter(move |d| d.nodes.contains(&id))
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    cluster: Option<RawCluster>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
    #[serde(default)]
    dc: Vec<Spanned<RawDc>>,
    proxy: Option<RawProxy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<i64>,
    name: Spanned<String>,
    address: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDc {
    name: Spanned<String>,
    id: Option<Spanned<i64>>,
    nodes: Spanned<Vec<Spanned<i64>>>,
    root: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    port: Option<Spanned<i64>>,
    batch_bytes: Option<Spanned<i64>>,
    reconnect_min_ms: Option<Spanned<i64>>,
    reconnect_max_ms: Option<Spanned<i64>>,
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates configuration `text`; `path` names it in errors.
pub fn parse(text: &str, path: &str) -> Result<ClusterConfig, ConfigError> {
    let limits = DvsParams::default();
    let err = |span: Range<usize>, message: String| {
        let (line, column) = line_col(text, span.start);
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        err(
            e.span().unwrap_or(0..0),
            e.message().trim_end().replace('\n', " "),
        )
    })?;

    let name = match raw.cluster {
        Some(c) if c.name.get_ref().trim().is_empty() => {
            return Err(err(c.name.span(), "the cluster name is empty".into()))
        }
        Some(c) => c.name.into_inner(),
        None => "dvs".into(),
    };

    if raw.node.is_empty() {
        return Err(err(0..0, "no [[node]] is defined".into()));
    }
    let mut nodes = Vec::new();
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for n in raw.node {
        let n = n.into_inner();
        let id = *n.id.get_ref();
        if id < 0 || id >= limits.nr_nodes as i64 {
            return Err(err(
                n.id.span(),
                format!("node id {id} is out of range (0..{})", limits.nr_nodes),
            ));
        }
        if !ids.insert(id) {
            return Err(err(n.id.span(), format!("node id {id} is defined twice")));
        }
        if n.name.get_ref().is_empty() || !names.insert(n.name.get_ref().clone()) {
            return Err(err(
                n.name.span(),
                format!("node name `{}` is empty or used twice", n.name.get_ref()),
            ));
        }
        let address: IpAddr = n.address.get_ref().parse().map_err(|_| {
            err(
                n.address.span(),
                format!("`{}` is not an IP address", n.address.get_ref()),
            )
        })?;
        if !addrs.insert(address) {
            return Err(err(
                n.address.span(),
                format!("address {address} is used by two nodes"),
            ));
        }
        nodes.push(NodeConfig {
            id: id as i32,
            name: n.name.into_inner(),
            address,
        });
    }
    nodes.sort_by_key(|n| n.id);

    let mut dcs = Vec::new();
    let mut dc_names = HashSet::new();
    let mut dc_ids = HashSet::new();
    for d in raw.dc {
        let d = d.into_inner();
        if d.name.get_ref().is_empty() || !dc_names.insert(d.name.get_ref().clone()) {
            return Err(err(
                d.name.span(),
                format!("DC name `{}` is empty or used twice", d.name.get_ref()),
            ));
        }
        let id = match d.id {
            Some(s) => {
                let v = *s.get_ref();
                if v < 0 || v >= limits.nr_dcs as i64 {
                    return Err(err(
                        s.span(),
                        format!("DC id {v} is out of range (0..{})", limits.nr_dcs),
                    ));
                }
                if !dc_ids.insert(v) {
                    return Err(err(s.span(), format!("DC id {v} is used twice")));
                }
                Some(v as i32)
            }
            None => None,
        };
        let span = d.nodes.span();
        let list = d.nodes.into_inner();
        if list.is_empty() {
            return Err(err(span, "a DC must span at least one node".into()));
        }
        let mut dc_nodes = Vec::new();
        for n in list {
            let v = *n.get_ref();
            if !ids.contains(&v) {
                return Err(err(n.span(), format!("node {v} is not defined")));
            }
            if dc_nodes.contains(&(v as i32)) {
                return Err(err(n.span(), format!("node {v} is listed twice")));
            }
            dc_nodes.push(v as i32);
        }
        let root = match d.root {
            Some(r) if !Path::new(r.get_ref()).is_absolute() => {
                return Err(err(
                    r.span(),
                    format!("the DC root `{}` must be an absolute path", r.get_ref()),
                ))
            }
            Some(r) => PathBuf::from(r.into_inner()),
            None => PathBuf::from("/"),
        };
        dcs.push(DcConfig {
            name: d.name.into_inner(),
            id,
            nodes: dc_nodes,
            root,
        });
    }

    let mut proxy = ProxyConfig::default();
    if let Some(p) = raw.proxy {
        let ranged = |v: &Option<Spanned<i64>>, lo: i64, hi: i64, what: &str| match v {
            Some(s) if !(lo..=hi).contains(s.get_ref()) => Err(err(
                s.span(),
                format!("{what} {} is out of range ({lo}..={hi})", s.get_ref()),
            )),
            Some(s) => Ok(Some(*s.get_ref())),
            None => Ok(None),
        };
        if let Some(v) = ranged(&p.port, 1, 65535, "port")? {
            proxy.port = v as u16;
        }
        if let Some(v) = ranged(&p.batch_bytes, 4096, 16 << 20, "batch_bytes")? {
            proxy.batch_bytes = v as usize;
        }
        if let Some(v) = ranged(&p.reconnect_min_ms, 1, 60_000, "reconnect_min_ms")? {
            proxy.reconnect_min_ms = v as u64;
        }
        if let Some(v) = ranged(&p.reconnect_max_ms, 1, 600_000, "reconnect_max_ms")? {
            proxy.reconnect_max_ms = v as u64;
        }
        if proxy.reconnect_max_ms < proxy.reconnect_min_ms {
            let span = p.reconnect_max_ms.map(|s| s.span()).unwrap_or(0..0);
            return Err(err(
                span,
                "reconnect_max_ms is smaller than reconnect_min_ms".into(),
            ));
        }
    }

    Ok(ClusterConfig {
        name,
        nodes,
        dcs,
        proxy,
    })
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[cluster]
name = "lab"

[[node]]
id = 0
name = "n0"
address = "10.213.0.1"

[[node]]
id = 1
name = "n1"
address = "10.213.0.2"

[[dc]]
name = "web"
nodes = [0, 1]
root = "/srv/web"

[proxy]
port = 7600
"#;

    fn error_of(text: &str) -> (usize, String) {
        match parse(text, "c.toml") {
            Err(ConfigError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_file_parses() {
        let c = parse(GOOD, "c.toml").unwrap();
        assert_eq!(c.name, "lab");
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.node(1).unwrap().address.to_string(), "10.213.0.2");
        assert_eq!(c.dcs[0].nodes, vec![0, 1]);
        assert_eq!(c.dcs[0].root, PathBuf::from("/srv/web"));
        assert_eq!(c.proxy.port, 7600);
        assert_eq!(c.proxy.batch_bytes, 64 * 1024);
        assert_eq!(c.dcs_of(1).count(), 1);
    }

    #[test]
    fn errors_point_at_the_line() {
        let dup = GOOD.replace("id = 1", "id = 0");
        assert_eq!(error_of(&dup), (11, "node id 0 is defined twice".into()));
        let bad_node = GOOD.replace("nodes = [0, 1]", "nodes = [0, 5]");
        assert_eq!(error_of(&bad_node), (17, "node 5 is not defined".into()));
        let bad_addr = GOOD.replace("10.213.0.2", "ten");
        assert_eq!(error_of(&bad_addr).0, 13);
        let typo = GOOD.replace("root =", "rot =");
        let (line, msg) = error_of(&typo);
        assert_eq!(line, 18);
        assert!(msg.contains("rot"), "{msg}");
        let syntax = GOOD.replace("port = 7600", "port = ");
        assert_eq!(error_of(&syntax).0, 21);
        let relative = GOOD.replace("/srv/web", "srv");
        assert_eq!(error_of(&relative).0, 18);
        let port = GOOD.replace("7600", "70000");
        assert_eq!(error_of(&port).0, 21);
    }

    #[test]
    fn a_file_without_nodes_is_rejected() {
        let (_, msg) = error_of("[cluster]\nname = \"x\"\n");
        assert!(msg.contains("no [[node]]"));
    }
}
