//! The model itself: the fast forward pass against candle-transformers' `BertModel`, packing
//! without padding, truncation at 256 tokens, and file errors. Needs the real weights: set
//! `EMBEDDING_MODEL_DIR` (the local stack writes it to `.local/env`, which is read as a
//! fallback).

use std::path::PathBuf;

use chatpad_minilm::{Error, MiniLm};

fn model_dir() -> PathBuf {
    let from_env_file = || {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.local/env");
        let text = std::fs::read_to_string(path).ok()?;
        text.lines().find_map(|line| {
            let value = line.strip_prefix("EMBEDDING_MODEL_DIR=")?;
            Some(value.trim().trim_matches('"').to_owned())
        })
    };
    std::env::var("EMBEDDING_MODEL_DIR")
        .ok()
        .or_else(from_env_file)
        .map(PathBuf::from)
        .expect(
            "EMBEDDING_MODEL_DIR is not set: point it at all-MiniLM-L6-v2's folder \
             (the bootstrap installs it; `make test` sets it)",
        )
}

fn model() -> MiniLm {
    MiniLm::load(model_dir()).unwrap()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Whether `text` embedded alone goes through AMX's bf16 tiles: its vector then differs from
/// the f16 weights' by bf16 rounding, not only float rounding.
fn in_bf16_alone(model: &MiniLm, text: &str) -> bool {
    chatpad_minilm::short_input_kernel() == "amx-bf16"
        && model.count_tokens(text).unwrap() <= chatpad_minilm::SHORT_INPUT_TOKENS
}

/// Asserts that `alone`, `text`'s vector embedded alone, is `reference` up to `tolerance` per
/// dimension — or, on the AMX path, up to bf16 rounding (measured on the evalset's 100
/// questions: ≤ 9.5e-4 per dimension, cosine ≥ 0.999988).
fn assert_alone_matches(
    model: &MiniLm,
    text: &str,
    alone: &[f32],
    reference: &[f32],
    tolerance: f32,
) {
    let (diff, cosine) = (max_abs_diff(alone, reference), cosine(alone, reference));
    let ok = if in_bf16_alone(model, text) {
        diff < 2e-3 && cosine > 0.99995
    } else {
        diff < tolerance
    };
    assert!(ok, "{text:?} alone: diff {diff}, cosine {cosine}");
}

/// A long English text: `sentences` sentences of about 12 tokens each.
fn long_text(sentences: usize) -> String {
    (0..sentences)
        .map(|i| format!("Paragraph {i} explains how invoices are emailed to the account owner."))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn padding_in_a_batch_does_not_change_a_vector_and_order_is_kept() {
    let model = model();
    let short = "How do I export my conversations?";
    let alone = model.embed(&[short]).unwrap().remove(0);

    // In a batch with much longer texts the short one is padded; masking must hide that.
    let batch = vec![
        long_text(8),
        short.to_owned(),
        long_text(15),
        "Refunds take five days.".to_owned(),
    ];
    let vectors = model.embed(&batch).unwrap();
    assert_alone_matches(&model, short, &alone, &vectors[1], 1e-4);

    // Each text of a shuffled batch gets its own vector back, in input order.
    let singles: Vec<Vec<f32>> = {
        let mut out = Vec::new();
        for text in &batch {
            out.push(model.embed(std::slice::from_ref(text)).unwrap().remove(0));
        }
        out
    };
    let shuffled_order = [2, 0, 3, 1];
    let shuffled: Vec<String> = shuffled_order.iter().map(|&i| batch[i].clone()).collect();
    let vectors = model.embed(&shuffled).unwrap();
    for (position, &original) in shuffled_order.iter().enumerate() {
        let text = &batch[original];
        assert_alone_matches(&model, text, &singles[original], &vectors[position], 1e-4);
    }
}

#[test]
fn long_texts_are_truncated_at_256_tokens_and_empty_batches_are_empty() {
    let model = model();
    let long = long_text(25);
    let tokens = model.count_tokens(&long).unwrap();
    assert!(tokens > 300, "only {tokens} tokens");

    // Anything past token 256 is cut, so appending to a long text changes nothing…
    let longer = format!("{long} But this sentence about the weather is past the limit.");
    let vectors = model.embed(&[long.clone(), longer]).unwrap();
    assert_eq!(vectors[0].len(), 384);
    assert!((norm(&vectors[0]) - 1.0).abs() < 1e-4);
    assert!(max_abs_diff(&vectors[0], &vectors[1]) < 1e-5);

    // …while a text of 200 tokens is not cut (the shipped tokenizer would stop at 128).
    let medium = long_text(16);
    let medium_tokens = model.count_tokens(&medium).unwrap();
    assert!((150..256).contains(&medium_tokens), "{medium_tokens}");
    let with_tail = format!("{medium} Weather in Paris.");
    let vectors = model.embed(&[medium, with_tail]).unwrap();
    assert!(max_abs_diff(&vectors[0], &vectors[1]) > 1e-3);

    assert!(model.embed::<&str>(&[]).unwrap().is_empty());
}

/// How the reference model holds the encoder's matrix weights.
#[derive(Clone, Copy)]
enum Precision {
    /// As stored in `model.safetensors`.
    Full,
    /// Rounded to f16, as the fast forward pass keeps them.
    Half,
}

/// sentence-transformers' recipe on candle-transformers' `BertModel`, one text at a time (no
/// padding involved): the reference the fast forward pass must reproduce.
fn reference_embedding(text: &str, precision: Precision) -> Vec<f32> {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::{BertModel, Config};

    let dir = model_dir();
    let config: Config =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: 256,
            ..Default::default()
        }))
        .unwrap();
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let mut tensors = candle_core::safetensors::load_buffer(&weights, &Device::Cpu).unwrap();
    if let Precision::Half = precision {
        for (name, tensor) in tensors.iter_mut() {
            // The linear layers' weights; not the embeddings, biases or LayerNorms.
            if name.contains("encoder.layer.") && tensor.rank() == 2 {
                *tensor = tensor.to_dtype(DType::F16).unwrap();
            }
        }
    }
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let model = BertModel::load(vb, &config).unwrap();

    let ids = tokenizer.encode(text, true).unwrap().get_ids().to_vec();
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let hidden = model
        .forward(&ids, &ids.zeros_like().unwrap(), None)
        .unwrap();
    let mean = hidden.mean(1).unwrap().squeeze(0).unwrap();
    let mean = mean.to_vec1::<f32>().unwrap();
    let n = norm(&mean);
    mean.iter().map(|x| x / n).collect()
}

