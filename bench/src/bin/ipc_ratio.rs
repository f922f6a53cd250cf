//! Quick check of M3-IPC against its baselines, measured in the same run.
//!
//! Prints exactly two lines on stdout (medians of several runs):
//!
//! ```text
//! sendrec_vs_pipe <M3-IPC round trips/s ÷ pipe round trips/s>
//! vcopy64k_vs_memcpy <vcopy 64 KiB bandwidth ÷ memcpy 64 KiB bandwidth>
//! ```
//!
//! Details of each run go to stderr.

use anyhow::Result;
use dvs_bench::{median, memcpy_run, rate, CopyPair, FdPair, Node, SendrecPair, CLIENT, SERVER};

const RUNS: usize = 7;
const RT_ITERS: u64 = 20_000;
const COPY_ITERS: u64 = 20_000;

fn main() {
    dvs_bench::run_role_if_asked();
    if let Err(e) = run() {
        eprintln!("ipc-ratio: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let node = Node::start()?;
    // Round trips: alternate the mechanisms run by run.
    let ratios = {
        let pair = SendrecPair::new(&node, SERVER, CLIENT)?;
        let mut pipe = FdPair::pipes()?;
        pair.run(2_000)?;
        pipe.run(2_000)?;
        let mut ratios = Vec::new();
        for i in 0..RUNS {
            let m3 = rate(RT_ITERS, pair.run(RT_ITERS)?);
            let p = rate(RT_ITERS, pipe.run(RT_ITERS)?);
            eprintln!("run {i}: sendrec {m3:.0} rt/s, pipe {p:.0} rt/s");
            ratios.push(m3 / p);
        }
        ratios
    };
    let copy_ratios = {
        let mut cp = CopyPair::new(&node, CLIENT + 1)?;
        cp.run(1_000)?;
        memcpy_run(1_000);
        let mut ratios = Vec::new();
        for i in 0..RUNS {
            let v = rate(COPY_ITERS, cp.run(COPY_ITERS)?);
            let m = rate(COPY_ITERS, memcpy_run(COPY_ITERS));
            eprintln!(
                "run {i}: vcopy {:.2} GB/s, memcpy {:.2} GB/s",
                v * 65536.0 / 1e9,
                m * 65536.0 / 1e9
            );
            ratios.push(v / m);
        }
        ratios
    };
    println!("sendrec_vs_pipe {:.3}", median(ratios));
    println!("vcopy64k_vs_memcpy {:.3}", median(copy_ratios));
    Ok(())
}
