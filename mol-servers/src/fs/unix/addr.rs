//! Socket addresses (`struct sockaddr_un`) and the registry of bound
//! names.
//!
//! A path name is a socket node created in the DC root by `bind`; it is
//! found again by the node's `(dev, ino)`, so any path leading to the
//! node (a hard link, a symlink, a relative path from another cwd)
//! connects to the same socket, and a node whose socket is gone is stale
//! (`ECONNREFUSED`). Abstract names (leading NUL) live only here and are
//! released with their socket.

use super::super::path::AT_FDCWD;
use super::super::{sys, Fs};
use super::Sock;
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::rc::{Rc, Weak};

/// Size of `struct sockaddr_un`.
pub const SUN_LEN: usize = 110;
/// Size of `sa_family_t`.
const FAMILY_LEN: usize = 2;

/// What identifies a bound name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A socket node: `(dev, ino)` on the host.
    Node(u64, u64),
    /// An abstract name (without its leading NUL).
    Abstract(Vec<u8>),
}

/// A bound name.
#[derive(Debug)]
pub struct Name {
    /// `sun_path` as `getsockname` returns it (path and NUL, or NUL and
    /// the abstract name).
    pub raw: Vec<u8>,
    /// Its key.
    pub key: Key,
}

/// A decoded address.
#[derive(Debug, PartialEq, Eq)]
pub enum Addr {
    /// A path (without NUL).
    Path(Vec<u8>),
    /// An abstract name (without its leading NUL).
    Abstract(Vec<u8>),
    /// Only the family (`bind`: choose an abstract name).
    Auto,
    /// `AF_UNSPEC` (`connect`: dissolve a datagram association).
    Unspec,
}

/// Decodes a `struct sockaddr_un` of `raw.len()` bytes.
pub fn parse(raw: &[u8]) -> Result<Addr, i32> {
    if raw.len() < FAMILY_LEN || raw.len() > SUN_LEN {
        return Err(libc::EINVAL);
    }
    let family = u16::from_ne_bytes([raw[0], raw[1]]) as i32;
    if family == libc::AF_UNSPEC {
        return Ok(Addr::Unspec);
    }
    if family != libc::AF_UNIX {
        return Err(libc::EINVAL);
    }
    let path = &raw[FAMILY_LEN..];
    if path.is_empty() {
        return Ok(Addr::Auto);
    }
    if path[0] == 0 {
        return Ok(Addr::Abstract(path[1..].to_vec()));
    }
    let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
    Ok(Addr::Path(path[..end].to_vec()))
}

/// The `struct sockaddr_un` bytes of a name (only the family if unnamed).
pub fn sockaddr(name: Option<&Name>) -> Vec<u8> {
    let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    if let Some(n) = name {
        v.extend_from_slice(&n.raw);
    }
    v
}

/// The bound names of the DC.
#[derive(Default)]
pub struct Registry {
    names: HashMap<Key, Weak<RefCell<Sock>>>,
    next_auto: u32,
}

impl Registry {
    /// The live socket bound to `key`.
    pub fn lookup(&mut self, key: &Key) -> Option<Rc<RefCell<Sock>>> {
        let live = self.names.get(key).and_then(|w| w.upgrade());
        if live.is_none() {
            self.names.remove(key);
        }
        live
    }

    /// Records a bind.
    pub fn insert(&mut self, key: Key, s: &Rc<RefCell<Sock>>) {
        self.names.insert(key, Rc::downgrade(s));
    }

    /// A free abstract name for autobind: five hex digits, as Linux.
    pub fn auto_name(&mut self) -> Result<Vec<u8>, i32> {
        for _ in 0..0x100000 {
            self.next_auto = (self.next_auto + 1) & 0xfffff;
            let n = format!("{:05x}", self.next_auto).into_bytes();
            if self.lookup(&Key::Abstract(n.clone())).is_none() {
                return Ok(n);
            }
        }
        Err(libc::ENOSPC)
    }
}

