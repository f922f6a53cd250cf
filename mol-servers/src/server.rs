//! The loop every MoL server runs, and the helpers its handlers use.
//!
//! A server is a thread bound to its endpoint. It receives requests,
//! finds the handler in its dispatch table (one table per syscall family,
//! merged at start), and either replies at once or keeps the request to
//! reply later (a *deferred reply*: the caller stays blocked in `sendrec`
//! while the server goes on serving others). Servers never block on a
//! client.

use crate::abi::{self, Call};
use dvk::{DvkError, Endpoint, Ipc, Message, NotifyKind};
use std::collections::HashMap;

/// A decoded request.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// The endpoint the call is for: the sender, or the process a
    /// privileged proxy calls on behalf of.
    pub caller: Endpoint,
    /// The endpoint that sent the message (where the reply goes, and whose
    /// memory the pointers refer to).
    pub sender: Endpoint,
    /// The call.
    pub call: Call,
    /// The seven argument words.
    pub args: [u64; 7],
}

impl Request {
    /// Argument `i` as a signed integer.
    pub fn int(&self, i: usize) -> i64 {
        self.args[i] as i64
    }
    /// Argument `i` as an `i32` (descriptors, flags).
    pub fn i32(&self, i: usize) -> i32 {
        self.args[i] as i64 as i32
    }
}

/// What a handler decided.
pub enum Outcome {
    /// Reply now.
    Reply(Message),
    /// The handler keeps the request and replies later with [`Ctx::reply`].
    Deferred,
}

impl Outcome {
    /// A successful reply with value `v`.
    pub fn ok(v: i64) -> Outcome {
        Outcome::Reply(abi::ok(v))
    }
    /// An error reply.
    pub fn err(errno: i32) -> Outcome {
        Outcome::Reply(abi::err(errno))
    }
    /// From a result.
    pub fn from(r: Result<i64, i32>) -> Outcome {
        match r {
            Ok(v) => Outcome::ok(v),
            Err(e) => Outcome::err(e),
        }
    }
}

/// A handler of one call.
pub type Handler<S> = fn(&mut S, &Ctx, &Request) -> Outcome;

/// What a server offers: its dispatch table and its notification handler.
pub trait Service: Sized {
    /// Name for logs.
    const NAME: &'static str;
    /// The calls served and their handlers.
    fn table() -> Vec<(Call, Handler<Self>)>;
    /// A notification arrived (`from` is the notifier, or the endpoint that
    /// ended for [`NotifyKind::Exit`]).
    fn notified(&mut self, _ctx: &Ctx, _from: Endpoint, _kind: NotifyKind) {}
}

/// The server's view of its own binding, for handlers.
pub struct Ctx<'a> {
    /// The server's endpoint.
    pub ipc: &'a Ipc,
}

/// Maps a DVK error of a copy to the errno a system call would give.
pub fn copy_errno(e: DvkError) -> i32 {
    match e {
        DvkError::Fault => libc::EFAULT,
        DvkError::TooBig | DvkError::Inval => libc::EINVAL,
        DvkError::NotReady | DvkError::SrcDied | DvkError::DstDied | DvkError::NotBind => {
            libc::ESRCH
        }
        _ => libc::EIO,
    }
}

