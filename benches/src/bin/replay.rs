//! Replays `bench_python.py`'s workload through pw-cache and prints one JSON line per
//! (configuration, phase). Run it through `cargo xtask bench`, which builds it in release.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use pw_cache_benches::replay::{self, Emitter, ReplayOptions};

/// Replays proxywhirl's benchmark workload through pw-cache.
#[derive(Debug, Parser)]
struct Args {
    /// Sizes every configuration runs at (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sizes: Vec<usize>,
    /// Extra sizes for the SQLite configurations (comma separated; 0 = none).
    #[arg(long, value_delimiter = ',', default_value = "100000")]
    big: Vec<usize>,
    /// Parent of the temporary cache directories (/dev/shm = tmpfs, as the reference's default).
    #[arg(long, default_value = "/dev/shm")]
    dir: PathBuf,
    /// Seconds a phase may run before it is cut (the rest of a cut put phase is loaded untimed).
    #[arg(long, default_value_t = 120.0)]
    cap: f64,
    /// Only these configurations (comma separated: tier_memory, tier_jsonl, tier_sqlite_l2,
    /// tier_sqlite_l3, manager_jsonl, manager_sqlite, floor_io, floor_full, manager_redis).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Instead of the phases: fill an L1 tier with this many entries and print its resident
    /// memory per entry.
    #[arg(long)]
    l1_memory: Option<usize>,
    /// Also run `manager_redis` (JSONL and SQLite L2, L3 in a redis-server this starts on
    /// 127.0.0.1) at every size of --sizes.
    #[arg(long)]
    redis: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(n) = args.l1_memory {
        let bytes = replay::l1_bytes_per_entry(n)?;
        println!(
            "{}",
            serde_json::json!({"impl": replay::IMPL, "phase": "l1_memory", "n": n, "bytes_per_entry": bytes.round()})
        );
        return Ok(());
    }
    let options = ReplayOptions {
        sizes: args.sizes.into_iter().filter(|&n| n > 0).collect(),
        big: args.big.into_iter().filter(|&n| n > 0).collect(),
        dir: args.dir.clone(),
        cap: Duration::try_from_secs_f64(args.cap).map_err(|e| anyhow::anyhow!("--cap {}: {e}", args.cap))?,
        only: args.only,
        redis: args.redis,
    };
    let mut stdout = std::io::stdout().lock();
    let mut emitter = Emitter::new(&mut stdout, &args.dir);
    replay::run(&options, &mut emitter)
}
