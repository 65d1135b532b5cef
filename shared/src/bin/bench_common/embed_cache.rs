//! An embedding cache for the benchmarks (`--cache FILE`, kept outside the repository): each
//! text's all-MiniLM-L6-v2 vector under a hash of the text, so any run (any chunk size, either
//! benchmark) embeds only the texts no run embedded before.
//!
//! File format: records of a 64-bit SipHash of the text (little-endian) followed by the 384
//! little-endian f32s of its vector; new records are appended.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chatpad::embeddings::LocalMiniLm;

const DIMS: usize = LocalMiniLm::DIMENSIONS;
const RECORD: usize = 8 + DIMS * 4;

fn key(text: &str) -> u64 {
    // SipHash with fixed keys: stable across runs of the same build.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn load(path: &Path) -> HashMap<u64, Vec<f32>> {
    let Ok(bytes) = std::fs::read(path) else {
        return HashMap::new();
    };
    bytes
        .chunks_exact(RECORD)
        .map(|r| {
            let (head, body) = r.split_at(8);
            let vector = body
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (
                u64::from_le_bytes(head.try_into().unwrap_or_default()),
                vector,
            )
        })
        .collect()
}

/// Adds the vectors of `texts` to the cache file.
pub fn append(path: &Path, texts: &[&str], vectors: &[Vec<f32>]) -> anyhow::Result<()> {
    let mut bytes = Vec::with_capacity(texts.len() * RECORD);
    for (text, vector) in texts.iter().zip(vectors) {
        bytes.extend_from_slice(&key(text).to_le_bytes());
        vector
            .iter()
            .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .with_context(|| format!("writing {}", path.display()))
}

/// The vectors of `texts`, in order: from the cache when it has them, the others embedded
/// (and appended to the cache).
pub fn embed(
    model: &LocalMiniLm,
    texts: &[&str],
    cache: Option<&Path>,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut known = cache.map(load).unwrap_or_default();
    let mut missing: Vec<&str> = texts
        .iter()
        .copied()
        .filter(|t| !known.contains_key(&key(t)))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        let started = Instant::now();
        let vectors = model.embed_blocking(&missing)?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "embedding: {} texts in {secs:.1} s = {:.1} texts/s ({} from the cache)",
            missing.len(),
            missing.len() as f64 / secs,
            texts.len() - missing.len()
        );
        if let Some(path) = cache {
            append(path, &missing, &vectors)?;
        }
        for (text, vector) in missing.iter().zip(vectors) {
            known.insert(key(text), vector);
        }
    } else {
        println!("embedding: {} texts, all from the cache", texts.len());
    }
    texts
        .iter()
        .map(|t| known.get(&key(t)).cloned().context("an embedded text"))
        .collect()
}
