//! Integration tests of FS: an in-process node daemon, a DC, FS serving a
//! temporary root, and clients that are threads of this test bound to
//! user endpoints. Results are compared with the same operation done
//! natively on the host path wherever possible.

use dvk::{DcParams, Dvk, DvsParams, Endpoint, Ipc, Message};
use mol_servers::abi::{self, Call};
use mol_servers::fs::{self, ConsoleFds, FsConfig};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DC: i32 = 0;
const ADMIN: Endpoint = Endpoint(4);
const ME: Endpoint = Endpoint(100);
const KID: Endpoint = Endpoint(101);
const OTHER: Endpoint = Endpoint(102);
const AT_FDCWD: u64 = libc::AT_FDCWD as i64 as u64;
/// How long a client waits for any reply before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type AdminReq = (Call, Vec<u64>, Vec<u8>, mpsc::Sender<Result<i64, i32>>);

/// A privileged helper (endpoint 4) in its own thread, playing dvs-exec
/// and PM towards FS.
struct Admin {
    tx: Option<mpsc::Sender<AdminReq>>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    fn start(socket: &Path) -> Admin {
        let (tx, rx) = mpsc::channel::<AdminReq>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let socket = socket.to_path_buf();
        let thread = std::thread::spawn(move || {
            let ipc = Dvk::connect(&socket).unwrap().tbind(DC, ADMIN).unwrap();
            ready_tx.send(()).unwrap();
            for (call, mut args, data, reply) in rx {
                // A path argument travels in this thread's memory.
                if !data.is_empty() {
                    args.push(data.as_ptr() as u64);
                    args.push(data.len() as u64);
                }
                let mut m = abi::request(call, &args);
                let r = match ipc.sendrec_t(abi::FS, &mut m, CALL_TIMEOUT) {
                    Ok(()) => abi::result(&m),
                    Err(_) => Err(libc::EIO),
                };
                let _ = reply.send(r);
            }
        });
        ready_rx.recv().unwrap();
        Admin {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    fn call(&self, call: Call, args: &[u64], data: &[u8]) -> Result<i64, i32> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .as_ref()
            .unwrap()
            .send((call, args.to_vec(), data.to_vec(), tx))
            .unwrap();
        rx.recv().unwrap()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A daemon, a DC, FS on a temporary root, and the admin helper.
struct World {
    root: tempfile::TempDir,
    socket: PathBuf,
    _sockdir: tempfile::TempDir,
    admin: Option<Admin>,
    stop: Box<dyn Fn() + Send + Sync>,
    daemon: Option<JoinHandle<()>>,
    servers: Vec<JoinHandle<()>>,
}

impl World {
    fn new() -> World {
        World::with_console(None)
    }

    fn with_console(console: Option<ConsoleFds>) -> World {
        let sockdir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let socket = sockdir.path().join("dvkd.sock");
        let cfg = dvk::daemon::Config {
            socket: socket.clone(),
            init: Some((0, DvsParams::default())),
        };
        let daemon = dvk::daemon::Daemon::bind(&cfg).unwrap();
        let stop = Box::new(daemon.stopper());
        let thread = std::thread::spawn(move || {
            let _ = daemon.run();
        });
        Dvk::connect(&socket)
            .unwrap()
            .dc_init(&DcParams::new(DC, "fstest", &DvsParams::default()))
            .unwrap();
        let servers = fs::start(
            &socket,
            DC,
            FsConfig {
                root: root.path().to_path_buf(),
                console,
                publish: Vec::new(),
            },
        )
        .unwrap();
        let admin = Admin::start(&socket);
        World {
            root,
            socket,
            _sockdir: sockdir,
            admin: Some(admin),
            stop,
            daemon: Some(thread),
            servers,
        }
    }

    /// The host path of DC path `p`.
    fn host(&self, p: &str) -> PathBuf {
        self.root.path().join(p.trim_start_matches('/'))
    }

    fn admin(&self, call: Call, args: &[u64], data: &[u8]) -> Result<i64, i32> {
        self.admin.as_ref().unwrap().call(call, args, data)
    }

    fn new_proc(&self, ep: Endpoint, console: bool, cwd: &str) -> Result<i64, i32> {
        self.admin(
            Call::FsNewProc,
            &[ep.0 as u64, console as u64],
            cwd.as_bytes(),
        )
    }

    fn fork_proc(&self, parent: Endpoint, child: Endpoint, share: bool) {
        self.admin(
            Call::FsForkProc,
            &[parent.0 as u64, child.0 as u64, share as u64],
            &[],
        )
        .unwrap();
    }

    fn exec_proc(&self, ep: Endpoint) {
        self.admin(Call::FsExecProc, &[ep.0 as u64], &[]).unwrap();
    }

    fn exit_proc(&self, ep: Endpoint) {
        self.admin(Call::FsExitProc, &[ep.0 as u64], &[]).unwrap();
    }

    /// Binds the calling thread as `ep` (registered with FsNewProc first
    /// if `register`).
    fn client(&self, ep: Endpoint, register: bool) -> Client {
        if register {
            self.new_proc(ep, false, "/").unwrap();
        }
        let ipc = Dvk::connect(&self.socket).unwrap().tbind(DC, ep).unwrap();
        Client { ipc }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.admin.take();
        (self.stop)();
        if let Some(t) = self.daemon.take() {
            let _ = t.join();
        }
        for t in self.servers.drain(..) {
            let _ = t.join();
        }
    }
}

/// A DC process: the calling thread bound to a user endpoint.
struct Client {
    ipc: Ipc,
}

impl Client {
    fn req(&self, call: Call, args: &[u64]) -> Message {
        let mut m = abi::request(call, args);
        self.ipc
            .sendrec_t(abi::FS, &mut m, CALL_TIMEOUT)
            .expect("FS did not answer");
        m
    }

    fn call(&self, call: Call, args: &[u64]) -> Result<i64, i32> {
        abi::result(&self.req(call, args))
    }

    fn openat(&self, dirfd: u64, path: &str, flags: i32, mode: u32) -> Result<i32, i32> {
        self.call(
            Call::FsOpenat,
            &[
                dirfd,
                path.as_ptr() as u64,
                path.len() as u64,
                flags as u64,
                mode as u64,
            ],
        )
        .map(|v| v as i32)
    }

    fn open(&self, path: &str, flags: i32) -> Result<i32, i32> {
        self.openat(AT_FDCWD, path, flags, 0o644)
    }

    fn close(&self, fd: i32) -> Result<i64, i32> {
        self.call(Call::FsClose, &[fd as u64])
    }

    fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
        self.call(
            Call::FsRead,
            &[fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64],
        )
        .map(|v| v as usize)
    }

    fn read_vec(&self, fd: i32, n: usize) -> Result<Vec<u8>, i32> {
        let mut b = vec![0u8; n];
        let k = self.read(fd, &mut b)?;
        b.truncate(k);
        Ok(b)
    }

    fn write(&self, fd: i32, data: &[u8]) -> Result<usize, i32> {
        self.call(
            Call::FsWrite,
            &[fd as u64, data.as_ptr() as u64, data.len() as u64],
        )
        .map(|v| v as usize)
    }

    fn lseek(&self, fd: i32, off: i64, whence: i32) -> Result<i64, i32> {
        self.call(Call::FsLseek, &[fd as u64, off as u64, whence as u64])
    }

    fn fstatat(&self, dirfd: u64, path: &str, flags: i32) -> Result<[u8; 144], i32> {
        let mut st = [0u8; 144];
        self.call(
            Call::FsFstatat,
            &[
                dirfd,
                path.as_ptr() as u64,
                path.len() as u64,
                st.as_mut_ptr() as u64,
                flags as u64,
            ],
        )?;
        Ok(st)
    }

    fn stat(&self, path: &str) -> Result<[u8; 144], i32> {
        self.fstatat(AT_FDCWD, path, 0)
    }

    fn fstat(&self, fd: i32) -> Result<[u8; 144], i32> {
        self.fstatat(fd as u64, "", libc::AT_EMPTY_PATH)
    }

    fn path_call(&self, call: Call, dirfd: u64, path: &str, rest: &[u64]) -> Result<i64, i32> {
        let mut a = vec![dirfd, path.as_ptr() as u64, path.len() as u64];
        a.extend_from_slice(rest);
        self.call(call, &a)
    }

    fn two(&self, call: Call, old: &str, new: &str, flags: u64) -> Result<i64, i32> {
        self.call(
            call,
            &[
                AT_FDCWD,
                old.as_ptr() as u64,
                abi::pack_lens(old.len(), new.len()),
                AT_FDCWD,
                new.as_ptr() as u64,
                flags,
            ],
        )
    }

    fn mkdir(&self, path: &str, mode: u32) -> Result<i64, i32> {
        self.path_call(Call::FsMkdirat, AT_FDCWD, path, &[mode as u64])
    }

    fn unlink(&self, path: &str, flags: i32) -> Result<i64, i32> {
        self.path_call(Call::FsUnlinkat, AT_FDCWD, path, &[flags as u64])
    }

    fn symlink(&self, target: &str, path: &str) -> Result<i64, i32> {
        self.call(
            Call::FsSymlinkat,
            &[
                target.as_ptr() as u64,
                abi::pack_lens(target.len(), path.len()),
                AT_FDCWD,
                path.as_ptr() as u64,
            ],
        )
    }

    fn readlink(&self, path: &str) -> Result<Vec<u8>, i32> {
        let mut b = vec![0u8; 4096];
        let n = self.path_call(
            Call::FsReadlinkat,
            AT_FDCWD,
            path,
            &[b.as_mut_ptr() as u64, b.len() as u64],
        )?;
        b.truncate(n as usize);
        Ok(b)
    }

    fn chdir(&self, path: &str) -> Result<i64, i32> {
        self.call(Call::FsChdir, &[path.as_ptr() as u64, path.len() as u64])
    }

    fn getcwd(&self) -> Result<String, i32> {
        let mut b = vec![0u8; 4096];
        let n = self.call(Call::FsGetcwd, &[b.as_mut_ptr() as u64, b.len() as u64])? as usize;
        assert_eq!(b[n - 1], 0, "getcwd result ends with NUL");
        Ok(String::from_utf8(b[..n - 1].to_vec()).unwrap())
    }

    fn fcntl(&self, fd: i32, cmd: i32, arg: u64) -> Result<i64, i32> {
        self.call(Call::FsFcntl, &[fd as u64, cmd as u64, arg])
    }

    fn dup3(&self, old: i32, new: i32, flags: u64) -> Result<i64, i32> {
        self.call(Call::FsDup3, &[old as u64, new as u64, flags])
    }

    fn pipe2(&self, flags: i32) -> (i32, i32) {
        let m = self.req(Call::FsPipe2, &[flags as u64]);
        let r = abi::result(&m).expect("pipe2") as i32;
        (r, m.words()[1] as i32)
    }

    fn poll(&self, fds: &mut [libc::pollfd], timeout: i32) -> Result<i64, i32> {
        self.call(
            Call::FsPoll,
            &[
                fds.as_mut_ptr() as u64,
                fds.len() as u64,
                timeout as i64 as u64,
            ],
        )
    }

    fn ioctl(&self, fd: i32, req: libc::Ioctl, arg: &mut [u8]) -> Result<i64, i32> {
        self.call(Call::FsIoctl, &[fd as u64, req, arg.as_mut_ptr() as u64])
    }

    fn getdents(&self, fd: i32) -> Vec<(u64, u8, String)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 512];
        loop {
            let n = self
                .call(
                    Call::FsGetdents64,
                    &[fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64],
                )
                .unwrap() as usize;
            if n == 0 {
                break;
            }
            let mut off = 0;
            while off < n {
                let ino = u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap());
                let reclen =
                    u16::from_ne_bytes(buf[off + 16..off + 18].try_into().unwrap()) as usize;
                let ty = buf[off + 18];
                let name = &buf[off + 19..off + reclen];
                let end = name.iter().position(|&c| c == 0).unwrap();
                out.push((ino, ty, String::from_utf8(name[..end].to_vec()).unwrap()));
                off += reclen;
            }
        }
        out.sort_by(|a, b| a.2.cmp(&b.2));
        out
    }
}

