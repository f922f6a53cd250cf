//! The proxies of a node: a sender and a receiver per remote node over
//! TCP (tokio), and the agent thread that watches the proxies' doorbell.
//!
//! * The **sender** to node `n` connects to `n`'s proxy port (reconnecting
//!   with exponential backoff), says `Hello` with this node's id and hands
//!   the connection to the node's [`Writer`]. Frames are written by the
//!   thread that makes them, every frame of one scan in one write (Nagle
//!   is off), so a message crosses no extra thread; an idle connection
//!   gets an `Ack` heartbeat every [`HEARTBEAT`].
//! * The **receiver** accepts connections, learns the peer from its
//!   `Hello` (the node is then up), decodes frames incrementally and
//!   applies each to the tables ([`State::remote_apply`]). A malformed
//!   frame, end of stream or [`SILENCE`] without a byte drops the
//!   connection and puts the node down ([`State::node_down`]).
//! * The **agent** sleeps on the proxies' doorbell, which local tasks ring
//!   when they post to a remote endpoint and receivers ring when they take
//!   a message from a surrogate, and runs [`State::remote_scan`].
//!
//! [`State::remote_apply`]: super::state::State
//! [`State::node_down`]: super::state::State
//! [`State::remote_scan`]: super::state::State

use super::remote::Outgoing;
use super::Shared;
use crate::cluster::{ClusterConfig, ProxyConfig};
use crate::error::{DvkError, Result as DvkResult};
use crate::layout::Doorbell;
use crate::proxy::frame::{self, Command, Decoder, Frame, Header};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// An idle sender's heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// A receiver that hears nothing for this long declares its node down.
pub const SILENCE: Duration = Duration::from_millis(2000);

/// Frames counted by the proxies (for `dvs status`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub rejected: AtomicU64,
}

/// A request waiting for the far node's answer: its node, where the
/// answer goes, and where the data it brings goes.
struct PendingCopy {
    node: i32,
    answer: std::sync::mpsc::Sender<DvkResult<Vec<u8>>>,
    sink: Option<Sink>,
}

/// Where the data that answers a copy request goes: `len` bytes at `addr`
/// in local process `pid`, written by the receiving proxy when the piece
/// is in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sink {
    pub pid: i32,
    pub addr: u64,
    pub len: usize,
}

/// Bytes a writer keeps for a node it is not connected to yet.
const BACKLOG_MAX: usize = 16 << 20;

/// Payloads this large are read from the stream straight into their frame.
const LARGE_FRAME: usize = 64 * 1024;
/// A write that blocks longer than this fails the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// The write side of the connection to one node. Frames are written by the
/// thread that produces them (the agent, a receiver, a session), all of
/// them queued by one scan in a single write, so that a message crosses no
/// extra thread; the tokio sender task connects, says hello, reconnects
/// with backoff and writes the heartbeats.
pub(crate) struct Writer {
    conn: Mutex<Conn>,
    failed: tokio::sync::Notify,
}

#[derive(Default)]
struct Conn {
    stream: Option<std::net::TcpStream>,
    /// Frames for a node not connected yet (dropped when a connection
    /// fails: the peer then puts this node down and forgets its state).
    backlog: Vec<u8>,
    buf: Vec<u8>,
    last: Option<Instant>,
}