/// `(dev, ino)` of a `struct stat`.
fn dev_ino(st: &[u8; sys::STAT_SIZE]) -> (u64, u64) {
    let mut d = [0u8; 8];
    d.copy_from_slice(&st[0..8]);
    let mut i = [0u8; 8];
    i.copy_from_slice(&st[8..16]);
    (u64::from_ne_bytes(d), u64::from_ne_bytes(i))
}

impl Fs {
    /// Binds `s` to `addr` for `caller`: creates the socket node of a
    /// path (mode `0777 & ~umask`, `EADDRINUSE` if the path exists).
    pub(super) fn unix_bind(
        &mut self,
        caller: dvk::Endpoint,
        s: &Rc<RefCell<Sock>>,
        addr: Addr,
    ) -> Result<(), i32> {
        if s.borrow().name.is_some() {
            return Err(libc::EINVAL);
        }
        let name = match addr {
            Addr::Unspec => return Err(libc::EINVAL),
            Addr::Auto => {
                let n = self.unix.auto_name()?;
                let mut raw = vec![0u8];
                raw.extend_from_slice(&n);
                Name {
                    raw,
                    key: Key::Abstract(n),
                }
            }
            Addr::Abstract(n) => {
                let key = Key::Abstract(n.clone());
                if self.unix.lookup(&key).is_some() {
                    return Err(libc::EADDRINUSE);
                }
                let mut raw = vec![0u8];
                raw.extend_from_slice(&n);
                Name { raw, key }
            }
            Addr::Path(p) => {
                let (dir, last, _) = self.parent(caller, AT_FDCWD, &p)?;
                let mode = libc::S_IFSOCK | (0o777 & !self.umask_of(caller));
                match sys::mknodat(dir.as_fd(), &last, mode, 0) {
                    Err(libc::EEXIST) => return Err(libc::EADDRINUSE),
                    r => r?,
                }
                let st = sys::fstatat_raw(dir.as_fd(), &last, libc::AT_SYMLINK_NOFOLLOW)?;
                let (dev, ino) = dev_ino(&st);
                let mut raw = p;
                raw.push(0);
                Name {
                    raw,
                    key: Key::Node(dev, ino),
                }
            }
        };
        self.unix.insert(name.key.clone(), s);
        s.borrow_mut().name = Some(Rc::new(name));
        Ok(())
    }

    /// The live socket named by `addr` (`ECONNREFUSED` if none listens
    /// there, `ENOENT` for a missing path).
    pub(super) fn unix_find(
        &mut self,
        caller: dvk::Endpoint,
        addr: &Addr,
    ) -> Result<Rc<RefCell<Sock>>, i32> {
        let key = match addr {
            Addr::Auto | Addr::Unspec => return Err(libc::EINVAL),
            Addr::Abstract(n) => Key::Abstract(n.clone()),
            Addr::Path(p) => {
                let fd = self.target(caller, AT_FDCWD, p, true)?;
                let st = sys::fstatat_raw(fd.as_fd(), sys::empty(), libc::AT_EMPTY_PATH)?;
                if sys::stat_mode(&st) & libc::S_IFMT != libc::S_IFSOCK {
                    return Err(libc::ECONNREFUSED);
                }
                let (dev, ino) = dev_ino(&st);
                Key::Node(dev, ino)
            }
        };
        self.unix.lookup(&key).ok_or(libc::ECONNREFUSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(path: &[u8]) -> Vec<u8> {
        let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(path);
        v
    }

    #[test]
    fn parses() {
        assert_eq!(parse(&sa(b"/tmp/x\0")), Ok(Addr::Path(b"/tmp/x".to_vec())));
        assert_eq!(parse(&sa(b"rel")), Ok(Addr::Path(b"rel".to_vec())));
        assert_eq!(
            parse(&sa(b"\0ab\0c")),
            Ok(Addr::Abstract(b"ab\0c".to_vec()))
        );
        assert_eq!(parse(&sa(b"")), Ok(Addr::Auto));
        assert_eq!(parse(&[1]), Err(libc::EINVAL));
        assert_eq!(parse(&[2, 0, b'a']), Err(libc::EINVAL));
        assert_eq!(parse(&[1u8; 111]), Err(libc::EINVAL));
    }
}