// ------------------------------------------------------------ native side

fn native_stat(p: &Path, flags: i32) -> Result<[u8; 144], i32> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut st = [0u8; 144];
    // SAFETY: `st` has room for the kernel's struct stat; `c` is NUL-terminated.
    let r = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            libc::AT_FDCWD,
            c.as_ptr(),
            st.as_mut_ptr(),
            flags,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(st)
    }
}

fn native_statx(p: &Path, flags: i32, mask: u32) -> [u8; 256] {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut sx = [0u8; 256];
    // SAFETY: `sx` has room for the kernel's struct statx.
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            mask,
            sx.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    sx
}

fn native_open_err(p: &Path, flags: i32) -> i32 {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain open of a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd >= 0 {
        // SAFETY: we own the descriptor just opened.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap()
    }
}

fn native_getfl(p: &Path, flags: i32) -> i32 {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain open of a NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o644) };
    assert!(fd >= 0);
    // SAFETY: we own the descriptor just opened.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain fcntl on an open descriptor.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) }
}

fn mode_of(st: &[u8; 144]) -> u32 {
    u32::from_ne_bytes(st[24..28].try_into().unwrap())
}

fn host_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the two descriptors were just created and are ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

// ------------------------------------------------------------------ files

#[test]
fn open_read_write_seek_round_trip() {
    let w = World::new();
    let c = w.client(ME, true);
    let fd = c
        .open("/f.txt", libc::O_CREAT | libc::O_RDWR | libc::O_TRUNC)
        .unwrap();
    assert_eq!(fd, 0, "lowest free descriptor");
    assert_eq!(c.write(fd, b"hello, world").unwrap(), 12);
    assert_eq!(std::fs::read(w.host("f.txt")).unwrap(), b"hello, world");
    assert_eq!(c.lseek(fd, 0, libc::SEEK_CUR).unwrap(), 12);
    assert_eq!(c.lseek(fd, 7, libc::SEEK_SET).unwrap(), 7);
    assert_eq!(c.read_vec(fd, 100).unwrap(), b"world");
    assert_eq!(c.read_vec(fd, 100).unwrap(), b"", "EOF");
    assert_eq!(c.lseek(fd, -3, libc::SEEK_END).unwrap(), 9);
    assert_eq!(c.lseek(fd, -100, libc::SEEK_SET), Err(libc::EINVAL));
    // pread/pwrite do not move the offset.
    let mut b = [0u8; 5];
    let n = c
        .call(Call::FsPread, &[fd as u64, b.as_mut_ptr() as u64, 5, 0])
        .unwrap();
    assert_eq!((n, &b), (5, b"hello"));
    let n = c
        .call(Call::FsPwrite, &[fd as u64, b"HELLO".as_ptr() as u64, 5, 0])
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(c.lseek(fd, 0, libc::SEEK_CUR).unwrap(), 9);
    assert_eq!(std::fs::read(w.host("f.txt")).unwrap(), b"HELLO, world");
    assert_eq!(
        c.call(
            Call::FsPread,
            &[fd as u64, b.as_mut_ptr() as u64, 5, u64::MAX]
        ),
        Err(libc::EINVAL)
    );
    // readv/writev with several segments.
    let (mut x, mut y) = ([0u8; 3], [0u8; 4]);
    let iov = [x.as_mut_ptr() as u64, 3u64, y.as_mut_ptr() as u64, 4u64];
    let n = c
        .call(Call::FsReadv, &[fd as u64, iov.as_ptr() as u64, 2, 0])
        .unwrap();
    assert_eq!((n, &x, &y), (7, b"HEL", b"LO, "));
    let parts: [&[u8]; 3] = [b"ab", b"", b"cde"];
    let iov: Vec<u64> = parts
        .iter()
        .flat_map(|p| [p.as_ptr() as u64, p.len() as u64])
        .collect();
    c.lseek(fd, 0, libc::SEEK_END).unwrap();
    let n = c
        .call(
            Call::FsWritev,
            &[fd as u64, iov.as_ptr() as u64, 3, u64::MAX],
        )
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(
        std::fs::read(w.host("f.txt")).unwrap(),
        b"HELLO, worldabcde"
    );
    assert_eq!(
        c.call(Call::FsReadv, &[fd as u64, iov.as_ptr() as u64, 2000, 0]),
        Err(libc::EINVAL)
    );
    c.close(fd).unwrap();
    assert_eq!(c.close(fd), Err(libc::EBADF));
    assert_eq!(c.read(fd, &mut b), Err(libc::EBADF));
    // Access modes are enforced.
    let ro = c.open("/f.txt", libc::O_RDONLY).unwrap();
    assert_eq!(c.write(ro, b"x"), Err(libc::EBADF));
    let wo = c.open("/f.txt", libc::O_WRONLY).unwrap();
    assert_eq!(c.read(wo, &mut b), Err(libc::EBADF));
}

#[test]
fn large_transfers_in_chunks() {
    let w = World::new();
    let c = w.client(ME, true);
    let fd = c.open("/big", libc::O_CREAT | libc::O_RDWR).unwrap();
    // Larger than max_copylen (1 MiB): FS must copy in pieces.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 123)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    assert_eq!(c.write(fd, &data).unwrap(), data.len());
    assert_eq!(std::fs::read(w.host("big")).unwrap(), data);
    c.lseek(fd, 0, libc::SEEK_SET).unwrap();
    let mut back = vec![0u8; data.len() + 1000];
    assert_eq!(c.read(fd, &mut back).unwrap(), data.len());
    assert_eq!(&back[..data.len()], &data[..]);
    // A huge count on a small file is fine (capped, short read).
    c.lseek(fd, -10, libc::SEEK_END).unwrap();
    let n = c
        .call(
            Call::FsRead,
            &[fd as u64, back.as_mut_ptr() as u64, u64::MAX >> 1],
        )
        .unwrap();
    assert_eq!(n, 10);
}

#[test]
fn open_flags_and_errors_match_linux() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::write(w.host("file"), b"0123456789").unwrap();
    std::fs::create_dir(w.host("dir")).unwrap();
    // O_APPEND
    let fd = c.open("/file", libc::O_WRONLY | libc::O_APPEND).unwrap();
    c.lseek(fd, 0, libc::SEEK_SET).unwrap();
    c.write(fd, b"AB").unwrap();
    assert_eq!(std::fs::read(w.host("file")).unwrap(), b"0123456789AB");
    assert_eq!(
        c.fcntl(fd, libc::F_GETFL, 0).unwrap() as i32,
        native_getfl(&w.host("file"), libc::O_WRONLY | libc::O_APPEND)
    );
    // Errors, each compared with the native result on the host path.
    let cases: &[(&str, i32)] = &[
        ("/file", libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY),
        ("/missing", libc::O_RDONLY),
        ("/missing/x", libc::O_RDONLY | libc::O_CREAT),
        ("/file/x", libc::O_RDONLY),
        ("/file/", libc::O_RDONLY),
        ("/dir", libc::O_WRONLY),
        ("/dir", libc::O_RDWR),
        ("/file", libc::O_RDONLY | libc::O_DIRECTORY),
        ("/dir/new/", libc::O_RDONLY | libc::O_CREAT),
    ];
    for &(p, flags) in cases {
        let native = native_open_err(&w.host(p), flags);
        assert_ne!(native, 0, "{p} should fail natively");
        assert_eq!(c.open(p, flags), Err(native), "open({p}, {flags:#x})");
    }
    let long = "x".repeat(300);
    assert_eq!(c.open(&long, libc::O_RDONLY), Err(libc::ENAMETOOLONG));
    let huge = "a/".repeat(2100);
    assert_eq!(c.open(&huge, libc::O_RDONLY), Err(libc::ENAMETOOLONG));
    assert_eq!(c.open("", libc::O_RDONLY), Err(libc::ENOENT));
    // F_GETFL like Linux for a few combinations.
    for flags in [
        libc::O_RDONLY,
        libc::O_RDWR | libc::O_CLOEXEC,
        libc::O_WRONLY | libc::O_NONBLOCK | libc::O_TRUNC,
    ] {
        let fd = c.open("/file", flags).unwrap();
        assert_eq!(
            c.fcntl(fd, libc::F_GETFL, 0).unwrap() as i32,
            native_getfl(&w.host("file"), flags),
            "F_GETFL of {flags:#x}"
        );
    }
    let d = c.open("/dir", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    assert_eq!(
        c.fcntl(d, libc::F_GETFL, 0).unwrap() as i32,
        native_getfl(&w.host("dir"), libc::O_RDONLY | libc::O_DIRECTORY)
    );
    let mut b = [0u8; 4];
    assert_eq!(c.read(d, &mut b), Err(libc::EISDIR));
    // O_PATH descriptors do no I/O.
    let p = c.open("/file", libc::O_PATH).unwrap();
    assert_eq!(c.read(p, &mut b), Err(libc::EBADF));
    assert_eq!(c.fcntl(p, libc::F_GETFL, 0).unwrap() as i32, libc::O_PATH);
}