impl Writer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes frames, in order, in as few writes as possible.
    fn send<'a>(&self, frames: impl IntoIterator<Item = (&'a Header, &'a [u8])>) {
        let mut guard = self.lock();
        let c = &mut *guard;
        c.buf.clear();
        let mut r = Ok(());
        for (h, payload) in frames {
            let head = match frame::encode_header(h, payload.len()) {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(%e, "cannot encode a frame");
                    continue;
                }
            };
            c.buf.extend_from_slice(&head);
            if payload.len() <= 16 * 1024 {
                c.buf.extend_from_slice(payload);
            } else if r.is_ok() {
                // A large payload goes out as it is, after what precedes it.
                let buf = std::mem::take(&mut c.buf);
                r = Self::write(c, &[&buf, payload]);
                c.buf = buf;
                c.buf.clear();
            }
        }
        if r.is_ok() && !c.buf.is_empty() {
            let buf = std::mem::take(&mut c.buf);
            r = Self::write(c, &[&buf]);
            c.buf = buf;
        }
        if let Err(e) = r {
            tracing::warn!(%e, "proxy write failed");
            c.stream = None;
            c.backlog.clear();
            self.failed.notify_one();
        }
    }

    /// Writes `parts` one after the other, in one system call when the
    /// socket takes them.
    fn write(c: &mut Conn, parts: &[&[u8]]) -> std::io::Result<()> {
        use std::io::{IoSlice, Write as _};
        c.last = Some(Instant::now());
        let len: usize = parts.iter().map(|p| p.len()).sum();
        match c.stream.as_mut() {
            Some(s) => {
                let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
                let mut left = &mut slices[..];
                while !left.is_empty() {
                    match s.write_vectored(left) {
                        Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(n) => IoSlice::advance_slices(&mut left, n),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            None if c.backlog.len() + len <= BACKLOG_MAX => {
                for p in parts {
                    c.backlog.extend_from_slice(p);
                }
                Ok(())
            }
            None => {
                tracing::warn!("proxy backlog full: frames dropped");
                Ok(())
            }
        }
    }

    /// A new connection: hello first, then what waited for it.
    fn attach(&self, mut stream: std::net::TcpStream, local: i32) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut hello = Header::new(Command::Hello);
        hello.snode = local as u16;
        let mut c = self.lock();
        let mut first = Vec::with_capacity(frame::HEADER_SIZE + c.backlog.len());
        push(&hello, &[], &mut first);
        first.append(&mut c.backlog);
        stream.write_all(&first)?;
        c.stream = Some(stream);
        c.last = Some(Instant::now());
        Ok(())
    }

    /// Writes a heartbeat if nothing was written for [`HEARTBEAT`].
    fn heartbeat(&self, local: i32) {
        let idle = {
            let c = self.lock();
            c.stream.is_some() && c.last.is_none_or(|t| t.elapsed() >= HEARTBEAT)
        };
        if idle {
            let mut beat = Header::new(Command::Ack);
            beat.snode = local as u16;
            self.send([(&beat, &[][..])]);
        }
    }
}

/// The writers, by node, and the copies in flight.
pub(crate) struct Links {
    writers: HashMap<i32, Arc<Writer>>,
    copies: Mutex<HashMap<u64, PendingCopy>>,
    next_copy: AtomicU64,
    /// Connection generation per node: only the newest receiver of a node
    /// may put it down.
    generation: Mutex<HashMap<i32, u64>>,
    next_generation: AtomicU64,
    pub counters: Counters,
    /// Reads local sources of remote copies and sends the pieces.
    pub pump: super::copy_pump::Pump,
}

impl Links {
    /// Writes frames to their nodes (dropped for unknown nodes), one write
    /// per node.
    pub fn send_all(&self, out: Outgoing) {
        let mut nodes: Vec<i32> = out.iter().map(|(n, _)| *n).collect();
        nodes.sort_unstable();
        nodes.dedup();
        for n in nodes {
            if let Some(w) = self.writers.get(&n) {
                w.send(
                    out.iter()
                        .filter(|(to, _)| *to == n)
                        .map(|(_, h)| (h, &[][..])),
                );
            }
        }
    }

    /// Writes one frame to `node`.
    pub fn send_frame(&self, node: i32, f: Frame) {
        self.send_piece(node, &f.header, &f.payload);
    }

    /// Writes one frame, header `h` and `payload`, to `node`.
    pub fn send_piece(&self, node: i32, h: &Header, payload: &[u8]) {
        if let Some(w) = self.writers.get(&node) {
            w.send([(h, payload)]);
        }
    }

    /// Sends `f` to `node` as a request (a copy, a join; its sequence
    /// number is set to the request's id) and waits up to `timeout` for
    /// the answer, which [`Links::complete`] hands over.
    pub fn ask(&self, node: i32, f: Frame, timeout: Duration) -> DvkResult<Vec<u8>> {
        self.request(node, f.header, &f.payload).wait(timeout)
    }

    /// Sends a request (header `h`, its sequence number set to the
    /// request's id, and `payload`) to `node` without waiting for the
    /// answer: several requests can then be in flight at once.
    pub fn request(&self, node: i32, mut h: Header, payload: &[u8]) -> Pending<'_> {
        let p = self.expect(node, None);
        h.seq = p.id;
        self.send_piece(node, &h, payload);
        p
    }

    /// Sends requests without a payload to `node`, in one write; the
    /// data that answers each goes to its sink, if it has one.
    pub fn request_all(
        &self,
        node: i32,
        headers: &mut [Header],
        sink: impl Fn(&Header) -> Option<Sink>,
    ) -> Vec<Pending<'_>> {
        let pending: Vec<Pending<'_>> = headers
            .iter_mut()
            .map(|h| {
                let p = self.expect(node, sink(h));
                h.seq = p.id;
                p
            })
            .collect();
        if let Some(w) = self.writers.get(&node) {
            w.send(headers.iter().map(|h| (h, &[][..])));
        }
        pending
    }

    /// Registers a request to `node` (a copy, a join) that the caller
    /// sends itself, with the returned id as its sequence number.
    pub fn expect(&self, node: i32, sink: Option<Sink>) -> Pending<'_> {
        let id = self.next_copy.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        if let Ok(mut c) = self.copies.lock() {
            c.insert(
                id,
                PendingCopy {
                    node,
                    answer: tx,
                    sink,
                },
            );
        }
        Pending {
            links: self,
            id,
            answer: rx,
        }
    }

    /// Hands the answer of request `id` to its requester.
    pub fn complete(&self, id: u64, r: DvkResult<Vec<u8>>) {
        let waiter = self.copies.lock().ok().and_then(|mut c| c.remove(&id));
        if let Some(w) = waiter {
            let _ = w.answer.send(r);
        }
    }

    /// Ends request `id`, if it is still awaited from `node` (another
    /// node's answer is ignored): `answer` gets its sink (and writes the
    /// data there) and makes the answer handed to the requester. A request
    /// given up is not written for.
    pub fn finish(
        &self,
        id: u64,
        node: i32,
        answer: impl FnOnce(Option<Sink>) -> DvkResult<Vec<u8>>,
    ) {
        let waiter = self.copies.lock().ok().and_then(|mut c| {
            let ours = c.get(&id).is_some_and(|w| w.node == node);
            ours.then(|| c.remove(&id)).flatten()
        });
        if let Some(w) = waiter {
            let _ = w.answer.send(answer(w.sink));
        }
    }

    /// Fails every request in flight with `node`, which went down.
    pub fn fail_answers(&self, node: i32) {
        if let Ok(mut c) = self.copies.lock() {
            c.retain(|_, w| {
                if w.node == node {
                    let _ = w.answer.send(Err(DvkError::NoProxy));
                }
                w.node != node
            });
        }
    }
}

