//! Simulation of SLOTS (`mol_servers::slots`) with the seed thesis's
//! parameters (§5.2, Table XII): 32 nodes, 768 slots, `FREE_LOW` 4, fork
//! requests arriving at each node as a Poisson process of rate
//! 0.5 ≤ λi ≤ 0.8 per round, lifetimes drawn from an inverse Gaussian of
//! mean 1 ≤ μi ≤ 100 rounds, λi and μi drawn again every 10 000 rounds.
//!
//! The group communication system is a sequencer: what members multicast
//! in round r is delivered to every member, in one total order, at the
//! start of round r + 1 (one Δmcast = one round). A fork that finds no free
//! slot on its node fails (the thesis's non-blocking variant).
//!
//! Prints forks per multicast, failed per successful fork and utilisation,
//! beside the seed's figures (11.45 / 0.17 / 73 %). Deterministic for a
//! given `--seed`.
//!
//! Usage: `cargo run --release -p dvs-bench --bin slots-sim [-- --rounds N --seed S]`

use mol_servers::slots::{Member, Msg, NodeId, Params, Policy};
use std::collections::BinaryHeap;

const NODES: usize = 32;
const SLOTS: usize = 768;
const FREE_LOW: usize = 4;
const PHASE: u64 = 10_000;

/// xorshift64* : small, deterministic, good enough for a workload.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    /// Poisson(λ) by inversion (λ < 1 here).
    fn poisson(&mut self, lambda: f64) -> u32 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.f64();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(f64::MIN_POSITIVE);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Inverse Gaussian of mean `mu` and shape `shape`
    /// (Michael, Schucany and Haas).
    fn inverse_gaussian(&mut self, mu: f64, shape: f64) -> f64 {
        let n = self.normal();
        let y = n * n;
        let x = mu + mu * mu * y / (2.0 * shape)
            - mu / (2.0 * shape) * (4.0 * mu * shape * y + mu * mu * y * y).sqrt();
        if self.f64() <= mu / (mu + x) {
            x
        } else {
            mu * mu / x
        }
    }
}