#[test]
fn umask_applies_to_creation() {
    let w = World::new();
    let c = w.client(ME, true);
    assert_eq!(c.call(Call::FsUmask, &[0o077]).unwrap(), 0o022);
    c.openat(AT_FDCWD, "/u", libc::O_CREAT | libc::O_WRONLY, 0o666)
        .unwrap();
    assert_eq!(
        std::fs::metadata(w.host("u")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    c.mkdir("/ud", 0o777).unwrap();
    assert_eq!(
        std::fs::metadata(w.host("ud"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(c.call(Call::FsUmask, &[0o022]).unwrap(), 0o077);
}

// --------------------------------------------------------------- metadata

#[test]
fn stat_fstat_statx_match_native() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::write(w.host("s"), b"some bytes").unwrap();
    std::os::unix::fs::symlink("s", w.host("ln")).unwrap();
    std::fs::create_dir(w.host("d")).unwrap();
    assert_eq!(c.stat("/s").unwrap(), native_stat(&w.host("s"), 0).unwrap());
    assert_eq!(
        c.stat("/ln").unwrap(),
        native_stat(&w.host("s"), 0).unwrap()
    );
    assert_eq!(
        c.fstatat(AT_FDCWD, "/ln", libc::AT_SYMLINK_NOFOLLOW)
            .unwrap(),
        native_stat(&w.host("ln"), libc::AT_SYMLINK_NOFOLLOW).unwrap()
    );
    assert_eq!(c.stat("/d").unwrap(), native_stat(&w.host("d"), 0).unwrap());
    assert_eq!(c.stat("/").unwrap(), native_stat(w.root.path(), 0).unwrap());
    let fd = c.open("/s", libc::O_RDONLY).unwrap();
    assert_eq!(c.fstat(fd).unwrap(), native_stat(&w.host("s"), 0).unwrap());
    // dirfd-relative
    let d = c.open("/d", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    std::fs::write(w.host("d/in"), b"x").unwrap();
    assert_eq!(
        c.fstatat(d as u64, "in", 0).unwrap(),
        native_stat(&w.host("d/in"), 0).unwrap()
    );
    assert_eq!(c.fstatat(fd as u64, "in", 0), Err(libc::ENOTDIR));
    assert_eq!(c.fstatat(77, "in", 0), Err(libc::EBADF));
    assert_eq!(
        c.fstatat(77, "/s", 0).unwrap(),
        native_stat(&w.host("s"), 0).unwrap()
    );
    // errors
    assert_eq!(c.stat("/nope"), Err(libc::ENOENT));
    assert_eq!(c.stat("/s/x"), Err(libc::ENOTDIR));
    assert_eq!(c.stat(""), Err(libc::ENOENT));
    assert_eq!(c.fstatat(AT_FDCWD, "/s", 0x4000_0000), Err(libc::EINVAL));
    // statx
    let mut sx = [0u8; 256];
    let p = "/ln";
    c.call(
        Call::FsStatx,
        &[
            AT_FDCWD,
            p.as_ptr() as u64,
            p.len() as u64,
            0,
            libc::STATX_ALL as u64,
            sx.as_mut_ptr() as u64,
        ],
    )
    .unwrap();
    assert_eq!(sx, native_statx(&w.host("s"), 0, libc::STATX_ALL));
    let mut sx = [0u8; 256];
    c.call(
        Call::FsStatx,
        &[
            fd as u64,
            "".as_ptr() as u64,
            0,
            libc::AT_EMPTY_PATH as u64,
            libc::STATX_BASIC_STATS as u64,
            sx.as_mut_ptr() as u64,
        ],
    )
    .unwrap();
    assert_eq!(sx, native_statx(&w.host("s"), 0, libc::STATX_BASIC_STATS));
    // access
    assert_eq!(
        c.path_call(Call::FsFaccessat, AT_FDCWD, "/s", &[libc::R_OK as u64, 0]),
        Ok(0)
    );
    assert_eq!(
        c.path_call(
            Call::FsFaccessat,
            AT_FDCWD,
            "/nope",
            &[libc::F_OK as u64, 0]
        ),
        Err(libc::ENOENT)
    );
    assert_eq!(
        c.path_call(Call::FsFaccessat, AT_FDCWD, "/s", &[0x40, 0]),
        Err(libc::EINVAL)
    );
}

#[test]
fn chmod_chown_truncate_utimens_fsync() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::write(w.host("t"), b"0123456789").unwrap();
    std::os::unix::fs::symlink("t", w.host("tl")).unwrap();
    c.path_call(Call::FsFchmodat, AT_FDCWD, "/tl", &[0o640, 0])
        .unwrap();
    assert_eq!(
        std::fs::metadata(w.host("t")).unwrap().mode() & 0o7777,
        0o640
    );
    assert_eq!(
        c.path_call(
            Call::FsFchmodat,
            AT_FDCWD,
            "/tl",
            &[0o600, libc::AT_SYMLINK_NOFOLLOW as u64]
        ),
        Err(libc::EOPNOTSUPP)
    );
    let fd = c.open("/t", libc::O_RDWR).unwrap();
    c.call(
        Call::FsFchmodat,
        &[fd as u64, 0, 0, 0o604, libc::AT_EMPTY_PATH as u64],
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(w.host("t")).unwrap().mode() & 0o7777,
        0o604
    );
    let (uid, gid) = {
        let m = std::fs::metadata(w.host("t")).unwrap();
        (m.uid(), m.gid())
    };
    c.path_call(
        Call::FsFchownat,
        AT_FDCWD,
        "/tl",
        &[uid as u64, gid as u64, libc::AT_SYMLINK_NOFOLLOW as u64],
    )
    .unwrap();
    c.path_call(
        Call::FsFchownat,
        AT_FDCWD,
        "/t",
        &[u32::MAX as u64, u32::MAX as u64, 0],
    )
    .unwrap();
    // truncate / ftruncate
    let p = "/tl";
    c.call(Call::FsTruncate, &[p.as_ptr() as u64, p.len() as u64, 4])
        .unwrap();
    assert_eq!(std::fs::read(w.host("t")).unwrap(), b"0123");
    c.call(Call::FsFtruncate, &[fd as u64, 2]).unwrap();
    assert_eq!(std::fs::read(w.host("t")).unwrap(), b"01");
    let d = "/";
    assert_eq!(
        c.call(Call::FsTruncate, &[d.as_ptr() as u64, d.len() as u64, 0]),
        Err(libc::EISDIR)
    );
    // utimensat with explicit times, then futimens-style (empty path).
    let times: [i64; 4] = [1_000_000, 5, 2_000_000, 7];
    c.path_call(
        Call::FsUtimensat,
        AT_FDCWD,
        "/t",
        &[times.as_ptr() as u64, 0],
    )
    .unwrap();
    let m = std::fs::metadata(w.host("t")).unwrap();
    assert_eq!(
        (m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()),
        (1_000_000, 5, 2_000_000, 7)
    );
    let times: [i64; 4] = [3_000_000, 0, 4_000_000, libc::UTIME_OMIT];
    c.call(
        Call::FsUtimensat,
        &[fd as u64, 0, 0, times.as_ptr() as u64, 0],
    )
    .unwrap();
    let m = std::fs::metadata(w.host("t")).unwrap();
    assert_eq!((m.atime(), m.mtime()), (3_000_000, 2_000_000));
    assert_eq!(c.call(Call::FsFsync, &[fd as u64, 0]), Ok(0));
    assert_eq!(c.call(Call::FsFsync, &[fd as u64, 1]), Ok(0));
    let (r, wr) = c.pipe2(0);
    assert_eq!(c.call(Call::FsFsync, &[r as u64, 0]), Err(libc::EINVAL));
    assert_eq!(
        c.call(Call::FsFtruncate, &[wr as u64, 0]),
        Err(libc::EINVAL)
    );
    assert_eq!(c.call(Call::FsFsync, &[999, 0]), Err(libc::EBADF));
    // A pipe has a FIFO stat.
    let st = c.fstat(r).unwrap();
    assert_eq!(mode_of(&st) & libc::S_IFMT, libc::S_IFIFO);
}

// ------------------------------------------------------------------ names

#[test]
fn directories_links_and_renames() {
    let w = World::new();
    let c = w.client(ME, true);
    c.mkdir("/a", 0o755).unwrap();
    assert!(w.host("a").is_dir());
    assert_eq!(c.mkdir("/a", 0o755), Err(libc::EEXIST));
    assert_eq!(c.mkdir("/x/y", 0o755), Err(libc::ENOENT));
    c.mkdir("/a/b/", 0o755).unwrap();
    std::fs::write(w.host("a/f"), b"data").unwrap();
    assert_eq!(c.unlink("/a", libc::AT_REMOVEDIR), Err(libc::ENOTEMPTY));
    assert_eq!(c.unlink("/a/b", 0), Err(libc::EISDIR));
    assert_eq!(c.unlink("/a/f", libc::AT_REMOVEDIR), Err(libc::ENOTDIR));
    assert_eq!(c.unlink("/a/f/", 0), Err(libc::ENOTDIR));
    assert_eq!(c.unlink("/a/nope", 0), Err(libc::ENOENT));
    assert_eq!(c.unlink("/a/f", 0x1), Err(libc::EINVAL));
    c.unlink("/a/b/", libc::AT_REMOVEDIR).unwrap();
    assert!(!w.host("a/b").exists());
    // rename, and renameat2 flags
    c.two(Call::FsRenameat2, "/a/f", "/a/g", 0).unwrap();
    assert_eq!(std::fs::read(w.host("a/g")).unwrap(), b"data");
    std::fs::write(w.host("a/h"), b"other").unwrap();
    assert_eq!(
        c.two(
            Call::FsRenameat2,
            "/a/g",
            "/a/h",
            libc::RENAME_NOREPLACE as u64
        ),
        Err(libc::EEXIST)
    );
    c.two(
        Call::FsRenameat2,
        "/a/g",
        "/a/h",
        libc::RENAME_EXCHANGE as u64,
    )
    .unwrap();
    assert_eq!(std::fs::read(w.host("a/h")).unwrap(), b"data");
    assert_eq!(std::fs::read(w.host("a/g")).unwrap(), b"other");
    assert_eq!(
        c.two(Call::FsRenameat2, "/a/g/", "/a/z", 0),
        Err(libc::ENOTDIR)
    );
    assert_eq!(
        c.two(Call::FsRenameat2, "/nope", "/z", 0),
        Err(libc::ENOENT)
    );
    // hard links
    c.two(Call::FsLinkat, "/a/h", "/hl", 0).unwrap();
    assert_eq!(std::fs::metadata(w.host("hl")).unwrap().nlink(), 2);
    assert_eq!(c.two(Call::FsLinkat, "/a/h", "/hl", 0), Err(libc::EEXIST));
    // symlinks: readlink gives the text unchanged
    c.symlink("/a/h", "/sl").unwrap();
    assert_eq!(std::fs::read_link(w.host("sl")).unwrap(), Path::new("/a/h"));
    assert_eq!(c.readlink("/sl").unwrap(), b"/a/h");
    assert_eq!(c.readlink("/a/h"), Err(libc::EINVAL));
    assert_eq!(c.readlink("/none"), Err(libc::ENOENT));
    assert_eq!(c.symlink("x", "/sl"), Err(libc::EEXIST));
    assert_eq!(c.symlink("", "/empty"), Err(libc::ENOENT));
    // linkat with AT_SYMLINK_FOLLOW links the target, not the link.
    c.two(
        Call::FsLinkat,
        "/sl",
        "/hl2",
        libc::AT_SYMLINK_FOLLOW as u64,
    )
    .unwrap();
    assert_eq!(
        std::fs::symlink_metadata(w.host("hl2")).unwrap().ino(),
        std::fs::metadata(w.host("a/h")).unwrap().ino()
    );
    c.two(Call::FsLinkat, "/sl", "/sl2", 0).unwrap();
    assert!(std::fs::symlink_metadata(w.host("sl2"))
        .unwrap()
        .file_type()
        .is_symlink());
    // readlinkat with a tiny buffer truncates, as Linux.
    let mut b = [0u8; 3];
    let p = "/sl";
    let n = c
        .path_call(Call::FsReadlinkat, AT_FDCWD, p, &[b.as_mut_ptr() as u64, 3])
        .unwrap();
    assert_eq!((n, &b), (3, b"/a/"));
    assert_eq!(
        c.path_call(Call::FsReadlinkat, AT_FDCWD, p, &[b.as_mut_ptr() as u64, 0]),
        Err(libc::EINVAL)
    );
}

#[test]
fn getdents_lists_exactly_the_native_entries() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::create_dir(w.host("d")).unwrap();
    for i in 0..150 {
        std::fs::write(w.host(&format!("d/file-with-a-long-name-{i:03}")), b"").unwrap();
    }
    std::fs::create_dir(w.host("d/sub")).unwrap();
    std::os::unix::fs::symlink("x", w.host("d/link")).unwrap();
    let fd = c.open("/d", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    let got = c.getdents(fd);
    let mut want: Vec<(u64, u8, String)> = std::fs::read_dir(w.host("d"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let ty = if ft.is_dir() {
                libc::DT_DIR
            } else if ft.is_symlink() {
                libc::DT_LNK
            } else {
                libc::DT_REG
            };
            (e.ino(), ty, e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    let meta = |p: &Path| std::fs::metadata(p).unwrap().ino();
    want.push((meta(&w.host("d")), libc::DT_DIR, ".".into()));
    want.push((meta(w.root.path()), libc::DT_DIR, "..".into()));
    want.sort_by(|a, b| a.2.cmp(&b.2));
    // ".." of a directory is the host's: compare names and types for it.
    assert_eq!(got.len(), want.len());
    for (g, x) in got.iter().zip(want.iter()) {
        assert_eq!((g.1, &g.2), (x.1, &x.2));
        if g.2 != ".." {
            assert_eq!(g.0, x.0, "{}", g.2);
        }
    }
    // Rewind and read again: same listing.
    c.lseek(fd, 0, libc::SEEK_SET).unwrap();
    assert_eq!(c.getdents(fd), got);
    let f = c.open("/d/sub/../link", libc::O_RDONLY);
    assert_eq!(f, Err(libc::ENOENT), "dangling link");
    let f = c
        .open("/d/file-with-a-long-name-000", libc::O_RDONLY)
        .unwrap();
    let mut b = [0u8; 64];
    assert_eq!(
        c.call(Call::FsGetdents64, &[f as u64, b.as_mut_ptr() as u64, 64]),
        Err(libc::ENOTDIR)
    );
    c.lseek(fd, 0, libc::SEEK_SET).unwrap();
    assert_eq!(
        c.call(Call::FsGetdents64, &[fd as u64, b.as_mut_ptr() as u64, 4]),
        Err(libc::EINVAL)
    );
    assert_eq!(c.getdents(fd), got, "nothing was consumed");
}

#[test]
fn chdir_relative_paths_and_getcwd() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::create_dir_all(w.host("p/q")).unwrap();
    std::fs::write(w.host("p/q/r"), b"rel").unwrap();
    std::os::unix::fs::symlink("p/q", w.host("pq")).unwrap();
    assert_eq!(c.getcwd().unwrap(), "/");
    c.chdir("/p").unwrap();
    assert_eq!(c.getcwd().unwrap(), "/p");
    let fd = c.open("q/r", libc::O_RDONLY).unwrap();
    assert_eq!(c.read_vec(fd, 10).unwrap(), b"rel");
    c.chdir("q").unwrap();
    assert_eq!(c.getcwd().unwrap(), "/p/q");
    let fd = c.open("../q/./r", libc::O_RDONLY).unwrap();
    assert_eq!(c.read_vec(fd, 10).unwrap(), b"rel");
    // Through a symlink, getcwd shows the real path.
    c.chdir("/pq").unwrap();
    assert_eq!(c.getcwd().unwrap(), "/p/q");
    assert_eq!(c.chdir("/p/q/r"), Err(libc::ENOTDIR));
    assert_eq!(c.chdir("/nope"), Err(libc::ENOENT));
    // fchdir
    let d = c.open("/p", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    c.call(Call::FsFchdir, &[d as u64]).unwrap();
    assert_eq!(c.getcwd().unwrap(), "/p");
    let f = c.open("/p/q/r", libc::O_RDONLY).unwrap();
    assert_eq!(c.call(Call::FsFchdir, &[f as u64]), Err(libc::ENOTDIR));
    let op = c.open("/p/q", libc::O_PATH).unwrap();
    c.call(Call::FsFchdir, &[op as u64]).unwrap();
    assert_eq!(c.getcwd().unwrap(), "/p/q");
    // getcwd buffer too small.
    let mut b = [0u8; 4];
    assert_eq!(
        c.call(Call::FsGetcwd, &[b.as_mut_ptr() as u64, 4]),
        Err(libc::ERANGE)
    );
    // *at calls relative to the cwd.
    c.mkdir("made", 0o755).unwrap();
    assert!(w.host("p/q/made").is_dir());
    // The cwd follows its directory when renamed.
    std::fs::rename(w.host("p"), w.host("p2")).unwrap();
    assert_eq!(c.getcwd().unwrap(), "/p2/q");
    let fd = c.open("r", libc::O_RDONLY).unwrap();
    assert_eq!(c.read_vec(fd, 10).unwrap(), b"rel");
    let fd = c.open("../q/r", libc::O_RDONLY).unwrap();
    assert_eq!(c.read_vec(fd, 10).unwrap(), b"rel");
    // Removed cwd.
    c.chdir("/p2/q/made").unwrap();
    std::fs::remove_dir(w.host("p2/q/made")).unwrap();
    assert_eq!(c.getcwd(), Err(libc::ENOENT));
}

#[test]
fn root_confinement() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::create_dir_all(w.host("sub/deeper")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", w.host("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../etc/passwd", w.host("sub/deeper/rel"))
        .unwrap();
    std::os::unix::fs::symlink("/", w.host("sub/toroot")).unwrap();
    std::os::unix::fs::symlink("../../../..", w.host("sub/up")).unwrap();
    // The host's /etc/passwd is out of reach.
    for p in [
        "/etc/passwd",
        "/../../../etc/passwd",
        "../../etc/passwd",
        "/abs",
        "/sub/deeper/rel",
        "/sub/toroot/etc/passwd",
        "/sub/up/etc/passwd",
        "sub/deeper/../../../etc/passwd",
    ] {
        assert_eq!(c.open(p, libc::O_RDONLY), Err(libc::ENOENT), "{p}");
        assert_eq!(c.stat(p), Err(libc::ENOENT), "{p}");
    }
    // ...and each of those paths reaches the root's own /etc/passwd.
    std::fs::create_dir(w.host("etc")).unwrap();
    std::fs::write(w.host("etc/passwd"), b"inside").unwrap();
    c.chdir("/sub/deeper").unwrap();
    for p in [
        "/etc/passwd",
        "/../../../etc/passwd",
        "../../../../../etc/passwd",
        "/abs",
        "/sub/deeper/rel",
        "rel",
        "/sub/toroot/etc/passwd",
        "../up/etc/passwd",
    ] {
        let fd = c
            .open(p, libc::O_RDONLY)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(c.read_vec(fd, 100).unwrap(), b"inside", "{p}");
        c.close(fd).unwrap();
    }
    // readlink shows the text, not a host path.
    assert_eq!(c.readlink("/abs").unwrap(), b"/etc/passwd");
    // chdir above the root stays at the root.
    c.chdir("../../../../..").unwrap();
    assert_eq!(c.getcwd().unwrap(), "/");
    c.chdir("/sub/toroot").unwrap();
    assert_eq!(c.getcwd().unwrap(), "/");
    // Names created through escaping paths land inside the root.
    let outside = w.root.path().parent().unwrap().join(format!(
        "{}-escape",
        w.root.path().file_name().unwrap().to_string_lossy()
    ));
    let name = format!("/../{}", outside.file_name().unwrap().to_string_lossy());
    c.mkdir(&name, 0o755).unwrap();
    assert!(!outside.exists());
    assert!(w.host(&name[4..]).is_dir());
    c.symlink("/etc/shadow", "/sub/sh").unwrap();
    assert_eq!(c.unlink("/sub/toroot/../../sub/sh", 0), Ok(0));
    assert!(!w.host("sub/sh").exists());
    // A symlink whose target is a directory outside, used as a parent.
    std::os::unix::fs::symlink("/tmp", w.host("tmplink")).unwrap();
    assert_eq!(c.mkdir("/tmplink/x", 0o755), Err(libc::ENOENT));
    // getdents of "/.." is the root itself.
    let fd = c.open("/..", libc::O_RDONLY | libc::O_DIRECTORY).unwrap();
    let names: Vec<String> = c.getdents(fd).into_iter().map(|e| e.2).collect();
    assert!(names.contains(&"sub".to_string()) && names.contains(&"etc".to_string()));
    // Host paths of descriptors are inside the root.
    let fd = c.open("/abs", libc::O_RDONLY).unwrap();
    let mut b = vec![0u8; 4096];
    let n = c
        .call(
            Call::FsHostPath,
            &[fd as u64, b.as_mut_ptr() as u64, b.len() as u64],
        )
        .unwrap() as usize;
    let want = std::fs::canonicalize(w.host("etc/passwd")).unwrap();
    assert_eq!(&b[..n], want.as_os_str().as_bytes());
    let p = "/sub/deeper/rel";
    let n = c
        .call(
            Call::FsHostPathAt,
            &[
                AT_FDCWD,
                p.as_ptr() as u64,
                p.len() as u64,
                b.as_mut_ptr() as u64,
                4096,
                0,
            ],
        )
        .unwrap() as usize;
    assert_eq!(&b[..n], want.as_os_str().as_bytes());
    // A too small buffer gets the full length (and a prefix).
    let n = c
        .call(Call::FsHostPath, &[fd as u64, b.as_mut_ptr() as u64, 2])
        .unwrap() as usize;
    assert_eq!(n, want.as_os_str().len());
}

// ------------------------------------------------------------ descriptors

#[test]
fn dup_dup2_fcntl_and_shared_offsets() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::write(w.host("d"), b"abcdefghij").unwrap();
    let fd = c.open("/d", libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
    assert_eq!(
        c.fcntl(fd, libc::F_GETFD, 0).unwrap(),
        libc::FD_CLOEXEC as i64
    );
    let d = c.call(Call::FsDup, &[fd as u64]).unwrap() as i32;
    assert_eq!(d, fd + 1);
    assert_eq!(
        c.fcntl(d, libc::F_GETFD, 0).unwrap(),
        0,
        "dup clears FD_CLOEXEC"
    );
    assert_eq!(c.read_vec(fd, 3).unwrap(), b"abc");
    assert_eq!(c.read_vec(d, 3).unwrap(), b"def", "shared offset");
    // dup2 / dup3
    assert_eq!(c.dup3(fd, 10, abi::DUP2).unwrap(), 10);
    assert_eq!(c.read_vec(10, 2).unwrap(), b"gh");
    assert_eq!(c.dup3(fd, fd, abi::DUP2).unwrap(), fd as i64);
    assert_eq!(c.dup3(fd, fd, 0), Err(libc::EINVAL));
    assert_eq!(c.dup3(55, 3, abi::DUP2), Err(libc::EBADF));
    // Numbers go up to Linux's ceiling on RLIMIT_NOFILE (fs.nr_open).
    assert_eq!(c.dup3(fd, 1 << 20, abi::DUP2), Err(libc::EBADF));
    assert_eq!(c.dup3(fd, 3, 0x4), Err(libc::EINVAL));
    assert_eq!(c.dup3(fd, 1023, libc::O_CLOEXEC as u64).unwrap(), 1023);
    assert_eq!(
        c.fcntl(1023, libc::F_GETFD, 0).unwrap(),
        libc::FD_CLOEXEC as i64
    );
    // dup2 over an open descriptor closes it.
    std::fs::write(w.host("e"), b"XYZ").unwrap();
    let e = c.open("/e", libc::O_RDONLY).unwrap();
    c.dup3(e, 10, abi::DUP2).unwrap();
    assert_eq!(c.read_vec(10, 3).unwrap(), b"XYZ");
    // fcntl
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, 20).unwrap(), 20);
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, 20).unwrap(), 21);
    assert_eq!(c.fcntl(fd, libc::F_DUPFD_CLOEXEC, 0).unwrap(), 3);
    assert_eq!(
        c.fcntl(3, libc::F_GETFD, 0).unwrap(),
        libc::FD_CLOEXEC as i64
    );
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, 1 << 20), Err(libc::EINVAL));
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, u64::MAX), Err(libc::EINVAL));
    c.fcntl(3, libc::F_SETFD, 0).unwrap();
    assert_eq!(c.fcntl(3, libc::F_GETFD, 0).unwrap(), 0);
    assert_eq!(c.fcntl(fd, 9999, 0), Err(libc::EINVAL));
    assert_eq!(c.fcntl(900, libc::F_GETFD, 0), Err(libc::EBADF));
    // F_SETFL: O_APPEND on a shared description.
    let wfd = c.open("/d", libc::O_WRONLY).unwrap();
    let wdup = c.call(Call::FsDup, &[wfd as u64]).unwrap() as i32;
    c.fcntl(wfd, libc::F_SETFL, (libc::O_APPEND | libc::O_RDWR) as u64)
        .unwrap();
    assert_eq!(
        c.fcntl(wdup, libc::F_GETFL, 0).unwrap() as i32,
        libc::O_WRONLY | libc::O_APPEND | 0o100000,
        "status flags are shared, the access mode is not changed"
    );
    c.write(wdup, b"++").unwrap();
    assert_eq!(std::fs::read(w.host("d")).unwrap(), b"abcdefghij++");
    // EMFILE past the last number, 2^20 - 1 (Linux's fs.nr_open).
    let top = (1u64 << 20) - 2;
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, top).unwrap(), top as i64);
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, top).unwrap(), top as i64 + 1);
    assert_eq!(c.fcntl(fd, libc::F_DUPFD, top), Err(libc::EMFILE));
    assert_eq!(c.read_vec(top as i32 + 1, 2).unwrap(), b"ij");
    // close_range to the end of the numbers closes them.
    c.call(Call::FsCloseRange, &[top, u32::MAX as u64, 0])
        .unwrap();
    assert_eq!(c.fcntl(top as i32, libc::F_GETFD, 0), Err(libc::EBADF));
}

