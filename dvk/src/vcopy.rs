//! `vcopy`: copies a block of data between the address spaces of two DC
//! endpoints, possibly on behalf of a third (the requester).
//!
//! When the requester is one of the two sides, the copy is a single
//! kernel copy (`process_vm_writev` or `process_vm_readv`), like the
//! prototype's `copy_usr2usr`. A third-party copy (privileged requesters
//! only) cannot be done in one step from user space; it moves the data
//! through a requester buffer in `max_copybuf` chunks. A copy with a side
//! on another node is carried out by the node daemons and their proxies.

use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::ipc::Ipc;
use crate::layout::{unpack_status, IpcState, F_FROZEN};
use crate::params::ipc_call;
use crate::sys::{own_pid, vm_copy, CopyDir};
use std::sync::atomic::Ordering;

impl Ipc {
    /// Host pid of a non-requesting side, checking that it is bound, not
    /// migrating and blocked in IPC.
    fn copy_party(&self, ep: Endpoint, died: DvkError) -> Result<i32> {
        let (s, flags) = self.lookup(ep, died)?;
        if flags & F_FROZEN != 0 {
            return Err(DvkError::Migrate);
        }
        let peer = self.peer(s, ep)?;
        let (st, _) = unpack_status(peer.mbx.status().load(Ordering::Acquire));
        if st == IpcState::Running {
            return Err(DvkError::NotReady);
        }
        Ok(self.table.pid(s).load(Ordering::Acquire))
    }

    /// `vcopy`: copies `len` bytes from `src_addr` in `src` to `dst_addr`
    /// in `dst`. `0 < len <= max_copylen`. Sides other than the caller must
    /// be blocked in IPC (`EDVSNOTREADY`) and not migrating
    /// (`EDVSMIGRATE`). Only privileged endpoints may copy between two
    /// other endpoints (`EDVSPRIVILEGES`). Bad addresses give `EDVSFAULT`
    /// and leave both processes untouched.
    pub fn vcopy(
        &self,
        src: Endpoint,
        src_addr: u64,
        dst: Endpoint,
        dst_addr: u64,
        len: usize,
    ) -> Result<()> {
        self.check_alive()?;
        if self.table.ipc_mask(self.slot).load(Ordering::Relaxed) & ipc_call::VCOPY == 0 {
            return Err(DvkError::CallDenied);
        }
        if len == 0 {
            return Err(DvkError::Inval);
        }
        if len > self.geo.max_copylen as usize {
            return Err(DvkError::TooBig);
        }
        let me = self.me;
        let src = if src == Endpoint::SELF { me } else { src };
        let dst = if dst == Endpoint::SELF { me } else { dst };
        if src != me && dst != me && !self.privileged() {
            return Err(DvkError::Privileges);
        }
        if self.table.flags(self.slot).load(Ordering::Acquire) & F_FROZEN != 0 {
            return Err(DvkError::Migrate);
        }
        // A copy with a side on another node goes through the node daemon
        // and the proxies.
        let remote = |ep: Endpoint, died: DvkError| -> Result<bool> {
            if ep == me {
                return Ok(false);
            }
            let (s, _) = self.lookup(ep, died)?;
            Ok(self.is_remote(s))
        };
        if remote(src, DvkError::SrcDied)? || remote(dst, DvkError::DstDied)? {
            self.dvk()
                .remote_copy(self.dc().dcid, src, src_addr, dst, dst_addr, len)?;
            self.mbx.rcopy().fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let map_err = |died: DvkError| {
            move |e: DvkError| match e {
                DvkError::Srch => died,
                other => other,
            }
        };
        match (src == me, dst == me) {
            (true, true) => vm_copy(CopyDir::Write, own_pid(), src_addr, dst_addr, len)?,
            (true, false) => {
                let pid = self.copy_party(dst, DvkError::DstDied)?;
                vm_copy(CopyDir::Write, pid, src_addr, dst_addr, len)
                    .map_err(map_err(DvkError::DstDied))?
            }
            (false, true) => {
                let pid = self.copy_party(src, DvkError::SrcDied)?;
                vm_copy(CopyDir::Read, pid, dst_addr, src_addr, len)
                    .map_err(map_err(DvkError::SrcDied))?
            }
            (false, false) => {
                let spid = self.copy_party(src, DvkError::SrcDied)?;
                let dpid = self.copy_party(dst, DvkError::DstDied)?;
                let chunk = (self.geo.max_copybuf as usize).clamp(1, len);
                let mut buf = vec![0u8; chunk];
                let local = buf.as_mut_ptr() as u64;
                let mut off = 0usize;
                while off < len {
                    let n = chunk.min(len - off);
                    vm_copy(CopyDir::Read, spid, local, src_addr + off as u64, n)
                        .map_err(map_err(DvkError::SrcDied))?;
                    vm_copy(CopyDir::Write, dpid, local, dst_addr + off as u64, n)
                        .map_err(map_err(DvkError::DstDied))?;
                    off += n;
                }
            }
        }
        self.mbx.lcopy().fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `vcopy` of a local buffer into `dst` at `dst_addr` (the caller is the source).
    pub fn copy_to(&self, dst: Endpoint, dst_addr: u64, data: &[u8]) -> Result<()> {
        self.vcopy(self.me, data.as_ptr() as u64, dst, dst_addr, data.len())
    }

    /// `vcopy` from `src` at `src_addr` into a local buffer (the caller is the destination).
    pub fn copy_from(&self, src: Endpoint, src_addr: u64, buf: &mut [u8]) -> Result<()> {
        self.vcopy(src, src_addr, self.me, buf.as_mut_ptr() as u64, buf.len())
    }
}