struct Args {
    rounds: u64,
    seed: u64,
    warmup: u64,
    mu_max: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        rounds: 200_000,
        seed: 1,
        warmup: 10_000,
        mu_max: 100.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{k} needs a number"))
        };
        match k.as_str() {
            "--rounds" => a.rounds = v()?,
            "--seed" => a.seed = v()?.max(1),
            "--warmup" => a.warmup = v()?,
            "--mu-max" => a.mu_max = v()?.max(2) as f64,
            "-h" | "--help" => {
                println!("usage: slots-sim [--rounds N] [--seed S] [--warmup N] [--mu-max ROUNDS]");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.warmup >= a.rounds {
        return Err("--warmup must be smaller than --rounds".into());
    }
    Ok(a)
}

/// What one simulated run measured.
struct Outcome {
    ok: u64,
    failed: u64,
    requests: u64,
    donations: u64,
    util: f64,
}

impl Outcome {
    fn per_mcast(&self) -> f64 {
        self.ok as f64 / (self.requests + self.donations).max(1) as f64
    }
    fn fail_ratio(&self) -> f64 {
        self.failed as f64 / self.ok.max(1) as f64
    }
}

/// Runs the workload of seed `a.seed` with `policy`; the workload (arrivals,
/// lifetimes) is the same for every policy.
fn simulate(a: &Args, policy: Policy) -> Result<Outcome, String> {
    let params = Params {
        policy,
        nr_slots: SLOTS,
        free_low: FREE_LOW,
        retry_rounds: 4,
    };
    let ids: Vec<NodeId> = (0..NODES as NodeId).collect();
    let mut members: Vec<Member> = ids.iter().map(|&i| Member::new(i, params, &ids)).collect();
    let mut rng = Rng(a.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut life_rng = Rng(a.seed.wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1);
    let mut lambda = [0.0; NODES];
    let mut mu = [0.0; NODES];
    // Exits: (round, node, slot), earliest first.
    let mut exits: BinaryHeap<std::cmp::Reverse<(u64, usize, u32)>> = BinaryHeap::new();
    let mut in_flight: Vec<Msg> = Vec::new();
    let (mut ok, mut failed, mut used_sum, mut in_use) = (0u64, 0u64, 0f64, 0usize);
    let (mut requests, mut donations) = (0u64, 0u64);
    for round in 0..a.rounds {
        if round.is_multiple_of(PHASE) {
            for n in 0..NODES {
                lambda[n] = rng.uniform(0.5, 0.8);
                mu[n] = rng.uniform(1.0, a.mu_max);
            }
        }
        let measuring = round >= a.warmup;
        // Deliveries of last round's multicasts, in one total order.
        let mut out = Vec::new();
        for msg in std::mem::take(&mut in_flight) {
            for m in members.iter_mut() {
                out.extend(m.deliver(&msg));
            }
        }
        // Exits due now.
        while let Some(std::cmp::Reverse((t, n, s))) = exits.peek().copied() {
            if t > round {
                break;
            }
            exits.pop();
            members[n].release(s);
            in_use -= 1;
        }
        // Forks: the arrivals and lifetimes do not depend on the policy.
        for n in 0..NODES {
            out.extend(members[n].tick(round));
            for _ in 0..rng.poisson(lambda[n]) {
                let life = life_rng.inverse_gaussian(mu[n], mu[n]).ceil().max(1.0) as u64;
                let (slot, req) = members[n].alloc();
                out.extend(req);
                match slot {
                    Some(s) => {
                        exits.push(std::cmp::Reverse((round + life, n, s)));
                        in_use += 1;
                        if measuring {
                            ok += 1;
                        }
                    }
                    None if measuring => failed += 1,
                    None => {}
                }
            }
        }
        if measuring {
            for m in &out {
                match m {
                    Msg::Request { .. } => requests += 1,
                    Msg::Donate { .. } => donations += 1,
                }
            }
            used_sum += in_use as f64 / SLOTS as f64;
        }
        in_flight = out;
    }
    // The replicas must agree, and no slot may be lost.
    let owned: usize = members.iter().map(Member::owned_count).sum();
    let agree = (0..SLOTS as u32).all(|s| {
        members
            .iter()
            .all(|m| m.owner_of(s) == members[0].owner_of(s))
    });
    if !agree || owned != SLOTS {
        return Err(format!(
            "{policy:?}: replicas disagree or slots were lost (owned {owned} of {SLOTS})"
        ));
    }
    Ok(Outcome {
        ok,
        failed,
        requests,
        donations,
        util: 100.0 * used_sum / (a.rounds - a.warmup) as f64,
    })
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("slots-sim: {e}");
            std::process::exit(2);
        }
    };
    let run = |p| {
        simulate(&a, p).unwrap_or_else(|e| {
            eprintln!("slots-sim: {e}");
            std::process::exit(1);
        })
    };
    let base = run(Policy::EveryMember);
    let ours = run(Policy::Surplus);
    println!(
        "SLOTS simulation: {NODES} nodes, {SLOTS} slots, FREE_LOW {FREE_LOW}, lambda 0.5..0.8, \
         mean lifetime 1..{} rounds, {} rounds measured after {} of warm-up, seed {}",
        a.mu_max,
        a.rounds - a.warmup,
        a.warmup,
        a.seed
    );
    println!("                        dvs   seed policy   seed (thesis, its own workload)");
    println!(
        "forks per multicast   {:>6.2}   {:>11.2}   11.45",
        ours.per_mcast(),
        base.per_mcast()
    );
    println!(
        "failed / successful   {:>6.3}   {:>11.3}    0.17",
        ours.fail_ratio(),
        base.fail_ratio()
    );
    println!(
        "utilisation [%]       {:>6.1}   {:>11.1}   73",
        ours.util, base.util
    );
    for (name, o) in [("dvs", &ours), ("seed policy", &base)] {
        println!(
            "{name}: {} successful forks, {} failed, {} requests, {} donations",
            o.ok, o.failed, o.requests, o.donations
        );
    }
    let goal = ours.per_mcast() >= 20.0 && ours.fail_ratio() <= base.fail_ratio();
    println!(
        "GOAL forks-per-multicast>=20-without-more-failures {} ({:.2} per multicast, \
         failed/successful {:.3} vs {:.3} for the seed policy)",
        if goal { "PASS" } else { "FAIL" },
        ours.per_mcast(),
        ours.fail_ratio(),
        base.fail_ratio()
    );
}