#[test]
fn fork_exec_exit_tables() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::write(w.host("f"), b"0123456789").unwrap();
    let keep = c.open("/f", libc::O_RDONLY).unwrap();
    let gone = c.open("/f", libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
    c.chdir("/").unwrap();
    c.call(Call::FsUmask, &[0o027]).unwrap();
    w.fork_proc(ME, KID, false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let k = w.client(KID, false);
            assert_eq!(k.read_vec(keep, 4).unwrap(), b"0123");
            assert_eq!(k.call(Call::FsUmask, &[0o022]).unwrap(), 0o027);
            // The child's table is a copy: closing here keeps the parent's.
            k.close(gone).unwrap();
        })
        .join()
        .unwrap();
    });
    assert_eq!(
        c.read_vec(keep, 4).unwrap(),
        b"4567",
        "offset shared with the child"
    );
    assert_eq!(c.read_vec(gone, 2).unwrap(), b"01");
    assert_eq!(
        c.call(Call::FsUmask, &[0o027]).unwrap(),
        0o027,
        "umask is per process"
    );
    // exec closes only O_CLOEXEC descriptors.
    w.exec_proc(ME);
    assert_eq!(c.read_vec(keep, 2).unwrap(), b"89");
    let mut b = [0u8; 1];
    assert_eq!(c.read(gone, &mut b), Err(libc::EBADF));
    // A shared table (threads): changes are seen by both.
    w.fork_proc(ME, OTHER, true);
    let t = std::thread::scope(|s| {
        s.spawn(|| {
            let o = w.client(OTHER, false);
            let fd = o.open("/f", libc::O_RDONLY).unwrap();
            o.chdir("/").unwrap();
            fd
        })
        .join()
        .unwrap()
    });
    assert_eq!(c.read_vec(t, 3).unwrap(), b"012");
    w.exit_proc(OTHER);
    assert_eq!(
        c.read_vec(t, 3).unwrap(),
        b"345",
        "still open for the other sharer"
    );
    w.exit_proc(ME);
    assert_eq!(c.read(keep, &mut b), Err(libc::EBADF));
    assert_eq!(c.open("/f", libc::O_RDONLY), Err(libc::EBADF));
    // Unprivileged callers cannot manage processes.
    assert_eq!(
        c.call(Call::FsNewProc, &[ME.0 as u64, 0, 0, 0]),
        Err(libc::EPERM)
    );
    assert_eq!(
        w.admin(Call::FsForkProc, &[12345, KID.0 as u64, 0], &[]),
        Err(libc::EBADF)
    );
    assert_eq!(w.new_proc(KID, false, "/does/not/exist"), Err(libc::ENOENT));
    assert_eq!(w.new_proc(KID, false, "relative"), Err(libc::EINVAL));
}

