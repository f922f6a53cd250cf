//! A complete single-node M3-IPC session, end to end:
//!
//! 1. starts an embedded node daemon (dvkd) on a private socket, unless
//!    `DVS_SOCKET` points at a running one;
//! 2. creates a DC named `demo`;
//! 3. starts a server process that binds endpoint 1 (a system process) and
//!    answers requests, copying data into its clients with `vcopy`;
//! 4. binds this process as endpoint 100 (a user process), makes 100 000
//!    `sendrec` round trips and one 1 MiB `vcopy`, checks every answer;
//! 5. prints what `dvs status` would show for the DC, and cleans up.
//!
//! Run with `cargo run --release -p dvk --example pingpong`.

use dvk::{DcParams, Dvk, DvsParams, Endpoint, Message};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: Endpoint = Endpoint(1);
const CLIENT: Endpoint = Endpoint(100);
const FILL: i32 = 2;

fn main() {
    if std::env::var_os("PINGPONG_SERVER").is_some() {
        if let Err(e) = server() {
            eprintln!("server: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = client() {
        eprintln!("pingpong: {e}");
        std::process::exit(1);
    }
}

/// Endpoint 1: answers `m_type` 1 with `m1_i1 + 1`, and `FILL` by copying
/// a pattern of `m1_i1` bytes to the client's buffer at `m1_p1`.
fn server() -> dvk::Result<()> {
    let dcid: i32 = std::env::var("PINGPONG_DC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ipc = Dvk::open()?.bind(dcid, SERVER)?;
    loop {
        let mut m = ipc.receive(Endpoint::ANY)?;
        match m.m_type {
            FILL => {
                let data: Vec<u8> = (0..m.m1().i1 as usize).map(|i| (i % 251) as u8).collect();
                ipc.copy_to(m.source(), m.m1().p1, &data)?;
            }
            _ => m.m1_mut().i1 += 1,
        }
        ipc.reply(m.source(), &m)?;
    }
}

fn client() -> Result<(), Box<dyn std::error::Error>> {
    // An embedded daemon, unless one is already running.
    let dir = tempfile::tempdir()?;
    let mut embedded = None;
    let socket = match std::env::var_os("DVS_SOCKET") {
        Some(s) => s.into(),
        None => {
            let socket = dir.path().join("dvkd.sock");
            let cfg = dvk::daemon::Config {
                socket: socket.clone(),
                init: Some((0, DvsParams::default())),
            };
            let daemon = dvk::daemon::Daemon::bind(&cfg)?;
            let stop = daemon.stopper();
            embedded = Some((stop, std::thread::spawn(move || daemon.run())));
            println!("started an embedded node daemon on {}", socket.display());
            socket
        }
    };
    let dvk = Dvk::connect(&socket)?;
    let info = dvk.getdvsinfo()?;
    let dcid = (0..info.params.nr_dcs)
        .find(|&d| dvk.getdcinfo(d).is_err())
        .ok_or("no free DC id")?;
    dvk.dc_init(&DcParams::new(dcid, "demo", &info.params))?;
    println!("DC {dcid} 'demo' on node {}", info.node);

    let mut server = Command::new(std::env::current_exe()?)
        .env("PINGPONG_SERVER", "1")
        .env("PINGPONG_DC", dcid.to_string())
        .env("DVS_SOCKET", &socket)
        .stdin(Stdio::null())
        .spawn()?;
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        dvk.wait4bindep(dcid, SERVER, Some(Duration::from_secs(10)))?;
        let me = Dvk::connect(&socket)?.bind(dcid, CLIENT)?;

        let n = 100_000;
        let t = Instant::now();
        let mut m = Message::new(1);
        for i in 0..n {
            m.m1_mut().i1 = i;
            me.sendrec(SERVER, &mut m)?;
            if m.m1().i1 != i + 1 || m.source() != SERVER {
                return Err("wrong reply".into());
            }
        }
        let dt = t.elapsed();
        println!(
            "{n} sendrec round trips in {:.3} s: {:.2} us each, {:.0} per second",
            dt.as_secs_f64(),
            dt.as_secs_f64() * 1e6 / n as f64,
            n as f64 / dt.as_secs_f64()
        );

        let len = info.params.max_copylen as usize;
        let buf = vec![0u8; len];
        let mut m = Message::new(FILL);
        m.m1_mut().i1 = len as i32;
        m.m1_mut().p1 = buf.as_ptr() as u64;
        let t = Instant::now();
        me.sendrec(SERVER, &mut m)?;
        let dt = t.elapsed();
        let buf = std::hint::black_box(buf);
        if buf.iter().enumerate().any(|(i, &b)| b != (i % 251) as u8) {
            return Err("vcopy delivered wrong data".into());
        }
        println!(
            "vcopy of {} KiB into this process in {:.1} us",
            len / 1024,
            dt.as_secs_f64() * 1e6
        );

        let st = dvk.status()?;
        if let Some(dc) = st.dcs.iter().find(|d| d.info.params.dcid == dcid) {
            println!(
                "\n{:>4} {:>6} {:>6} {:>7} {:>8} {:>6}  name",
                "p_nr", "endp", "lpid", "state", "lsnt", "lcopy"
            );
            for p in &dc.procs {
                println!(
                    "{:>4} {:>6} {:>6} {:>7} {:>8} {:>6}  {}",
                    p.p_nr, p.endpoint, p.lpid, p.state, p.lsnt, p.lcopy, p.name
                );
            }
            println!("DC stats: lsnt {} lcopy {}", dc.stats.lsnt, dc.stats.lcopy);
        }
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    let _ = dvk.dc_end(dcid);
    if let Some((stop, t)) = embedded {
        stop();
        let _ = t.join();
    }
    result
}