#[test]
fn the_fast_forward_pass_matches_candle_transformers_bert() {
    let model = model();
    let texts = vec![
        "change my password".to_owned(),
        long_text(30),
        "Où est la gare ? 東京 🚀".to_owned(),
        String::new(),
    ];
    // Together (gemm) and one by one (a short text takes the short-input kernel).
    let batched = model.embed(&texts).unwrap();
    for (text, together) in texts.iter().zip(&batched) {
        let reference = reference_embedding(text, Precision::Half);
        let diff = max_abs_diff(together, &reference);
        assert!(diff < 1e-4, "{text:?} in the batch: diff {diff}");
        let alone = model.embed(std::slice::from_ref(text)).unwrap().remove(0);
        assert_alone_matches(&model, text, &alone, &reference, 1e-4);
    }
}

#[test]
fn half_precision_weights_barely_move_a_vector() {
    let model = model();
    for text in [
        "change my password",
        &long_text(30),
        "Où est la gare ? 東京 🚀",
    ] {
        let fast = model.embed(&[text]).unwrap().remove(0);
        let full = reference_embedding(text, Precision::Full);
        let (cosine, diff) = (cosine(&fast, &full), max_abs_diff(&fast, &full));
        assert!(
            cosine > 0.99999 && diff < 5e-4
                || in_bf16_alone(&model, text) && cosine > 0.99995 && diff < 2e-3,
            "{text:?}: cosine {cosine}, diff {diff}"
        );
    }
}

#[test]
fn a_missing_model_folder_or_file_is_named_in_the_error() {
    let err = MiniLm::load("/nonexistent/model").unwrap_err();
    assert!(matches!(err, Error::ModelFile { .. }));
    assert!(err.to_string().contains("/nonexistent/model"), "{err}");

    let empty = std::env::temp_dir().join(format!("chatpad-minilm-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let err = MiniLm::load(&empty).unwrap_err();
    std::fs::remove_dir_all(&empty).unwrap();
    assert!(err.to_string().contains("config.json"), "{err}");
}