#[test]
fn unknown_callers_and_bad_pointers() {
    let w = World::new();
    std::fs::write(w.host("f"), b"abc").unwrap();
    let c = w.client(ME, false);
    // Not registered: no descriptors.
    let mut b = [0u8; 4];
    assert_eq!(c.read(0, &mut b), Err(libc::EBADF));
    assert_eq!(c.open("/f", libc::O_RDONLY), Err(libc::EBADF));
    assert_eq!(c.close(0), Err(libc::EBADF));
    assert_eq!(c.stat("/f").unwrap(), native_stat(&w.host("f"), 0).unwrap());
    w.new_proc(ME, false, "/").unwrap();
    let fd = c.open("/f", libc::O_RDWR).unwrap();
    // Bad addresses: EFAULT, and FS keeps serving.
    assert_eq!(c.call(Call::FsRead, &[fd as u64, 8, 3]), Err(libc::EFAULT));
    assert_eq!(
        c.call(Call::FsWrite, &[fd as u64, 16, 3]),
        Err(libc::EFAULT)
    );
    assert_eq!(
        c.call(Call::FsOpenat, &[AT_FDCWD, 24, 5, 0, 0]),
        Err(libc::EFAULT)
    );
    assert_eq!(
        c.call(Call::FsFstatat, &[AT_FDCWD, "/f".as_ptr() as u64, 2, 8, 0]),
        Err(libc::EFAULT)
    );
    assert_eq!(
        c.call(Call::FsReadv, &[fd as u64, 8, 2, u64::MAX]),
        Err(libc::EFAULT)
    );
    let iov = [8u64, 10];
    assert_eq!(
        c.call(
            Call::FsWritev,
            &[fd as u64, iov.as_ptr() as u64, 1, u64::MAX]
        ),
        Err(libc::EFAULT)
    );
    assert_eq!(c.call(Call::FsPoll, &[8, 1, 0]), Err(libc::EFAULT));
    assert_eq!(c.call(Call::FsGetcwd, &[8, 100]), Err(libc::EFAULT));
    let (r, wr) = c.pipe2(0);
    c.write(wr, b"xyz").unwrap();
    assert_eq!(c.call(Call::FsRead, &[r as u64, 8, 3]), Err(libc::EFAULT));
    assert_eq!(c.read_vec(r, 10).unwrap(), b"xyz", "nothing lost on EFAULT");
    // Absurd values.
    assert_eq!(c.call(Call::FsRead, &[u64::MAX, 0, 1]), Err(libc::EBADF));
    assert_eq!(c.call(Call::FsPoll, &[0, u64::MAX, 0]), Err(libc::EINVAL));
    assert_eq!(
        c.call(Call::FsOpenat, &[AT_FDCWD, 8, 1 << 40, 0, 0]),
        Err(libc::ENAMETOOLONG)
    );
    let mut m = abi::request(Call::FsRead, &[]);
    m.m_type = 0x2ff;
    c.ipc.sendrec_t(abi::FS, &mut m, CALL_TIMEOUT).unwrap();
    assert_eq!(abi::result(&m), Err(libc::ENOSYS));
    assert_eq!(c.read_vec(fd, 10).unwrap(), b"abc");
    assert_eq!(c.getcwd().unwrap(), "/");
}

