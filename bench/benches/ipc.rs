//! Criterion benchmarks of M3-IPC on one node, each next to its baseline
//! measured in the same run:
//!
//! * `roundtrip/*`: a 64-byte request/reply between two processes:
//!   `sendrec` against `receive`+`reply`, pipe ping-pong, UNIX-socket
//!   ping-pong.
//! * `copy64k/*`: `vcopy` of 64 KiB out of a blocked process, against
//!   `memcpy` of 64 KiB inside one process.
//! * `two_pairs/*`: two client/server pairs at once (this machine has two
//!   cores), M3-IPC against pipes; throughput is counted per round trip.

use criterion::{criterion_group, Criterion, Throughput};
use dvs_bench::{memcpy_run, CopyPair, FdPair, Node, SendrecPair, CLIENT, COPY, SERVER};
use std::time::Duration;

fn roundtrip(c: &mut Criterion) {
    let node = Node::start().expect("node");
    let mut g = c.benchmark_group("roundtrip");
    g.throughput(Throughput::Elements(1));
    {
        let pair = SendrecPair::new(&node, SERVER, CLIENT).expect("sendrec pair");
        g.bench_function("sendrec", |b| {
            b.iter_custom(|n| pair.run(n).expect("sendrec"))
        });
    }
    let mut pipe = FdPair::pipes().expect("pipes");
    g.bench_function("pipe", |b| b.iter_custom(|n| pipe.run(n).expect("pipe")));
    let mut unix = FdPair::unix().expect("unix");
    g.bench_function("unix_socket", |b| {
        b.iter_custom(|n| unix.run(n).expect("unix"))
    });
    g.finish();
}

fn copy64k(c: &mut Criterion) {
    let node = Node::start().expect("node");
    let mut g = c.benchmark_group("copy64k");
    g.throughput(Throughput::Bytes(COPY as u64));
    let mut cp = CopyPair::new(&node, CLIENT).expect("copy pair");
    g.bench_function("vcopy", |b| b.iter_custom(|n| cp.run(n).expect("vcopy")));
    g.bench_function("memcpy", |b| b.iter_custom(memcpy_run));
    g.finish();
}

/// Runs `f(pair_index, iters)` on two threads at once; returns the wall time.
fn concurrently(iters: u64, f: impl Fn(usize, u64) -> Duration + Sync) -> Duration {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|i| {
                s.spawn({
                    let f = &f;
                    move || f(i, iters)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("pair thread"))
            .max()
            .unwrap_or_default()
    })
}

fn two_pairs(c: &mut Criterion) {
    let node = Node::start().expect("node");
    let mut g = c.benchmark_group("two_pairs");
    g.throughput(Throughput::Elements(2));
    g.bench_function("sendrec", |b| {
        b.iter_custom(|n| {
            concurrently(n, |i, n| {
                let ep = i as i32;
                let pair = SendrecPair::new(&node, SERVER + ep, CLIENT + ep).expect("pair");
                pair.run(n).expect("sendrec")
            })
        })
    });
    g.bench_function("pipe", |b| {
        b.iter_custom(|n| {
            concurrently(n, |_, n| {
                FdPair::pipes().expect("pipes").run(n).expect("pipe")
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = roundtrip, copy64k, two_pairs
}

fn main() {
    dvs_bench::run_role_if_asked();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