/// A request in flight; dropping it forgets the answer.
pub(crate) struct Pending<'a> {
    links: &'a Links,
    id: u64,
    answer: std::sync::mpsc::Receiver<DvkResult<Vec<u8>>>,
}

impl Pending<'_> {
    /// The request's id (its frames' sequence number).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Waits up to `timeout` for the answer.
    pub fn wait(self, timeout: Duration) -> DvkResult<Vec<u8>> {
        self.answer
            .recv_timeout(timeout)
            .unwrap_or(Err(DvkError::TimedOut))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.links.copies.lock() {
            c.remove(&self.id);
        }
    }
}

/// Starts the proxies of node `local` for `cluster`: binds the proxy port
/// now (so that a busy port is reported at once), then runs the senders,
/// receivers and agent on their own threads.
pub(crate) fn start(
    shared: Arc<Shared>,
    cluster: &ClusterConfig,
    local: i32,
) -> anyhow::Result<Arc<Links>> {
    let me = cluster
        .node(local)
        .ok_or_else(|| anyhow::anyhow!("node {local} is not in the cluster configuration"))?;
    let cfg = cluster.proxy.clone();
    let listen = SocketAddr::new(me.address, cfg.port);
    let listener = TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("cannot listen for proxies on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let mut writers = HashMap::new();
    let mut peers = Vec::new();
    for n in cluster.nodes.iter().filter(|n| n.id != local) {
        let w = Arc::new(Writer {
            conn: Mutex::new(Conn::default()),
            failed: tokio::sync::Notify::new(),
        });
        writers.insert(n.id, w.clone());
        peers.push((n.id, SocketAddr::new(n.address, cfg.port), w));
    }
    let links = Arc::new(Links {
        writers,
        copies: Mutex::new(HashMap::new()),
        next_copy: AtomicU64::new(1),
        generation: Mutex::new(HashMap::new()),
        next_generation: AtomicU64::new(1),
        counters: Counters::default(),
        pump: Default::default(),
    });
    if shared.links.set(links.clone()).is_err() {
        anyhow::bail!("the proxies are running already");
    }
    super::copy_pump::start(shared.clone(), links.clone())?;
    let known: Vec<i32> = cluster.nodes.iter().map(|n| n.id).collect();
    {
        let (shared, links) = (shared.clone(), links.clone());
        std::thread::Builder::new()
            .name("dvkd-proxy".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(%e, "cannot start the proxies' runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    for (node, addr, w) in peers {
                        tokio::spawn(sender(node, addr, w, local, cfg.clone()));
                    }
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(%e, "cannot use the proxy port");
                            return;
                        }
                    };
                    loop {
                        match listener.accept().await {
                            Ok((sock, peer)) => {
                                tokio::spawn(receiver(
                                    shared.clone(),
                                    links.clone(),
                                    sock,
                                    peer,
                                    local,
                                    known.clone(),
                                ));
                            }
                            Err(e) => tracing::warn!(%e, "proxy accept failed"),
                        }
                    }
                });
            })?;
    }
    {
        let (shared, links) = (shared.clone(), links.clone());
        let fd = shared.with_state(|st| st.remote.bell_fd())?;
        let bell = Doorbell::open(&fd, super::remote::BELL_SLOTS)?;
        std::thread::Builder::new()
            .name("dvkd-agent".into())
            .spawn(move || agent(&shared, &links, &bell))?;
    }
    {
        let (shared, links) = (shared.clone(), links.clone());
        let group = cluster.name.clone();
        std::thread::Builder::new()
            .name("dvkd-members".into())
            .spawn(move || membership(&shared, &links, &group, local))?;
    }
    tracing::info!(%listen, "proxies listening");
    Ok(links)
}