#[test]
fn record_locks_between_processes() {
    let w = World::new();
    std::fs::write(w.host("lk"), b"locked file").unwrap();
    let c = w.client(ME, true);
    let fd = c.open("/lk", libc::O_RDWR).unwrap();
    let lock = |ty: i16| -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..2].copy_from_slice(&ty.to_ne_bytes());
        b[2..4].copy_from_slice(&(libc::SEEK_SET as i16).to_ne_bytes());
        b[16..24].copy_from_slice(&0i64.to_ne_bytes());
        b
    };
    let mut l = lock(libc::F_WRLCK as i16);
    c.fcntl(fd, libc::F_SETLK, l.as_mut_ptr() as u64).unwrap();
    w.new_proc(KID, false, "/").unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let k = w.client(KID, false);
            let kfd = k.open("/lk", libc::O_RDWR).unwrap();
            let mut l = lock(libc::F_WRLCK as i16);
            assert_eq!(
                k.fcntl(kfd, libc::F_SETLK, l.as_mut_ptr() as u64),
                Err(libc::EAGAIN)
            );
            let mut g = lock(libc::F_RDLCK as i16);
            k.fcntl(kfd, libc::F_GETLK, g.as_mut_ptr() as u64).unwrap();
            assert_eq!(i16::from_ne_bytes([g[0], g[1]]), libc::F_WRLCK as i16);
            tx.send(()).unwrap();
            let t = Instant::now();
            k.fcntl(kfd, libc::F_SETLKW, l.as_mut_ptr() as u64).unwrap();
            assert!(t.elapsed() >= Duration::from_millis(100));
        });
        rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let mut u = lock(libc::F_UNLCK as i16);
        c.fcntl(fd, libc::F_SETLK, u.as_mut_ptr() as u64).unwrap();
    });
}

// ------------------------------------------------------------------ pipes

#[test]
fn pipe_deferred_read_eof_and_epipe() {
    let w = World::new();
    let c = w.client(ME, true);
    let (r, wr) = c.pipe2(0);
    assert_eq!((r, wr), (0, 1));
    assert_eq!(c.fcntl(r, libc::F_GETFL, 0).unwrap() as i32, libc::O_RDONLY);
    assert_eq!(
        c.fcntl(wr, libc::F_GETFL, 0).unwrap() as i32,
        libc::O_WRONLY
    );
    let mut b = [0u8; 1];
    assert_eq!(c.read(wr, &mut b), Err(libc::EBADF));
    assert_eq!(c.write(r, b"x"), Err(libc::EBADF));
    assert_eq!(c.lseek(r, 0, libc::SEEK_SET), Err(libc::ESPIPE));
    w.fork_proc(ME, KID, false);
    std::thread::scope(|s| {
        // From before the child starts: on a loaded machine it may start
        // late, but it can never read before the parent's write.
        let t = Instant::now();
        let w = &w;
        let h = s.spawn(move || {
            let k = w.client(KID, false);
            k.close(wr).unwrap();
            // Blocks until the parent writes.
            let got = k.read_vec(r, 100).unwrap();
            assert!(
                t.elapsed() >= Duration::from_millis(80),
                "read was deferred"
            );
            assert_eq!(got, b"ping");
            // Then EOF once the last writer is gone.
            assert_eq!(k.read_vec(r, 100).unwrap(), b"");
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(c.write(wr, b"ping").unwrap(), 4);
        std::thread::sleep(Duration::from_millis(50));
        c.close(wr).unwrap();
        h.join().unwrap();
    });
    // No readers: EPIPE.
    let (r2, w2) = c.pipe2(0);
    c.close(r2).unwrap();
    assert_eq!(c.write(w2, b"x"), Err(libc::EPIPE));
    assert_eq!(c.write(w2, b""), Ok(0));
    let mut p = [libc::pollfd {
        fd: w2,
        events: libc::POLLOUT,
        revents: 0,
    }];
    assert_eq!(c.poll(&mut p, 0).unwrap(), 1);
    assert_eq!(p[0].revents & libc::POLLERR, libc::POLLERR);
}

#[test]
fn pipe_large_write_read_in_pieces() {
    let w = World::new();
    let c = w.client(ME, true);
    let (r, wr) = c.pipe2(0);
    w.fork_proc(ME, KID, false);
    let data: Vec<u8> = (0..200 * 1024).map(|i| (i % 253) as u8).collect();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let k = w.client(KID, false);
            k.close(wr).unwrap();
            let mut got = Vec::new();
            loop {
                std::thread::sleep(Duration::from_millis(2));
                let piece = k.read_vec(r, 7000).unwrap();
                if piece.is_empty() {
                    break;
                }
                assert!(piece.len() <= 7000);
                got.extend_from_slice(&piece);
            }
            got
        });
        // A blocking write returns only when everything is written.
        assert_eq!(c.write(wr, &data).unwrap(), data.len());
        c.close(wr).unwrap();
        assert_eq!(h.join().unwrap(), data);
    });
}

#[test]
fn pipe_nonblocking_and_atomic_writes() {
    let w = World::new();
    let c = w.client(ME, true);
    let (r, wr) = c.pipe2(libc::O_NONBLOCK | libc::O_CLOEXEC);
    assert_eq!(
        c.fcntl(r, libc::F_GETFD, 0).unwrap(),
        libc::FD_CLOEXEC as i64
    );
    assert_eq!(
        c.fcntl(r, libc::F_GETFL, 0).unwrap() as i32,
        libc::O_RDONLY | libc::O_NONBLOCK
    );
    let mut b = vec![0u8; 100];
    assert_eq!(c.read(r, &mut b), Err(libc::EAGAIN));
    let big = vec![7u8; 100 * 1024];
    assert_eq!(
        c.write(wr, &big).unwrap(),
        65536,
        "a partial write fills the pipe"
    );
    assert_eq!(c.write(wr, b"x"), Err(libc::EAGAIN));
    let mut n = [0u8; 4];
    c.ioctl(r, libc::FIONREAD, &mut n).unwrap();
    assert_eq!(i32::from_ne_bytes(n), 65536);
    // Drain 4000: an atomic 4096-byte write still does not fit.
    assert_eq!(c.read(r, &mut vec![0u8; 4000]).unwrap(), 4000);
    assert_eq!(c.write(wr, &[1u8; 4096]), Err(libc::EAGAIN));
    assert_eq!(c.write(wr, &[1u8; 4000]).unwrap(), 4000);
    // F_SETFL can clear O_NONBLOCK.
    c.fcntl(r, libc::F_SETFL, 0).unwrap();
    assert_eq!(c.fcntl(r, libc::F_GETFL, 0).unwrap() as i32, libc::O_RDONLY);
    assert_eq!(c.read(r, &mut vec![0u8; 70000]).unwrap(), 65536);
    // ...and FIONBIO set it again.
    let mut on = 1i32.to_ne_bytes();
    c.ioctl(r, libc::FIONBIO, &mut on).unwrap();
    assert_eq!(c.read(r, &mut b), Err(libc::EAGAIN));
    assert_eq!(c.ioctl(r, libc::TCGETS, &mut [0u8; 64]), Err(libc::ENOTTY));
    assert_eq!(c.call(Call::FsPipe2, &[0x1]), Err(libc::EINVAL));
}

#[test]
fn exit_and_close_wake_pipe_peers() {
    let w = World::new();
    let c = w.client(ME, true);
    // The reader is woken with EOF when the only other writer exits.
    let (r, wr) = c.pipe2(0);
    w.fork_proc(ME, KID, false);
    c.close(wr).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            w.exit_proc(KID);
        });
        assert_eq!(c.read_vec(r, 10).unwrap(), b"");
    });
    // A writer blocked on a full pipe gets the partial count when the
    // last reader exits.
    let (r, wr) = c.pipe2(0);
    w.fork_proc(ME, KID, false);
    c.close(r).unwrap();
    let data = vec![1u8; 100 * 1024];
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            w.exit_proc(KID);
        });
        assert_eq!(c.write(wr, &data).unwrap(), 65536);
    });
    assert_eq!(c.write(wr, b"x"), Err(libc::EPIPE));
    // A blocked read ends with EINTR on FsCancel.
    let (r, _wr) = c.pipe2(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(w.admin(Call::FsCancel, &[ME.0 as u64], &[]), Ok(1));
        });
        assert_eq!(c.read_vec(r, 10), Err(libc::EINTR));
    });
}

