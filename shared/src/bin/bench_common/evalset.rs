//! The aws-docs-qa evalset as benchmarks read it (`corpus.jsonl`, `questions.jsonl`).

use std::path::Path;

use anyhow::Context;
use chatpad::knowledge::chunk::{ChunkSettings, chunk};
use chatpad::knowledge::{Extracted, Part};

/// The aws-docs-qa pages' chunks at the default settings, and the questions.
pub fn texts(evalset: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let corpus = std::fs::read_to_string(evalset.join("corpus.jsonl"))
        .with_context(|| format!("reading {}/corpus.jsonl", evalset.display()))?;
    let mut chunks = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let page: serde_json::Value = serde_json::from_str(line)?;
        let doc = Extracted {
            title: page["title"].as_str().map(str::to_owned),
            parts: vec![Part {
                markdown: page["text"].as_str().unwrap_or_default().to_owned(),
                location: Default::default(),
            }],
        };
        chunks.extend(
            chunk(&doc, &ChunkSettings::default())
                .into_iter()
                .map(|c| c.content),
        );
    }
    let questions = std::fs::read_to_string(evalset.join("questions.jsonl"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let q: serde_json::Value = serde_json::from_str(l)?;
            Ok(q["question"].as_str().unwrap_or_default().to_owned())
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((chunks, questions))
}
