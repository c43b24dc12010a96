//! Validation speed at scale, as a ratio to a baseline in the same run.
//!
//! The baseline is the YAML event parser alone on the same text: the least
//! any loader must do. The figure that matters is the full pipeline (parse,
//! schema, resolve, cycles) on a 2,000-node, 50-network lab, and its ratio
//! to the baseline, which does not depend on the machine's speed.
//!
//! Run: `cargo bench --bench validate`

use std::path::Path;
use std::time::{Duration, Instant};

use benchscale::synth::{Shape, topology};
use benchscale::topology::{AnyFile, load_str};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm up caches and the schema's one-time compilation
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    println!("| nodes | networks | bytes | parse only | validate | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (nodes, networks, runs) in [(100, 4, 21), (2000, 50, 11), (10_000, 50, 5)] {
        let text = topology(&Shape::containers("bench", nodes, networks));
        let parse = time(runs, || {
            for event in saphyr_parser::Parser::new_from_str(&text) {
                std::hint::black_box(event.is_ok());
            }
        });
        let validate = time(runs, || {
            let result = load_str(Path::new("bench.yaml"), &text, &AnyFile);
            assert!(result.is_ok(), "generated topology must validate");
            std::hint::black_box(result.is_ok());
        });
        println!(
            "| {nodes} | {networks} | {} | {:.1} ms | {:.1} ms | {:.2} |",
            text.len(),
            parse.as_secs_f64() * 1e3,
            validate.as_secs_f64() * 1e3,
            validate.as_secs_f64() / parse.as_secs_f64()
        );
    }
}
