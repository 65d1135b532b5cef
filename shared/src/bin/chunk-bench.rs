//! Chunking throughput: chunks every page of the aws-docs-qa corpus (2.5 MB of Markdown, many
//! tables) with the default settings, five times over, on one thread, and prints MB/s.
//!
//! ```text
//! cargo run --release -p chatpad-shared --bin chatpad-chunk-bench -- [--evalset DIR]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chatpad::knowledge::chunk::{ChunkSettings, chunk};
use chatpad::knowledge::{Extracted, Part};

const ROUNDS: usize = 5;

fn main() -> anyhow::Result<()> {
    let mut evalset = std::env::var("CHATPAD_EVALSET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/evalsets/aws-docs-qa"
            ))
        });
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--evalset" => evalset = PathBuf::from(args.next().context("--evalset DIR")?),
            other => anyhow::bail!("unknown argument {other}; usage: [--evalset DIR]"),
        }
    }
    let path = evalset.join("corpus.jsonl");
    let corpus =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut docs = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let page: serde_json::Value = serde_json::from_str(line)?;
        docs.push(Extracted {
            title: page["title"].as_str().map(str::to_owned),
            parts: vec![Part {
                markdown: page["text"].as_str().unwrap_or_default().to_owned(),
                location: Default::default(),
            }],
        });
    }
    let bytes: usize = docs
        .iter()
        .flat_map(|d| &d.parts)
        .map(|p| p.markdown.len())
        .sum();

    let settings = ChunkSettings::default();
    let mut best = f64::MAX;
    let mut chunks = 0;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        chunks = docs
            .iter()
            .map(|d| chunk(d, &settings).len())
            .sum::<usize>();
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "chunking: {} pages, {:.2} MB -> {chunks} chunks of <= {} tokens in {:.1} ms: {:.0} MB/s on one core (best of {ROUNDS})",
        docs.len(),
        bytes as f64 / 1e6,
        settings.size_tokens,
        best * 1e3,
        bytes as f64 / best / 1e6
    );
    Ok(())
}