impl Ctx<'_> {
    /// Copies `len` bytes at `addr` in `from` into a new buffer.
    pub fn copy_in(&self, from: Endpoint, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; len];
        self.copy_in_to(from, addr, &mut buf)?;
        Ok(buf)
    }

    /// Copies `buf.len()` bytes at `addr` in `from` into `buf`.
    pub fn copy_in_to(&self, from: Endpoint, addr: u64, buf: &mut [u8]) -> Result<(), i32> {
        let max = self.ipc.dc().max_copylen as usize;
        for (i, chunk) in buf.chunks_mut(max).enumerate() {
            let a = addr.wrapping_add((i * max) as u64);
            self.ipc.copy_from(from, a, chunk).map_err(copy_errno)?;
        }
        Ok(())
    }

    /// Copies `data` to `addr` in `to`.
    pub fn copy_out(&self, to: Endpoint, addr: u64, data: &[u8]) -> Result<(), i32> {
        let max = self.ipc.dc().max_copylen as usize;
        for (i, chunk) in data.chunks(max).enumerate() {
            let a = addr.wrapping_add((i * max) as u64);
            self.ipc.copy_to(to, a, chunk).map_err(copy_errno)?;
        }
        Ok(())
    }

    /// Reads a path argument (pointer, length without NUL).
    pub fn path(&self, from: Endpoint, addr: u64, len: u64) -> Result<Vec<u8>, i32> {
        let len = len as usize;
        if len > abi::PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let p = self.copy_in(from, addr, len)?;
        if p.contains(&0) {
            return Err(libc::EINVAL);
        }
        Ok(p)
    }

    /// Sends a deferred reply. A caller that is gone is not an error.
    pub fn reply(&self, to: Endpoint, m: &Message) {
        if let Err(e) = self.ipc.reply(to, m) {
            tracing::debug!(%to, %e, "deferred reply not delivered");
        }
    }

    /// A synchronous request to another server.
    pub fn call(&self, to: Endpoint, call: Call, args: &[u64]) -> Result<Message, i32> {
        let mut m = abi::request(call, args);
        self.ipc.sendrec(to, &mut m).map_err(|e| {
            if matches!(e, DvkError::NotBind | DvkError::DstDied | DvkError::NoProxy) {
                // The server is gone (its node went down, its DC ends).
                tracing::debug!(%to, call = call.name(), %e, "server call failed");
            } else {
                tracing::warn!(%to, call = call.name(), %e, "server call failed");
            }
            libc::EIO
        })?;
        Ok(m)
    }
}

/// Runs `svc` on `ipc` until the DC ends or the endpoint is unbound.
pub fn run<S: Service>(ipc: Ipc, mut svc: S) {
    let table: HashMap<Call, Handler<S>> = S::table().into_iter().collect();
    let ctx = Ctx { ipc: &ipc };
    loop {
        let m = match ipc.receive(Endpoint::ANY) {
            Ok(m) => m,
            Err(DvkError::DcNotRun | DvkError::NotBind) => break,
            Err(e) => {
                tracing::error!(server = S::NAME, %e, "receive failed");
                break;
            }
        };
        if let Some((from, kind)) = m.as_notification() {
            svc.notified(&ctx, from, kind);
            continue;
        }
        let sender = m.source();
        let Some(call) = Call::from_i32(m.m_type) else {
            ctx.reply(sender, &abi::err(libc::ENOSYS));
            continue;
        };
        let args = *m.words();
        tracing::trace!(server = S::NAME, call = call.name(), %sender, ?args, "request");
        let on_behalf = Endpoint(args[6] as i64 as i32);
        let caller = if args[6] != 0 && ipc.is_privileged(sender) {
            on_behalf
        } else {
            sender
        };
        let req = Request {
            caller,
            sender,
            call,
            args,
        };
        match table.get(&call) {
            Some(h) => {
                if let Outcome::Reply(r) = h(&mut svc, &ctx, &req) {
                    ctx.reply(sender, &r);
                }
            }
            None => {
                tracing::warn!(server = S::NAME, call = call.name(), "call not served here");
                ctx.reply(sender, &abi::err(libc::ENOSYS));
            }
        }
    }
    tracing::debug!(server = S::NAME, "stopped");
}

/// A server thread binding its endpoint ([`Starting::spawn`]); several can
/// bind at once, each a round trip to the node daemon.
pub struct Starting {
    name: &'static str,
    handle: std::thread::JoinHandle<()>,
    bound: std::sync::mpsc::Receiver<std::io::Result<()>>,
}

impl Starting {
    /// Starts thread `name`, which binds with `bind` and then serves with
    /// `serve`.
    pub fn spawn<F, G>(name: &'static str, bind: F, serve: G) -> std::io::Result<Starting>
    where
        F: FnOnce() -> std::io::Result<Ipc> + Send + 'static,
        G: FnOnce(Ipc) + Send + 'static,
    {
        let (tx, bound) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || match bind() {
                Ok(ipc) => {
                    let _ = tx.send(Ok(()));
                    serve(ipc);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })?;
        Ok(Starting {
            name,
            handle,
            bound,
        })
    }

    /// Waits until the thread has bound its endpoint.
    pub fn ready(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        match self.bound.recv() {
            Ok(Ok(())) => Ok(self.handle),
            Ok(Err(e)) => Err(std::io::Error::other(format!(
                "{} cannot bind: {e}",
                self.name
            ))),
            Err(_) => Err(std::io::Error::other(format!(
                "the {} thread died",
                self.name
            ))),
        }
    }
}

/// A node daemon error as an I/O error (what starting a server reports).
pub fn dvk_io(e: DvkError) -> std::io::Error {
    std::io::Error::other(e)
}