// ------------------------------------------------------------------- poll

#[test]
fn poll_timeout_and_wakeup() {
    let w = World::new();
    let c = w.client(ME, true);
    std::fs::write(w.host("f"), b"x").unwrap();
    let f = c.open("/f", libc::O_RDWR).unwrap();
    let (r, wr) = c.pipe2(0);
    // Files are always ready; bad descriptors are POLLNVAL; -1 is ignored.
    let mut p = [
        libc::pollfd {
            fd: f,
            events: libc::POLLIN | libc::POLLOUT,
            revents: 0,
        },
        libc::pollfd {
            fd: 500,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: r,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wr,
            events: libc::POLLOUT,
            revents: 0,
        },
    ];
    assert_eq!(c.poll(&mut p, 1000).unwrap(), 3);
    assert_eq!(p[0].revents, libc::POLLIN | libc::POLLOUT);
    assert_eq!(p[1].revents, libc::POLLNVAL);
    assert_eq!(p[2].revents, 0);
    assert_eq!(p[3].revents, 0);
    assert_eq!(p[4].revents, libc::POLLOUT);
    // Nothing ready: returns 0 after about the timeout.
    let mut p = [libc::pollfd {
        fd: r,
        events: libc::POLLIN,
        revents: 7,
    }];
    let t = Instant::now();
    assert_eq!(c.poll(&mut p, 200).unwrap(), 0);
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(195) && el < Duration::from_millis(1500),
        "{el:?}"
    );
    assert_eq!(p[0].revents, 0);
    assert_eq!(c.poll(&mut [], 50).unwrap(), 0, "poll(NULL, 0, 50) sleeps");
    // Woken by a write of another process.
    w.fork_proc(ME, KID, false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let k = w.client(KID, false);
            std::thread::sleep(Duration::from_millis(100));
            k.write(wr, b"!").unwrap();
        });
        let t = Instant::now();
        assert_eq!(c.poll(&mut p, -1).unwrap(), 1);
        assert!(t.elapsed() >= Duration::from_millis(80));
        assert_eq!(p[0].revents, libc::POLLIN);
    });
    // POLLHUP when the writers are gone (data still readable).
    c.close(wr).unwrap();
    w.exit_proc(KID);
    assert_eq!(c.poll(&mut p, 0).unwrap(), 1);
    assert_eq!(p[0].revents, libc::POLLIN | libc::POLLHUP);
    assert_eq!(c.read_vec(r, 10).unwrap(), b"!");
    assert_eq!(c.poll(&mut p, 0).unwrap(), 1);
    assert_eq!(p[0].revents, libc::POLLHUP);
}

// ---------------------------------------------------------------- console

struct HostConsole {
    in_w: std::fs::File,
    out_r: std::fs::File,
    err_r: std::fs::File,
}

fn console_pipes() -> (ConsoleFds, HostConsole) {
    let (in_r, in_w) = host_pipe();
    let (out_r, out_w) = host_pipe();
    let (err_r, err_w) = host_pipe();
    (
        ConsoleFds {
            input: in_r,
            output: out_w,
            error: err_w,
            others: Vec::new(),
            closed: [false; 3],
        },
        HostConsole {
            in_w: in_w.into(),
            out_r: out_r.into(),
            err_r: err_r.into(),
        },
    )
}

#[test]
fn console_on_pipes() {
    let (fds, mut host) = console_pipes();
    let w = World::with_console(Some(fds));
    w.new_proc(ME, true, "/").unwrap();
    let c = w.client(ME, false);
    assert_eq!(c.write(1, b"to stdout\n").unwrap(), 10);
    assert_eq!(c.write(2, b"to stderr\n").unwrap(), 10);
    let mut b = [0u8; 10];
    host.out_r.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"to stdout\n");
    host.err_r.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"to stderr\n");
    // A console that is a pipe is not a terminal.
    assert_eq!(c.ioctl(0, libc::TCGETS, &mut [0u8; 64]), Err(libc::ENOTTY));
    assert_eq!(
        c.ioctl(1, libc::TIOCGWINSZ, &mut [0u8; 8]),
        Err(libc::ENOTTY)
    );
    assert_eq!(
        c.ioctl(0, libc::TIOCGPGRP, &mut [0u8; 4]),
        Err(libc::ENOTTY)
    );
    assert_eq!(c.ioctl(0, 0x1234, &mut [0u8; 4]), Err(libc::ENOTTY));
    // A read waits (deferred) until the host writes; FS serves others
    // meanwhile.
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            let other = w.client(KID, true);
            assert_eq!(other.getcwd().unwrap(), "/", "FS is not blocked");
            std::thread::sleep(Duration::from_millis(50));
            host.in_w.write_all(b"typed\n").unwrap();
        });
        let t = Instant::now();
        assert_eq!(c.read_vec(0, 100).unwrap(), b"typed\n");
        assert!(t.elapsed() >= Duration::from_millis(90));
    });
    let mut n = [0u8; 4];
    host.in_w.write_all(b"abc").unwrap();
    c.ioctl(0, libc::FIONREAD, &mut n).unwrap();
    assert_eq!(i32::from_ne_bytes(n), 3);
    // poll on the console: readable input, writable output.
    let mut p = [
        libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: 1,
            events: libc::POLLOUT,
            revents: 0,
        },
    ];
    assert_eq!(c.poll(&mut p, -1).unwrap(), 2);
    assert_eq!(c.read_vec(0, 100).unwrap(), b"abc");
    // poll waits for console input through the watcher.
    let mut p = [libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(c.poll(&mut p, 100).unwrap(), 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            host.in_w.write_all(b"z").unwrap();
        });
        assert_eq!(c.poll(&mut p, 5000).unwrap(), 1);
        assert_eq!(p[0].revents, libc::POLLIN);
    });
    // A write larger than the host pipe completes as the host drains it;
    // FS keeps serving meanwhile.
    let data: Vec<u8> = (0..300 * 1024).map(|i| (i % 241) as u8).collect();
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            let other = w.client(OTHER, true);
            assert_eq!(other.getcwd().unwrap(), "/", "FS is not blocked");
            let mut got = vec![0u8; data.len()];
            let mut r = &host.out_r;
            r.read_exact(&mut got).unwrap();
            got
        });
        assert_eq!(c.write(1, &data).unwrap(), data.len());
        assert_eq!(reader.join().unwrap(), data);
    });
    // End of input.
    drop(std::mem::replace(
        &mut host.in_w,
        std::fs::File::open("/dev/null").unwrap(),
    ));
    assert_eq!(c.read_vec(0, 100).unwrap(), b"z");
    assert_eq!(c.read_vec(0, 100).unwrap(), b"");
    // Output with no reader: EPIPE (FS itself survives the SIGPIPE).
    drop(std::mem::replace(
        &mut host.err_r,
        std::fs::File::open("/dev/null").unwrap(),
    ));
    assert_eq!(c.write(2, b"lost"), Err(libc::EPIPE));
    assert_eq!(c.getcwd().unwrap(), "/");
}

fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty writes the two descriptors; the other arguments may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: both descriptors were just created and are ours.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

#[test]
fn console_on_a_terminal() {
    let (master, slave) = openpty();
    let dup = |fd: &OwnedFd| fd.try_clone().unwrap();
    let fds = ConsoleFds {
        input: dup(&slave),
        output: dup(&slave),
        error: dup(&slave),
        others: Vec::new(),
        closed: [false; 3],
    };
    let w = World::with_console(Some(fds));
    w.new_proc(ME, true, "/").unwrap();
    let c = w.client(ME, false);
    // isatty and the termios are the host's.
    let mut t = [0u8; 64];
    c.ioctl(0, libc::TCGETS, &mut t).unwrap();
    let mut native = [0u8; 64];
    // SAFETY: TCGETS writes a 36-byte kernel termios into the 64-byte buffer.
    assert_eq!(
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TCGETS, native.as_mut_ptr()) },
        0
    );
    assert_eq!(&t[..36], &native[..36]);
    assert_eq!(
        &t[36..],
        &[0u8; 28][..],
        "only the kernel termios is copied"
    );
    // Switch off echo with TCSETS and see it on the host.
    let mut raw = t;
    let lflag = u32::from_ne_bytes(raw[12..16].try_into().unwrap()) & !libc::ECHO;
    raw[12..16].copy_from_slice(&lflag.to_ne_bytes());
    c.ioctl(0, libc::TCSETS, &mut raw).unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TCGETS, native.as_mut_ptr()) },
        0
    );
    assert_eq!(&native[..36], &raw[..36]);
    // Window size round trip.
    let mut ws = [0u8; 8];
    ws[0..2].copy_from_slice(&40u16.to_ne_bytes());
    ws[2..4].copy_from_slice(&132u16.to_ne_bytes());
    c.ioctl(1, libc::TIOCSWINSZ, &mut ws).unwrap();
    let mut back = [0u8; 8];
    c.ioctl(2, libc::TIOCGWINSZ, &mut back).unwrap();
    assert_eq!(back, ws);
    c.ioctl(0, libc::TIOCGPGRP, &mut [0u8; 4]).unwrap();
    c.ioctl(0, libc::TIOCSPGRP, &mut [0u8; 4]).unwrap();
    // Output reaches the master; input typed at the master is read.
    let mut m = std::fs::File::from(master);
    assert_eq!(c.write(1, b"hi\n").unwrap(), 3);
    let mut b = [0u8; 4];
    m.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hi\r\n");
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            let mut m = &m;
            m.write_all(b"line\n").unwrap();
        });
        assert_eq!(c.read_vec(0, 100).unwrap(), b"line\n");
    });
    // /dev/tty is the console terminal.
    let tty = c.open("/dev/tty", libc::O_RDWR).unwrap();
    c.ioctl(tty, libc::TCGETS, &mut t).unwrap();
    // /dev/stdout duplicates descriptor 1.
    let so = c.open("/dev/stdout", libc::O_WRONLY).unwrap();
    assert_eq!(c.write(so, b"x").unwrap(), 1);
    m.read_exact(&mut b[..1]).unwrap();
    assert_eq!(b[0], b'x');
    // The host descriptor stays blocking: it belongs to the user's shell.
    // SAFETY: plain fcntl on an open descriptor.
    let fl = unsafe { libc::fcntl(slave.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(fl & libc::O_NONBLOCK, 0);
    c.fcntl(0, libc::F_SETFL, libc::O_NONBLOCK as u64).unwrap();
    // SAFETY: as above.
    let fl = unsafe { libc::fcntl(slave.as_raw_fd(), libc::F_GETFL) };
    assert_eq!(fl & libc::O_NONBLOCK, 0);
    assert_eq!(
        c.read(0, &mut b),
        Err(libc::EAGAIN),
        "the DC description is non-blocking"
    );
}

#[test]
fn console_redirected_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::write(dir.path().join("in"), b"from a file\n").unwrap();
    let fds = ConsoleFds {
        input: std::fs::File::open(dir.path().join("in")).unwrap().into(),
        output: std::fs::File::create(&out).unwrap().into(),
        error: std::fs::File::create(dir.path().join("err"))
            .unwrap()
            .into(),
        others: Vec::new(),
        closed: [false; 3],
    };
    let w = World::with_console(Some(fds));
    w.new_proc(ME, true, "/").unwrap();
    let c = w.client(ME, false);
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 239) as u8).collect();
    assert_eq!(c.write(1, &data).unwrap(), data.len());
    assert_eq!(std::fs::read(&out).unwrap(), data);
    assert_eq!(c.read_vec(0, 100).unwrap(), b"from a file\n");
    assert_eq!(c.read_vec(0, 100).unwrap(), b"");
    assert_eq!(c.ioctl(1, libc::TCGETS, &mut [0u8; 64]), Err(libc::ENOTTY));
}