/// Follows the cluster's membership through Corosync CPG: a node that
/// leaves the group (it stopped answering, or its Corosync ended) is put
/// down at once, without waiting for its proxy connection to time out.
/// Corosync's node id is the DVS node id + 1. Without Corosync the
/// proxies alone watch the nodes.
fn membership(shared: &Shared, links: &Links, group: &str, local: i32) {
    use crate::membership::{MemberEvent, Membership};
    let (_member, events) = match Membership::join(group) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(%e, "no membership service: the proxies alone watch the nodes");
            return;
        }
    };
    tracing::info!(group, "joined the cluster's CPG group");
    for ev in events {
        match ev {
            MemberEvent::Left(id) if id as i32 - 1 != local => {
                shared.with_state(|st| st.node_down(id as i32 - 1));
                links.fail_answers(id as i32 - 1);
            }
            MemberEvent::Joined(id) => {
                let node = id as i32 - 1;
                // Back in the group with its proxy still connected.
                let connected = links
                    .generation
                    .lock()
                    .map(|g| g.contains_key(&node))
                    .unwrap_or(false);
                if node != local && connected {
                    shared.with_state(|st| st.node_up(node));
                }
            }
            _ => {}
        }
    }
    tracing::warn!("the membership service ended: the proxies alone watch the nodes");
}

/// The agent: scans whenever the proxies' doorbell rings.
fn agent(shared: &Shared, links: &Links, bell: &Doorbell) {
    while !shared.stopping() {
        let seen = bell.futex().load(Ordering::Acquire);
        let (out, soon) = {
            let mut st = shared.state();
            (st.remote_scan(), st.remote.next_scan())
        };
        if !out.is_empty() {
            links
                .counters
                .sent
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            links.send_all(out);
        }
        let _ = crate::wait::wait_until(
            bell,
            crate::wait::Spin::Relay,
            Some(Instant::now() + soon.unwrap_or(Duration::from_millis(200))),
            || (bell.futex().load(Ordering::Acquire) != seen).then_some(()),
            || None,
        );
    }
}

