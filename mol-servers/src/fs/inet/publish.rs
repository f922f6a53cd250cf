//! Published ports (`dvs-exec --publish HOST:DC`): a DC program that binds
//! port DC gets host port HOST, and sees DC in its own address.
//!
//! Addresses are the program's raw `sockaddr_in`/`sockaddr_in6` bytes:
//! the family at offset 0 and the port (big-endian) at offset 2 in both.
//! `bind` maps any address; `connect` and `sendto` map only the node's
//! own addresses (loopback, unspecified), so a DC client reaches a DC
//! server by its DC port; `getsockname` maps back, and so do peer
//! addresses on the node's own addresses.

use std::str::FromStr;

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// The port on the host.
    pub host: u16,
    /// The port the DC's program uses.
    pub dc: u16,
}

impl FromStr for Publish {
    type Err = String;

    /// `HOST:DC`, two ports from 1 to 65535.
    fn from_str(s: &str) -> Result<Publish, String> {
        let (h, d) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not HOST:DC (two port numbers)"))?;
        let port = |p: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{p:?} is not a port number (1-65535)")),
            }
        };
        Ok(Publish {
            host: port(h)?,
            dc: port(d)?,
        })
    }
}

fn family(a: &[u8]) -> Option<i32> {
    let f = i32::from(u16::from_ne_bytes([*a.first()?, *a.get(1)?]));
    (f == libc::AF_INET || f == libc::AF_INET6).then_some(f)
}

fn port(a: &[u8]) -> Option<u16> {
    family(a)?;
    Some(u16::from_be_bytes([*a.get(2)?, *a.get(3)?]))
}

fn set_port(a: &mut [u8], p: u16) {
    a[2..4].copy_from_slice(&p.to_be_bytes());
}

/// A loopback or unspecified address: the node itself.
fn is_local(a: &[u8]) -> bool {
    match family(a) {
        Some(libc::AF_INET) => a.get(4..8).is_some_and(|ip| ip[0] == 127 || ip == [0; 4]),
        Some(_) => a.get(8..24).is_some_and(|ip| {
            let (head, tail) = ip.split_at(12);
            let v4mapped = head[..10] == [0; 10] && head[10..] == [0xff, 0xff];
            (head == [0; 12] && (tail == [0, 0, 0, 1] || tail == [0; 4]))
                || (v4mapped && (tail[0] == 127 || tail == [0; 4]))
        }),
        None => false,
    }
}

/// The host address for the program's address `a`: for `bind`
/// (`any`: every address), or for `connect`/`sendto` (the node's own
/// addresses only).
pub fn to_host(list: &[Publish], a: &mut [u8], any: bool) {
    if let Some(p) = port(a) {
        if let Some(m) = list.iter().find(|m| m.dc == p) {
            if any || is_local(a) {
                set_port(a, m.host);
            }
        }
    }
}

/// The program's view of host address `a`: its own name (`own`: every
/// address) or a peer's (the node's own addresses only).
pub fn to_dc(list: &[Publish], a: &mut [u8], own: bool) {
    if let Some(p) = port(a) {
        if let Some(m) = list.iter().find(|m| m.host == p) {
            if own || is_local(a) {
                set_port(a, m.dc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut a = vec![0u8; 16];
        a[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        a[2..4].copy_from_slice(&port.to_be_bytes());
        a[4..8].copy_from_slice(&ip);
        a
    }

    #[test]
    fn parses_host_dc() {
        assert_eq!("8080:80".parse(), Ok(Publish { host: 8080, dc: 80 }));
        assert!("8080".parse::<Publish>().is_err());
        assert!("0:80".parse::<Publish>().is_err());
        assert!("8080:x".parse::<Publish>().is_err());
        assert!("70000:80".parse::<Publish>().is_err());
    }

    #[test]
    fn maps_bind_connect_and_names() {
        let l = [Publish { host: 8080, dc: 80 }];
        let mut a = v4([10, 0, 0, 1], 80);
        to_host(&l, &mut a, true);
        assert_eq!(port(&a), Some(8080));
        let mut a = v4([10, 0, 0, 1], 80);
        to_host(&l, &mut a, false);
        assert_eq!(port(&a), Some(80), "a remote port 80 is not ours");
        let mut a = v4([127, 0, 0, 1], 80);
        to_host(&l, &mut a, false);
        assert_eq!(port(&a), Some(8080));
        to_dc(&l, &mut a, false);
        assert_eq!(port(&a), Some(80));
        let mut a = v4([127, 0, 0, 1], 81);
        to_host(&l, &mut a, true);
        assert_eq!(port(&a), Some(81));
        let mut short = vec![2u8, 0];
        to_host(&l, &mut short, true);
        assert_eq!(short, vec![2u8, 0]);
    }
}