#[test]
fn an_abandoned_deferred_call_is_dropped() {
    let w = World::new();
    let c = w.client(ME, true);
    let (r, wr) = c.pipe2(0);
    // The caller gives up waiting (as after a timeout) and calls again.
    let mut stale = [0u8; 8];
    let mut m = abi::request(
        Call::FsRead,
        &[r as u64, stale.as_mut_ptr() as u64, stale.len() as u64],
    );
    assert!(c
        .ipc
        .sendrec_t(abi::FS, &mut m, Duration::from_millis(100))
        .is_err());
    w.fork_proc(ME, KID, false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let k = w.client(KID, false);
            std::thread::sleep(Duration::from_millis(100));
            k.write(wr, b"fresh").unwrap();
        });
        // Only the new call gets the data (and its own reply).
        assert_eq!(c.read_vec(r, 100).unwrap(), b"fresh");
    });
    assert_eq!(stale, [0u8; 8], "the abandoned buffer was not written");
}

// ------------------------------------------------------------ AF_UNIX sockets

fn sun(path: &[u8]) -> Vec<u8> {
    let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(path);
    v
}

fn sock(c: &Client, ty: i32) -> i32 {
    c.call(Call::FsSocket, &[libc::AF_UNIX as u64, ty as u64, 0, 7])
        .unwrap() as i32
}

fn sockpair(c: &Client, ty: i32) -> (i32, i32) {
    let m = c.req(Call::FsSocketpair, &[libc::AF_UNIX as u64, ty as u64, 0, 7]);
    (abi::result(&m).unwrap() as i32, m.words()[1] as i32)
}

fn sock_addr_call(c: &Client, call: Call, fd: i32, addr: &[u8]) -> Result<i64, i32> {
    c.call(
        call,
        &[fd as u64, addr.as_ptr() as u64, addr.len() as u64, 7],
    )
}

fn accept(c: &Client, fd: i32, flags: i32) -> Result<i32, i32> {
    let mut a = [0u8; 110];
    c.call(
        Call::FsAccept,
        &[
            fd as u64,
            a.as_mut_ptr() as u64,
            a.len() as u64,
            flags as u64,
        ],
    )
    .map(|v| v as i32)
}

fn send(c: &Client, fd: i32, data: &[u8], flags: i32) -> Result<usize, i32> {
    let iov = [data.as_ptr() as u64, data.len() as u64];
    c.call(
        Call::FsSendmsg,
        &[fd as u64, iov.as_ptr() as u64, 1, flags as u64, 0],
    )
    .map(|v| v as usize)
}

/// Receives up to `n` bytes: the bytes, the return value and `msg_flags`.
fn recv(c: &Client, fd: i32, n: usize, flags: i32) -> Result<(Vec<u8>, usize, i32), i32> {
    let mut b = vec![0u8; n];
    let iov = [b.as_mut_ptr() as u64, n as u64];
    let mut aux = [0u64; 7];
    let r = c.call(
        Call::FsRecvmsg,
        &[
            fd as u64,
            iov.as_ptr() as u64,
            1,
            flags as u64,
            aux.as_mut_ptr() as u64,
        ],
    )? as usize;
    b.truncate(r.min(n));
    Ok((b, r, aux[6] as i32))
}

#[test]
fn unix_stream_deferred_accept_recv_and_eof() {
    let w = World::new();
    let c = w.client(ME, true);
    let l = sock(&c, libc::SOCK_STREAM);
    sock_addr_call(&c, Call::FsBind, l, &sun(b"/srv\0")).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(w.host("srv"))
        .unwrap()
        .file_type()
        .is_socket());
    let again = sock(&c, libc::SOCK_STREAM);
    assert_eq!(
        sock_addr_call(&c, Call::FsBind, again, &sun(b"/srv")),
        Err(libc::EADDRINUSE)
    );
    c.call(Call::FsListen, &[l as u64, 4, 7]).unwrap();
    w.fork_proc(ME, KID, false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let k = w.client(KID, false);
            // Deferred until the parent connects.
            let t = Instant::now();
            let a = accept(&k, l, 0).unwrap();
            assert!(t.elapsed() >= Duration::from_millis(50), "accept waited");
            // Deferred until the parent sends.
            let (got, _, _) = recv(&k, a, 100, 0).unwrap();
            assert_eq!(got, b"hello");
            // EOF once the client is closed, then EPIPE on send.
            assert_eq!(recv(&k, a, 100, 0).unwrap().1, 0);
            assert_eq!(send(&k, a, b"x", 0), Err(libc::EPIPE));
        });
        std::thread::sleep(Duration::from_millis(250));
        let cl = sock(&c, libc::SOCK_STREAM);
        sock_addr_call(&c, Call::FsConnect, cl, &sun(b"srv")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(send(&c, cl, b"hello", 0).unwrap(), 5);
        std::thread::sleep(Duration::from_millis(50));
        c.close(cl).unwrap();
        h.join().unwrap();
    });
    // The listener is gone everywhere: the node is stale.
    w.exit_proc(KID);
    c.close(l).unwrap();
    let cl = sock(&c, libc::SOCK_STREAM);
    assert_eq!(
        sock_addr_call(&c, Call::FsConnect, cl, &sun(b"/srv")),
        Err(libc::ECONNREFUSED)
    );
    assert_eq!(
        sock_addr_call(&c, Call::FsConnect, cl, &sun(b"/nothing")),
        Err(libc::ENOENT)
    );
}

#[test]
fn unix_backlog_and_nonblocking_connect() {
    let w = World::new();
    let c = w.client(ME, true);
    let l = sock(&c, libc::SOCK_STREAM);
    let name = sun(b"\0backlog");
    sock_addr_call(&c, Call::FsBind, l, &name).unwrap();
    c.call(Call::FsListen, &[l as u64, 0, 7]).unwrap();
    // Nothing pending and a non-blocking listener: EAGAIN.
    c.fcntl(l, libc::F_SETFL, libc::O_NONBLOCK as u64).unwrap();
    assert_eq!(accept(&c, l, 0), Err(libc::EAGAIN));
    let a = sock(&c, libc::SOCK_STREAM);
    sock_addr_call(&c, Call::FsConnect, a, &name).unwrap();
    let b = sock(&c, libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
    assert_eq!(
        sock_addr_call(&c, Call::FsConnect, b, &name),
        Err(libc::EAGAIN)
    );
    let mut p = [libc::pollfd {
        fd: l,
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(c.poll(&mut p, 0).unwrap(), 1);
    w.fork_proc(ME, KID, false);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let k = w.client(KID, false);
            let d = sock(&k, libc::SOCK_STREAM);
            // Deferred until the parent accepts the first connection.
            let t = Instant::now();
            sock_addr_call(&k, Call::FsConnect, d, &name).unwrap();
            assert!(t.elapsed() >= Duration::from_millis(50), "connect waited");
        });
        std::thread::sleep(Duration::from_millis(250));
        accept(&c, l, 0).unwrap();
        h.join().unwrap();
    });
    accept(&c, l, 0).unwrap();
    assert_eq!(accept(&c, l, 0), Err(libc::EAGAIN));
}

#[test]
fn unix_dgram_boundaries_and_truncation() {
    let w = World::new();
    let c = w.client(ME, true);
    let (a, b) = sockpair(&c, libc::SOCK_DGRAM);
    assert_eq!(send(&c, a, b"abc", 0).unwrap(), 3);
    assert_eq!(send(&c, a, b"defgh", 0).unwrap(), 5);
    assert_eq!(send(&c, a, b"", 0).unwrap(), 0);
    let (got, n, fl) = recv(&c, b, 2, 0).unwrap();
    assert_eq!((got.as_slice(), n, fl), (&b"ab"[..], 2, libc::MSG_TRUNC));
    let (got, n, _) = recv(&c, b, 2, libc::MSG_TRUNC | libc::MSG_PEEK).unwrap();
    assert_eq!((got.as_slice(), n), (&b"de"[..], 5));
    assert_eq!(recv(&c, b, 100, 0).unwrap().0, b"defgh");
    assert_eq!(recv(&c, b, 100, 0).unwrap().1, 0);
    assert_eq!(recv(&c, b, 100, libc::MSG_DONTWAIT), Err(libc::EAGAIN));
    // Stream: bytes coalesce.
    let (x, y) = sockpair(&c, libc::SOCK_STREAM);
    send(&c, x, b"abc", 0).unwrap();
    send(&c, x, b"def", 0).unwrap();
    assert_eq!(recv(&c, y, 100, 0).unwrap().0, b"abcdef");
    c.close(x).unwrap();
    assert_eq!(recv(&c, y, 100, 0).unwrap().1, 0);
    // Closing the receiver: the datagram sender is refused.
    c.close(b).unwrap();
    assert_eq!(send(&c, a, b"x", 0), Err(libc::ECONNREFUSED));
}
