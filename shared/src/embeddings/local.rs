//! all-MiniLM-L6-v2 run in-process with candle on the CPU.
//!
//! Sentence embeddings as sentence-transformers computes them: BERT's last hidden states,
//! mean-pooled over the real tokens (the attention mask), then L2-normalised; 384 floats.
//!
//! Speed comes from not computing what is thrown away:
//! - the shipped `tokenizer.json` pads every text to 128 tokens and cuts it at 128; here
//!   padding is off and truncation is at 256 tokens, the model's `max_seq_length`, so a short
//!   question costs a few tokens and a long chunk is not silently cut in half;
//! - texts are sorted by token count and run in batches of similar length, each padded only
//!   to its own longest text, then put back in input order;
//! - the forward pass runs in `spawn_blocking` (it is seconds of CPU for big inputs) and its
//!   matrix products use every core through candle's `gemm` thread pool.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::EmbedError;

/// all-MiniLM-L6-v2 loaded in memory (about 90 MB of f32 weights). Cheap to clone: clones
/// share the weights.
#[derive(Clone)]
pub struct LocalMiniLm {
    inner: Arc<Inner>,
}

struct Inner {
    model: BertModel,
    /// Truncates at [`LocalMiniLm::MAX_TOKENS`], pads nothing (batches are padded by hand).
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, to tell callers how long a text really is.
    counter: Tokenizer,
    device: Device,
}

impl fmt::Debug for LocalMiniLm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalMiniLm")
            .field("model_id", &Self::MODEL_ID)
            .finish_non_exhaustive()
    }
}

impl LocalMiniLm {
    /// The `embedding_models` id of this model's vectors.
    pub const MODEL_ID: &'static str = "local/all-MiniLM-L6-v2";
    /// Length of every vector.
    pub const DIMENSIONS: usize = 384;
    /// Longest input in tokens, counting `[CLS]` and `[SEP]` (the model's `max_seq_length`);
    /// longer texts are truncated, so chunkers should stay below it.
    pub const MAX_TOKENS: usize = 256;
    /// Texts per forward pass. Larger batches make bigger matrix products (better use of both
    /// cores) but pad more when lengths differ; sorting by length keeps that padding small.
    pub const BATCH_SIZE: usize = 32;

    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`. A missing or
    /// unreadable file gives [`EmbedError::ModelFile`] naming it.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, EmbedError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(file_error(dir, "not a directory (set EMBEDDING_MODEL_DIR)"));
        }

        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|err| file_error(&config_path, err))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|err| file_error(&config_path, format!("not a BERT config: {err}")))?;
        if config.hidden_size != Self::DIMENSIONS {
            return Err(file_error(
                &config_path,
                format!(
                    "hidden_size is {}, expected {} (all-MiniLM-L6-v2)",
                    config.hidden_size,
                    Self::DIMENSIONS
                ),
            ));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut counter = Tokenizer::from_file(&tokenizer_path)
            .map_err(|err| file_error(&tokenizer_path, err))?;
        // The shipped file pads to a fixed 128 and truncates at 128: both off here.
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|err| file_error(&tokenizer_path, err))?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: Self::MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|err| file_error(&tokenizer_path, err))?;

        let weights_path = dir.join("model.safetensors");
        // Read into memory rather than mmap: safe code, and the file is read once per process.
        let weights = std::fs::read(&weights_path).map_err(|err| file_error(&weights_path, err))?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|err| file_error(&weights_path, err))?;
        let model = BertModel::load(vb, &config).map_err(|err| file_error(&weights_path, err))?;

        Ok(LocalMiniLm {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                counter,
                device,
            }),
        })
    }

    /// [`Self::MODEL_ID`].
    pub fn model_id(&self) -> &str {
        Self::MODEL_ID
    }

    /// [`Self::DIMENSIONS`].
    pub fn dimensions(&self) -> usize {
        Self::DIMENSIONS
    }

    /// Embeds `texts` on a blocking thread (the work is CPU-bound and can take seconds), one
    /// unit-length vector per text, in input order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || this.embed_blocking(&texts))
            .await
            .map_err(|err| EmbedError::Model(format!("the embedding task failed: {err}")))?
    }

    /// [`Self::embed`] on the current thread, for callers that are not async (or already on a
    /// blocking thread).
    pub fn embed_blocking<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &*self.inner;
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        // `_fast`: no character offsets, which embedding does not need.
        let encodings = inner
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|err| EmbedError::Model(format!("tokenizing: {err}")))?;

        // Similar lengths together so each batch pads little; the sort is stable, so equal
        // lengths keep their order.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());

        let mut out = vec![Vec::new(); encodings.len()];
        for batch in order.chunks(Self::BATCH_SIZE) {
            let seq_len = batch
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(0);
            let mut ids = vec![0u32; batch.len() * seq_len];
            let mut mask = vec![0u32; batch.len() * seq_len];
            for (row, &i) in batch.iter().enumerate() {
                let enc = &encodings[i];
                let start = row * seq_len;
                ids[start..start + enc.len()].copy_from_slice(enc.get_ids());
                mask[start..start + enc.len()].copy_from_slice(enc.get_attention_mask());
            }
            let vectors = inner
                .forward(ids, mask, batch.len(), seq_len)
                .map_err(|err| EmbedError::Model(err.to_string()))?;
            for (&i, vector) in batch.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    /// How many tokens `text` has for this model, `[CLS]` and `[SEP]` included, before
    /// truncation: above [`Self::MAX_TOKENS`], the end of the text is not embedded.
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        let encoding = self
            .inner
            .counter
            .encode_fast(text, true)
            .map_err(|err| EmbedError::Model(format!("tokenizing: {err}")))?;
        Ok(encoding.len())
    }
}

impl Inner {
    /// One forward pass over a padded batch (`ids` and `mask` are `batch × seq_len`, row-major),
    /// returning mean-pooled, L2-normalised sentence vectors in row order.
    fn forward(
        &self,
        ids: Vec<u32>,
        mask: Vec<u32>,
        batch: usize,
        seq_len: usize,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let input_ids = Tensor::from_vec(ids, (batch, seq_len), &self.device)?;
        let token_type_ids = input_ids.zeros_like()?;
        let mask = Tensor::from_vec(mask, (batch, seq_len), &self.device)?;
        let hidden = self
            .model
            .forward(&input_ids, &token_type_ids, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        // Mean over real tokens only: padded positions carry garbage hidden states.
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        // sentence-transformers' Normalize: x / max(‖x‖, 1e-12).
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

fn file_error(path: &Path, err: impl fmt::Display) -> EmbedError {
    EmbedError::ModelFile {
        path: PathBuf::from(path),
        message: err.to_string(),
    }
}