/// The sender to `node`: connects (reconnecting with backoff), hands the
/// connection to its writer, and writes heartbeats while it lasts.
async fn sender(node: i32, addr: SocketAddr, w: Arc<Writer>, local: i32, cfg: ProxyConfig) {
    let min = Duration::from_millis(cfg.reconnect_min_ms);
    let max = Duration::from_millis(cfg.reconnect_max_ms);
    let mut delay = min;
    loop {
        match TcpStream::connect(addr).await.and_then(|s| {
            let s = s.into_std()?;
            s.set_nonblocking(false)?;
            s.set_nodelay(true)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
            Ok(s)
        }) {
            Ok(sock) => match w.attach(sock, local) {
                Ok(()) => {
                    delay = min;
                    tracing::info!(node, %addr, "proxy sender connected");
                    loop {
                        tokio::select! {
                            _ = w.failed.notified() => break,
                            _ = tokio::time::sleep(HEARTBEAT / 2) => w.heartbeat(local),
                        }
                    }
                    tracing::warn!(node, "proxy sender lost its connection");
                }
                Err(e) => tracing::debug!(node, %e, "proxy hello failed"),
            },
            Err(e) => tracing::debug!(node, %addr, %e, "proxy sender cannot connect"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max);
    }
}

fn push(h: &Header, payload: &[u8], buf: &mut Vec<u8>) {
    if let Err(e) = frame::encode(h, payload, buf) {
        tracing::error!(%e, "cannot encode a frame");
    }
}

/// A receiver: the peer's hello, then frames until the connection ends.
async fn receiver(
    shared: Arc<Shared>,
    links: Arc<Links>,
    mut sock: TcpStream,
    peer: SocketAddr,
    local: i32,
    known: Vec<i32>,
) {
    let _ = sock.set_nodelay(true);
    let mut dec = Decoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut node: Option<(i32, u64)> = None;
    'conn: loop {
        let n = match tokio::time::timeout(SILENCE, sock.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(%peer, %e, "proxy receiver read failed");
                break;
            }
            Err(_) => {
                tracing::warn!(%peer, "proxy receiver: peer silent");
                break;
            }
        };
        dec.feed(&buf[..n]);
        loop {
            let f = match dec.begin_large(LARGE_FRAME) {
                // The rest of a large payload goes straight into it.
                Ok(Some((header, mut payload, want))) => {
                    let rest = async {
                        while payload.len() < want {
                            let left = (want - payload.len()) as u64;
                            if (&mut sock).take(left).read_buf(&mut payload).await? == 0 {
                                return Err(std::io::ErrorKind::UnexpectedEof.into());
                            }
                        }
                        Ok::<(), std::io::Error>(())
                    };
                    match tokio::time::timeout(SILENCE, rest).await {
                        Ok(Ok(())) => Ok(Some(Frame { header, payload })),
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, %e, "proxy receiver read failed");
                            break 'conn;
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "proxy receiver: peer silent");
                            break 'conn;
                        }
                    }
                }
                Ok(None) => dec.next_frame(),
                Err(e) => Err(e),
            };
            let f = match f {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    links.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, %e, "malformed frame: connection dropped");
                    break 'conn;
                }
            };
            links.counters.received.fetch_add(1, Ordering::Relaxed);
            let h = f.header;
            let Some((from, _)) = node else {
                let id = h.snode as i32;
                if h.cmd != Command::Hello || id == local || !known.contains(&id) {
                    links.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, node = id, "proxy connection without a valid hello");
                    break 'conn;
                }
                let g = links.next_generation.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut gens) = links.generation.lock() {
                    gens.insert(id, g);
                }
                node = Some((id, g));
                shared.with_state(|st| st.node_up(id));
                continue;
            };
            match h.cmd {
                Command::Hello | Command::Ack => {}
                Command::CopyinData
                | Command::CopyinAck
                | Command::CopyoutRqst
                | Command::CopyoutData
                | Command::CopylclRqst
                | Command::CopylclAck => {
                    if let Some(a) = super::remote_copy::served(&shared, &links, from, f) {
                        links.send_frame(from, a);
                    }
                }
                Command::DcJoin => {
                    super::remote_dc::join_asked(shared.clone(), links.clone(), from, f);
                }
                Command::DcJoinAck => super::remote_dc::join_answered(&links, f),
                _ => {
                    let out = shared.state().remote_apply(from, &h);
                    links.send_all(out);
                }
            }
        }
    }
    if let Some((id, g)) = node {
        // Only the newest connection of a node may put it down.
        let newest = links
            .generation
            .lock()
            .map(|mut gens| gens.get(&id) == Some(&g) && gens.remove(&id).is_some())
            .unwrap_or(false);
        if newest {
            shared.with_state(|st| st.node_down(id));
            links.fail_answers(id);
        }
    }
}
