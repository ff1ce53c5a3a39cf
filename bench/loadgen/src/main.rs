//! flightdeck's benchmark load generator. Each subcommand runs one benchmark against the real
//! release binary (started here on a free loopback port with its own data dir) and writes its
//! raw numbers as one JSON object to `--out FILE`; `report` turns those files into
//! `results.md` and `results.json`. `bench/run` drives it all.

mod bench;
mod http;
mod memory;
mod report;
mod runners;
mod scale_report;
mod scale_sizes;
mod server;
mod stats;

use std::collections::HashMap;
use std::path::PathBuf;

pub struct Args {
    map: HashMap<String, String>,
}

impl Args {
    fn parse(raw: &[String]) -> Args {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < raw.len() {
            let key = raw[i].strip_prefix("--").unwrap_or_else(|| {
                eprintln!("unexpected argument {:?}", raw[i]);
                std::process::exit(2)
            });
            let value = raw.get(i + 1).cloned().unwrap_or_default();
            map.insert(key.to_string(), value);
            i += 2;
        }
        Args { map }
    }

    pub fn str(&self, key: &str) -> String {
        self.map.get(key).cloned().unwrap_or_else(|| {
            eprintln!("missing --{key}");
            std::process::exit(2)
        })
    }

    pub fn str_or(&self, key: &str, default: &str) -> String {
        self.map
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    pub fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.str(key))
    }

    pub fn usize_or(&self, key: &str, default: usize) -> usize {
        match self.map.get(key) {
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("--{key} wants a number, got {v:?}");
                std::process::exit(2)
            }),
            None => default,
        }
    }

    pub fn list(&self, key: &str) -> Vec<usize> {
        self.str(key)
            .split(',')
            .map(|v| v.trim().parse().expect("a comma-separated list of numbers"))
            .collect()
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!(
            "usage: loadgen enqueue|claim|floor|dispatch|events|scale|scale-sizes|runners-dispatch|runners-leases|memory-output|memory-ws|pgbench-summary|median|report --out FILE [options]"
        );
        std::process::exit(2);
    };
    let args = Args::parse(rest);
    let out = match cmd.as_str() {
        "enqueue" => bench::enqueue_bench(&args),
        "claim" => bench::claim_bench(&args),
        "floor" => bench::floor_bench(&args),
        "dispatch" => bench::dispatch_bench(&args),
        "events" => bench::events_bench(&args),
        "scale" => bench::scale_bench(&args),
        "scale-sizes" => scale_sizes::sizes_bench(&args),
        "runners-dispatch" => runners::dispatch_bench(&args),
        "runners-leases" => runners::leases_bench(&args),
        "memory-output" => memory::output_bench(&args),
        "memory-ws" => memory::ws_idle_bench(&args),
        "pgbench-summary" => bench::pgbench_summary(&args),
        "median" => bench::median(&args),
        "report" => {
            report::report(&args);
            return;
        }
        other => {
            eprintln!("unknown subcommand {other:?}");
            std::process::exit(2);
        }
    };
    let text = serde_json::to_string_pretty(&out).expect("json");
    match args.map.get("out") {
        Some(path) => std::fs::write(path, text + "\n").expect("write --out"),
        None => println!("{text}"),
    }
}
