//! The forward pass of all-MiniLM-L6-v2 (a 6-layer BERT), written for CPU throughput.
//!
//! candle-transformers' `BertModel` computes the same function (the tests check that it
//! does), but measured here it did about 7.6 chunks of 128 tokens per CPU-second against
//! 20 for this one: every candle operation allocates a fresh tensor (hundreds of megabytes a
//! batch, paid again in page faults), GELU, bias additions and the per-head attention products
//! run on one core, and padded positions are computed and thrown away. Here:
//!
//! - the texts of a batch are **packed** one after the other (no padding at all); attention is
//!   computed per text over its own tokens only, so no mask is needed;
//! - the matrix products are `gemm` calls (the kernel candle uses, with run-time AVX2/FMA
//!   dispatch) writing into buffers reused across the six layers; they use every core;
//! - bias, GELU, residual and LayerNorm are fused into one parallel pass each, with
//!   branch-free `exp` and `erf` compiled for AVX2 when the CPU has it. These loops need
//!   opt-level 3 to be vectorised (see the workspace `Cargo.toml`).
//!
//! About 80% of the time is now in the four matrix products of each layer. Weights are read
//! with candle from `model.safetensors` and rounded to half precision (`Weight`): a short
//! input — a visitor's question, a dozen tokens — uses each weight about once, so its cost is
//! streaming the weights from memory (42 MB as f32, more than the L3 cache of the machines
//! measured). Short inputs use a kernel reading the weights as f16 (half the bytes; AVX-512
//! where the CPU has it, else AVX2) on the calling thread, batches the same rounded values as
//! f32 through gemm on every core, so either way a text gets the same vector. Where the CPU
//! has AMX (`amx.rs`), short inputs go through its tiles instead, in bf16: a question embeds
//! in half the time, its vector within ~1e-3 of the batch path's.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use gemm::Parallelism;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use serde::Deserialize;

#[cfg(target_arch = "x86_64")]
mod amx;

/// Off x86-64 there are no AMX tiles: [`PanelKernel::Amx`] is never supported.
#[cfg(not(target_arch = "x86_64"))]
mod amx {
    pub(super) const COLUMNS: usize = 32;

    pub(super) fn pack(_: &[f32], _: usize, _: usize) -> Vec<u16> {
        unreachable!("AMX is x86-64 only")
    }

    pub(super) fn product(_: &mut [f32], _: &[f32], _: &[u16], _: usize, _: usize) {
        unreachable!("AMX is x86-64 only")
    }
}

/// The fields of a BERT `config.json` this forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections side by side, transposed: `hidden × 3·hidden`.
    qkv_w: Weight,
    qkv_b: Vec<f32>,
    /// Attention output projection, transposed: `hidden × hidden`.
    out_w: Weight,
    out_b: Vec<f32>,
    attention_norm: LayerNorm,
    /// Feed-forward up-projection, transposed: `hidden × intermediate`.
    up_w: Weight,
    up_b: Vec<f32>,
    /// Feed-forward down-projection, transposed: `intermediate × hidden`.
    down_w: Weight,
    down_b: Vec<f32>,
    output_norm: LayerNorm,
}

/// Columns per panel of [`Weight::panels`]: two AVX2 registers, one AVX-512 register.
const PANEL: usize = 16;

/// Inputs of at most this many tokens (a batch's total) use the f16 panel kernel; longer ones
/// reuse each weight often enough for gemm's cache blocking to pay (a bound chosen, not tuned).
pub(crate) const SHORT_INPUT_TOKENS: usize = 64;

/// A `k × n` weight matrix (`x · W`), every value rounded to the nearest f16, kept twice:
/// row-major f32 for gemm, and for short inputs as the fastest kernel of the CPU reads it —
/// f16 bits in panels of [`PANEL`] columns (panel `p` holds columns `p·PANEL..`, row after
/// row), or bf16 tiles for AMX (`amx::pack`).
struct Weight {
    k: usize,
    n: usize,
    dense: Vec<f32>,
    /// The kernel `panels` are laid out for; `None`: short inputs go through gemm too.
    kernel: Option<PanelKernel>,
    panels: Vec<u16>,
}

impl Weight {
    fn new(values: &[f32], k: usize, n: usize) -> Result<Self, String> {
        Self::for_kernel(values, k, n, PanelKernel::for_width(n))
    }

    /// The weight with its short-input copy laid out for `kernel` (one the CPU has), when its
    /// width suits the kernel (gemm otherwise).
    fn for_kernel(
        values: &[f32],
        k: usize,
        n: usize,
        kernel: Option<PanelKernel>,
    ) -> Result<Self, String> {
        debug_assert_eq!(values.len(), k * n);
        if let Some(x) = values
            .iter()
            .find(|x| x.is_nan() || x.abs() > f32::from(half::f16::MAX))
        {
            return Err(format!("a weight of {x} does not fit in half precision"));
        }
        // Slice conversions: F16C when the CPU has it (this runs at every cold start).
        let mut halves = vec![half::f16::ZERO; values.len()];
        halves.convert_from_f32_slice(values);
        let mut dense = vec![0f32; values.len()];
        halves.convert_to_f32_slice(&mut dense);
        // Only where a kernel runs: on other CPUs the copies would be 21 MB never read.
        let kernel = kernel.filter(|kernel| n.is_multiple_of(kernel.columns()));
        let panels = match kernel {
            None => Vec::new(),
            // From the weights as stored: bf16 is coarser than f16, rounding twice would not help.
            Some(PanelKernel::Amx) => amx::pack(values, k, n),
            Some(PanelKernel::Avx512 | PanelKernel::Avx2) => {
                let mut panels = Vec::with_capacity(values.len());
                for p in 0..n / PANEL {
                    for row in halves.chunks_exact(n) {
                        panels.extend(row[p * PANEL..][..PANEL].iter().map(|h| h.to_bits()));
                    }
                }
                panels
            }
        };
        Ok(Weight {
            k,
            n,
            dense,
            kernel,
            panels,
        })
    }

    /// `dst (m×n) = x (m×k) · self`.
    fn apply(&self, dst: &mut [f32], x: &[f32], m: usize) {
        match self.kernel {
            // On this thread: split over two cores, a question's products finished 4% sooner
            // for 45% more CPU (hand-offs, the waiting core's spinning) — CPU that the rest of
            // widget-chat's request wants (measured with the AVX-512 kernel).
            Some(kernel) if m <= SHORT_INPUT_TOKENS => {
                panel_product(kernel, dst, x, &self.panels, m, self.k)
            }
            _ => matmul(
                dst,
                x,
                &self.dense,
                m,
                self.k,
                self.n,
                Parallelism::Rayon(0),
            ),
        }
    }
}

/// The model's weights, as plain row-major `f32` matrices.
pub(crate) struct Forward {
    hidden: usize,
    heads: usize,
    intermediate: usize,
    max_positions: usize,
    eps: f32,
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    /// Row 0 of the token-type embeddings: every input is a single segment.
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

/// Rows per task of the parallel element-wise passes: enough work to amortise scheduling.
const ROWS_PER_TASK: usize = 32;

impl Forward {
    /// Builds the model from the bytes of a `model.safetensors` (names with or without the
    /// `bert.` prefix).
    pub(crate) fn from_safetensors(config: &BertConfig, bytes: &[u8]) -> Result<Self, String> {
        if config.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (expected \"gelu\")",
                config.hidden_act
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err("hidden_size is not a multiple of num_attention_heads".into());
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|err| err.to_string())?;
        let weights = Weights { tensors: &tensors };
        let h = config.hidden_size;
        let i = config.intermediate_size;

        let layers = (0..config.num_hidden_layers)
            .map(|n| {
                let p = format!("encoder.layer.{n}");
                let q = weights.get(&format!("{p}.attention.self.query.weight"), &[h, h])?;
                let k = weights.get(&format!("{p}.attention.self.key.weight"), &[h, h])?;
                let v = weights.get(&format!("{p}.attention.self.value.weight"), &[h, h])?;
                let qkv = Tensor::cat(&[q, k, v], 0).map_err(|err| err.to_string())?;
                let mut qkv_b = weights.vector(&format!("{p}.attention.self.query.bias"), h)?;
                qkv_b.extend(weights.vector(&format!("{p}.attention.self.key.bias"), h)?);
                qkv_b.extend(weights.vector(&format!("{p}.attention.self.value.bias"), h)?);
                Ok(Layer {
                    qkv_w: Weight::new(&transposed(&qkv)?, h, 3 * h)?,
                    qkv_b,
                    out_w: weights.linear(&format!("{p}.attention.output.dense"), h, h)?,
                    out_b: weights.vector(&format!("{p}.attention.output.dense.bias"), h)?,
                    attention_norm: weights.layer_norm(&format!("{p}.attention.output"), h)?,
                    up_w: weights.linear(&format!("{p}.intermediate.dense"), i, h)?,
                    up_b: weights.vector(&format!("{p}.intermediate.dense.bias"), i)?,
                    down_w: weights.linear(&format!("{p}.output.dense"), h, i)?,
                    down_b: weights.vector(&format!("{p}.output.dense.bias"), h)?,
                    output_norm: weights.layer_norm(&format!("{p}.output"), h)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;

        let vocab = weights
            .tensor("embeddings.word_embeddings.weight")?
            .dims2()
            .map_err(|err| err.to_string())?
            .0;
        let token_types = weights.matrix("embeddings.token_type_embeddings.weight", None, h)?;
        Ok(Forward {
            hidden: h,
            heads: config.num_attention_heads,
            intermediate: i,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
            word_embeddings: weights.matrix("embeddings.word_embeddings.weight", Some(vocab), h)?,
            position_embeddings: weights.matrix(
                "embeddings.position_embeddings.weight",
                Some(config.max_position_embeddings),
                h,
            )?,
            token_type: token_types[..h].to_vec(),
            embedding_norm: weights.layer_norm("embeddings", h)?,
            layers,
        })
    }

    /// Vocabulary size: token ids must be below it.
    pub(crate) fn vocab_size(&self) -> usize {
        self.word_embeddings.len() / self.hidden
    }

    /// Longest sequence the position embeddings cover.
    pub(crate) fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Mean-pooled, L2-normalised sentence embeddings of `texts` (token ids with `[CLS]` and
    /// `[SEP]`, each non-empty, at most [`Self::max_positions`] long, ids below
    /// [`Self::vocab_size`]; the caller checks). Uses every core for big batches.
    pub(crate) fn embed(&self, texts: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let lens: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        let total: usize = lens.iter().sum();
        if total == 0 {
            return Vec::new();
        }

        // Token embeddings, packed: row r is token `positions[r]` of its text.
        let ids: Vec<u32> = texts.iter().flat_map(|t| t.iter().copied()).collect();
        let positions: Vec<usize> = lens.iter().flat_map(|&len| 0..len).collect();
        let mut hidden = vec![0f32; total * h];
        hidden
            .par_chunks_mut(h)
            .zip(ids.par_iter().zip(positions.par_iter()))
            .for_each(|(row, (&id, &pos))| {
                let word = &self.word_embeddings[id as usize * h..][..h];
                let position = &self.position_embeddings[pos * h..][..h];
                for (j, x) in row.iter_mut().enumerate() {
                    *x = word[j] + position[j] + self.token_type[j];
                }
                layer_norm(row, &self.embedding_norm, self.eps);
            });

        // Buffers reused by every layer.
        let mut qkv = vec![0f32; total * 3 * h];
        let mut context = vec![0f32; total * h];
        let mut projected = vec![0f32; total * h];
        let mut inner = vec![0f32; total * self.intermediate];

        for layer in &self.layers {
            layer.qkv_w.apply(&mut qkv, &hidden, total);
            add_bias(&mut qkv, &layer.qkv_b);
            self.attention(&qkv, &mut context, &lens);
            layer.out_w.apply(&mut projected, &context, total);
            self.add_and_norm(&mut hidden, &projected, &layer.out_b, &layer.attention_norm);
            layer.up_w.apply(&mut inner, &hidden, total);
            add_bias_gelu(&mut inner, &layer.up_b);
            layer.down_w.apply(&mut projected, &inner, total);
            self.add_and_norm(&mut hidden, &projected, &layer.down_b, &layer.output_norm);
        }

        // Mean over each text's tokens, then unit length (sentence-transformers' Normalize:
        // x / max(‖x‖, 1e-12)).
        let mut start = 0;
        lens.iter()
            .map(|&len| {
                let rows = &hidden[start * h..(start + len) * h];
                start += len;
                let mut sum = vec![0f32; h];
                for row in rows.chunks_exact(h) {
                    for (s, x) in sum.iter_mut().zip(row) {
                        *s += x;
                    }
                }
                // mean = sum / len; the result is mean / max(‖mean‖, 1e-12).
                let mean_norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt() / len as f32;
                let scale = 1.0 / (len as f32 * mean_norm.max(1e-12));
                sum.iter_mut().for_each(|s| *s *= scale);
                sum
            })
            .collect()
    }

    /// Multi-head self-attention of every text over its own tokens: `qkv` holds each token's
    /// query, key and value (`3·hidden` per row); the heads' outputs go to `context`. One task
    /// per text, so texts run in parallel and no task writes another's rows.
    fn attention(&self, qkv: &[f32], context: &mut [f32], lens: &[usize]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut jobs = Vec::with_capacity(lens.len());
        let mut rest = context;
        let mut start = 0;
        for &len in lens {
            let (out, tail) = rest.split_at_mut(len * h);
            jobs.push((start, len, out));
            rest = tail;
            start += len;
        }
        jobs.into_par_iter().for_each(|(start, len, out)| {
            let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
            let mut scores = vec![0f32; len * len];
            for head in 0..self.heads {
                let q = View::new(&rows[head * d..], len, d, 3 * h, 1);
                // Kᵀ: element (i, j) is dimension i of token j's key.
                let kt = View::new(&rows[h + head * d..], d, len, 1, 3 * h);
                let v = View::new(&rows[2 * h + head * d..], len, d, 3 * h, 1);
                gemm_into(
                    &mut scores,
                    len,
                    len,
                    len,
                    1,
                    q,
                    kt,
                    scale,
                    Parallelism::None,
                );
                softmax_rows(&mut scores, len);
                let probs = View::new(&scores, len, len, len, 1);
                gemm_into(
                    &mut out[head * d..],
                    len,
                    d,
                    h,
                    1,
                    probs,
                    v,
                    1.0,
                    Parallelism::None,
                );
            }
        });
    }

    /// `hidden = LayerNorm(hidden + projected + bias)`, row by row in parallel.
    fn add_and_norm(&self, hidden: &mut [f32], projected: &[f32], bias: &[f32], norm: &LayerNorm) {
        let h = self.hidden;
        hidden
            .par_chunks_mut(h * ROWS_PER_TASK)
            .zip(projected.par_chunks(h * ROWS_PER_TASK))
            .for_each(|(xs, ys)| add_norm_rows(xs, ys, bias, norm, self.eps));
    }
}

/// `row = (row − mean) / √(var + eps) · γ + β`.
#[inline(always)]
fn layer_norm(row: &mut [f32], norm: &LayerNorm, eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += (x - mean) * (x - mean);
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|x| (x - mean) * (x - mean))
        .sum();
    let var = (lanes.iter().sum::<f32>() + tail) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, g), b) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *x = (*x - mean) * inv * g + b;
    }
}

/// Lanes of the manual reductions below: the compiler keeps float sums in order (so scalar)
/// unless the sum is split into independent partial sums like these.
const LANES: usize = 8;

#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = if x > *lane { x } else { *lane };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `e^x` for `x ≤ 0` (softmax arguments), branch-free so that it vectorises: Cephes' `expf`
/// polynomial on `x − n·ln 2`, scaled by `2^n` built from the exponent bits. Relative error
/// about 2e-7; results below `e^-87` become 0.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r2 + r + 1.0;
    let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    e * f32::from_bits(((n + 127) as u32) << 23)
}

/// `erf(x)` as a rational function (the approximation Eigen and XNNPACK use for GELU):
/// branch-free so that it vectorises, absolute error below 1e-6 (checked against libm).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = (((((-2.726_142_3e-10 * x2 + 2.770_681_4e-8) * x2 - 2.101_024e-6) * x2
        - 5.692_506_4e-5)
        * x2
        - 7.349_906_3e-4)
        * x2
        - 2.954_600_1e-3)
        * x2
        - 1.609_603_3e-2;
    let q = (((-1.456_607_2e-5 * x2 - 2.133_740_6e-4) * x2 - 1.682_827e-3) * x2 - 7.373_329_2e-3)
        * x2
        - 1.426_474e-2;
    x * p / q
}

/// Defines `$name`, which runs `$generic` compiled for AVX2 + FMA when the CPU has them (the
/// crate is built for baseline x86-64, i.e. 4-wide SSE2) and as is otherwise.
macro_rules! with_avx2 {
    ($name:ident, $avx2:ident, $generic:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2($($arg: $ty),*) {
            $generic($($arg),*)
        }

        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU supports the features `$avx2` is compiled for.
                return unsafe { $avx2($($arg),*) };
            }
            $generic($($arg),*)
        }
    };
}

/// The name [`crate::short_input_kernel`] gives this CPU's short-input kernel.
pub(crate) fn short_input_kernel() -> &'static str {
    match PanelKernel::detect() {
        Some(PanelKernel::Amx) => "amx-bf16",
        Some(PanelKernel::Avx512) => "avx512-f16",
        Some(PanelKernel::Avx2) => "avx2-f16",
        None => "gemm",
    }
}

/// The short-input kernels, fastest first. [`PanelKernel::detect`] picks the one this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PanelKernel {
    /// AMX-BF16 tiles (`amx.rs`): weights and input in bf16, sums in f32.
    Amx,
    /// AVX-512F: one 16-float register per row and panel, up to [`AVX512_ROWS`] rows a pass —
    /// half the multiply-adds of the AVX2 kernel for the same product.
    Avx512,
    /// AVX2 + FMA + F16C (every x86 server CPU since 2013): two 8-float registers per row and
    /// panel, [`AVX2_ROWS`] rows a pass.
    Avx2,
}

impl PanelKernel {
    /// Every kernel, fastest first.
    const ALL: [PanelKernel; 3] = [PanelKernel::Amx, PanelKernel::Avx512, PanelKernel::Avx2];

    /// The fastest kernel this CPU has, if any. Elsewhere — the arm64 Lambda functions
    /// included, for now — short inputs go through gemm like batches.
    fn detect() -> Option<Self> {
        Self::ALL.into_iter().find(|kernel| kernel.supported())
    }

    /// The fastest kernel this CPU has for a weight `n` columns wide.
    fn for_width(n: usize) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kernel| kernel.supported() && n.is_multiple_of(kernel.columns()))
    }

    /// Whether this CPU has the kernel's instructions.
    fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                PanelKernel::Amx => amx::supported(),
                PanelKernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
                PanelKernel::Avx2 => {
                    std::is_x86_feature_detected!("avx2")
                        && std::is_x86_feature_detected!("fma")
                        && std::is_x86_feature_detected!("f16c")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// What a weight's width must be a multiple of.
    fn columns(self) -> usize {
        match self {
            PanelKernel::Amx => amx::COLUMNS,
            PanelKernel::Avx512 | PanelKernel::Avx2 => PANEL,
        }
    }
}

/// Rows of `x` per pass of the AVX2 kernel: 6 rows × 16 columns of sums fill 12 of the 16 AVX
/// registers.
const AVX2_ROWS: usize = 6;

/// Rows of `x` per pass of the AVX-512 kernel: 12 of the 32 registers hold sums. A question's
/// dozen tokens take one pass over each panel.
const AVX512_ROWS: usize = 12;

/// `dst = x (m×k) · panels`, where `panels` holds a weight laid out for `kernel` (one the CPU
/// has: f16 panels, or AMX tiles) and `dst` gets its columns (row-major).
///
/// Written with intrinsics rather than left to the vectoriser: the release profile's LTO
/// compiles it at the Lambda binaries' opt-level "s", where the same loops written plainly
/// ran 5× slower than at opt-level 3 (measured in widget-chat's chat-bench).
fn panel_product(
    kernel: PanelKernel,
    dst: &mut [f32],
    x: &[f32],
    panels: &[u16],
    m: usize,
    k: usize,
) {
    // Rows of `x` per pass over a panel.
    let rows_per_pass = match kernel {
        PanelKernel::Amx => return amx::product(dst, x, panels, m, k),
        PanelKernel::Avx512 => AVX512_ROWS,
        PanelKernel::Avx2 => AVX2_ROWS,
    };
    let width = panels.len() / k;
    assert!(x.len() >= m * k && dst.len() >= m * width && panels.len() == k * width);
    let mut padded_x = Vec::new();
    let mut padded_dst = [0f32; AVX2_ROWS * PANEL];
    for (p, panel) in panels.chunks_exact(k * PANEL).enumerate() {
        for first in (0..m).step_by(rows_per_pass) {
            let rows = (m - first).min(rows_per_pass);
            let x = &x[first * k..];
            let dst = &mut dst[first * width + p * PANEL..];
            match kernel {
                // SAFETY: the CPU has AVX-512F (`detect`); `x` holds `rows` rows of `k`, `dst`
                // `rows` rows of `width` from this panel's column on, and the panel is
                // `k × PANEL`.
                PanelKernel::Avx512 => unsafe {
                    panel_rows_avx512(rows, dst.as_mut_ptr(), width, x.as_ptr(), k, panel)
                },
                // SAFETY: as above, for AVX2, FMA and F16C and 6 rows.
                PanelKernel::Avx2 if rows == AVX2_ROWS => unsafe {
                    panel_rows_avx2(dst.as_mut_ptr(), width, x.as_ptr(), k, panel)
                },
                PanelKernel::Amx => unreachable!("AMX products are made whole above"),
                PanelKernel::Avx2 => {
                    // The last few rows: through zero-padded copies, so the kernel stays 6 rows.
                    padded_x.clear();
                    padded_x.extend_from_slice(&x[..rows * k]);
                    padded_x.resize(AVX2_ROWS * k, 0.0);
                    // SAFETY: as above, on the padded 6-row copies.
                    unsafe {
                        panel_rows_avx2(padded_dst.as_mut_ptr(), PANEL, padded_x.as_ptr(), k, panel)
                    };
                    for (r, row) in padded_dst.chunks_exact(PANEL).take(rows).enumerate() {
                        dst[r * width..][..PANEL].copy_from_slice(row);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel_rows_avx2(_: *mut f32, _: usize, _: *const f32, _: usize, _: &[u16]) {
    unreachable!("PanelKernel::detect() is None off x86-64")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel_rows_avx512(_: usize, _: *mut f32, _: usize, _: *const f32, _: usize, _: &[u16]) {
    unreachable!("PanelKernel::detect() is None off x86-64")
}

/// Six rows of `x` (row stride `k`) times one f16 panel (`k × PANEL`) into six rows of `dst`
/// (row stride `dst_rs`): per weight row, two conversions and twelve fused multiply-adds.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `x` points at `6·k` readable floats (rows `k` apart), `dst`
/// at six writable rows of `PANEL` floats `dst_rs` apart, `panel.len() == k · PANEL`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn panel_rows_avx2(dst: *mut f32, dst_rs: usize, x: *const f32, k: usize, panel: &[u16]) {
    use std::arch::x86_64::*;
    debug_assert_eq!(panel.len(), k * PANEL);
    let zero = _mm256_setzero_ps();
    let (mut s00, mut s01, mut s10, mut s11, mut s20, mut s21) =
        (zero, zero, zero, zero, zero, zero);
    let (mut s30, mut s31, mut s40, mut s41, mut s50, mut s51) =
        (zero, zero, zero, zero, zero, zero);
    for (i, w) in panel.chunks_exact(PANEL).enumerate() {
        // SAFETY: `w` is 16 halves; the `x` reads are inside its six rows (caller).
        unsafe {
            let lo = _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().cast()));
            let hi = _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(8).cast()));
            // Row `r` of `x` times this weight row, into that row's two sums.
            macro_rules! row {
                ($r:expr, $sum_lo:ident, $sum_hi:ident) => {
                    let a = _mm256_set1_ps(*x.add($r * k + i));
                    $sum_lo = _mm256_fmadd_ps(a, lo, $sum_lo);
                    $sum_hi = _mm256_fmadd_ps(a, hi, $sum_hi);
                };
            }
            row!(0, s00, s01);
            row!(1, s10, s11);
            row!(2, s20, s21);
            row!(3, s30, s31);
            row!(4, s40, s41);
            row!(5, s50, s51);
        }
    }
    let rows = [
        (s00, s01),
        (s10, s11),
        (s20, s21),
        (s30, s31),
        (s40, s41),
        (s50, s51),
    ];
    for (r, (lo, hi)) in rows.into_iter().enumerate() {
        // SAFETY: row `r` of `dst` has PANEL writable floats (caller).
        unsafe {
            _mm256_storeu_ps(dst.add(r * dst_rs), lo);
            _mm256_storeu_ps(dst.add(r * dst_rs + 8), hi);
        }
    }
}

/// `rows` (1 to [`AVX512_ROWS`]) rows of `x` (row stride `k`) times one f16 panel
/// (`k × PANEL`) into `rows` rows of `dst` (row stride `dst_rs`): per weight row, one
/// conversion and one fused multiply-add per row. Each row count has its own copy of the loop,
/// so the sums stay in registers and a question's last rows need no padding.
///
/// # Safety
/// The CPU has AVX-512F; `x` points at `rows·k` readable floats (rows `k` apart), `dst` at
/// `rows` writable rows of `PANEL` floats `dst_rs` apart, `panel.len() == k · PANEL`.
#[cfg(target_arch = "x86_64")]
unsafe fn panel_rows_avx512(
    rows: usize,
    dst: *mut f32,
    dst_rs: usize,
    x: *const f32,
    k: usize,
    panel: &[u16],
) {
    macro_rules! by_rows {
        ($($r:literal)*) => {
            match rows {
                // SAFETY: the caller's contract, for `$r == rows` rows.
                $($r => unsafe { rows_avx512::<$r>(dst, dst_rs, x, k, panel) },)*
                _ => unreachable!("{rows} rows in one AVX-512 pass"),
            }
        };
    }
    by_rows!(1 2 3 4 5 6 7 8 9 10 11 12);
}

/// [`panel_rows_avx512`] for `R` rows.
///
/// # Safety
/// As [`panel_rows_avx512`] with `rows == R`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_avx512<const R: usize>(
    dst: *mut f32,
    dst_rs: usize,
    x: *const f32,
    k: usize,
    panel: &[u16],
) {
    use std::arch::x86_64::*;
    debug_assert_eq!(panel.len(), k * PANEL);
    let mut sums = [_mm512_setzero_ps(); R];
    for (i, w) in panel.chunks_exact(PANEL).enumerate() {
        // SAFETY: `w` is 16 halves; the `x` reads are inside its `R` rows (caller).
        unsafe {
            let w = _mm512_cvtph_ps(_mm256_loadu_si256(w.as_ptr().cast()));
            for (r, sum) in sums.iter_mut().enumerate() {
                *sum = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(r * k + i)), w, *sum);
            }
        }
    }
    for (r, sum) in sums.into_iter().enumerate() {
        // SAFETY: row `r` of `dst` has PANEL writable floats (caller).
        unsafe { _mm512_storeu_ps(dst.add(r * dst_rs), sum) };
    }
}

/// In-place softmax of each `len`-long row of `scores`.
#[inline(always)]
fn softmax_rows_generic(scores: &mut [f32], len: usize) {
    for row in scores.chunks_exact_mut(len) {
        let max = max(row);
        for x in row.iter_mut() {
            *x = exp_nonpositive(*x - max);
        }
        let inv = 1.0 / sum(row);
        row.iter_mut().for_each(|x| *x *= inv);
    }
}
with_avx2!(softmax_rows, softmax_rows_avx2, softmax_rows_generic, (scores: &mut [f32], len: usize));

/// Adds `bias` to every row of `rows` (rows of `bias.len()` values).
#[inline(always)]
fn add_bias_generic(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
    }
}
with_avx2!(add_bias_rows, add_bias_avx2, add_bias_generic, (rows: &mut [f32], bias: &[f32]));

/// `x = gelu(x + bias)` with the erf GELU BERT was trained with.
#[inline(always)]
fn add_bias_gelu_generic(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (x, b) in row.iter_mut().zip(bias) {
            let v = *x + b;
            *x = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}
with_avx2!(add_bias_gelu_rows, add_bias_gelu_avx2, add_bias_gelu_generic, (rows: &mut [f32], bias: &[f32]));

/// `x = LayerNorm(x + y + bias)` for each row of `xs` and `ys`.
#[inline(always)]
fn add_norm_generic(xs: &mut [f32], ys: &[f32], bias: &[f32], norm: &LayerNorm, eps: f32) {
    let h = bias.len();
    for (x, y) in xs.chunks_exact_mut(h).zip(ys.chunks_exact(h)) {
        for ((x, y), b) in x.iter_mut().zip(y).zip(bias) {
            *x += y + b;
        }
        layer_norm(x, norm, eps);
    }
}
with_avx2!(add_norm_rows, add_norm_avx2, add_norm_generic, (xs: &mut [f32], ys: &[f32], bias: &[f32], norm: &LayerNorm, eps: f32));

/// [`add_bias_rows`] on all cores.
fn add_bias(rows: &mut [f32], bias: &[f32]) {
    rows.par_chunks_mut(bias.len() * ROWS_PER_TASK)
        .for_each(|chunk| add_bias_rows(chunk, bias));
}

/// [`add_bias_gelu_rows`] on all cores.
fn add_bias_gelu(rows: &mut [f32], bias: &[f32]) {
    rows.par_chunks_mut(bias.len() * ROWS_PER_TASK)
        .for_each(|chunk| add_bias_gelu_rows(chunk, bias));
}

/// A read-only strided matrix inside a slice: element (r, c) is `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// Panics unless every element lies inside `data`: [`gemm_into`] relies on it.
    fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(rows > 0 && cols > 0, "empty matrix");
        assert!(
            (rows - 1) * rs + (cols - 1) * cs < data.len(),
            "matrix view out of bounds"
        );
        View {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }
}

/// `dst (m×n, row stride dst_rs, column stride dst_cs) = scale · a · b`.
#[allow(clippy::too_many_arguments)]
fn gemm_into(
    dst: &mut [f32],
    m: usize,
    n: usize,
    dst_rs: usize,
    dst_cs: usize,
    a: View<'_>,
    b: View<'_>,
    scale: f32,
    parallelism: Parallelism,
) {
    assert!(
        a.rows == m && b.cols == n && a.cols == b.rows,
        "shape mismatch"
    );
    assert!(
        (m - 1) * dst_rs + (n - 1) * dst_cs < dst.len(),
        "destination out of bounds"
    );
    // SAFETY: the asserts above (and `View::new`) keep every element gemm reads or writes
    // inside the three slices; `dst` is borrowed mutably, so it overlaps neither input; with
    // `read_dst = false` gemm never reads `dst`'s previous (possibly stale) contents.
    unsafe {
        gemm::gemm(
            m,
            n,
            a.cols,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            false,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            0.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `dst (m×n) = a (m×k) · b (k×n)`, all row-major and contiguous.
fn matmul(
    dst: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    parallelism: Parallelism,
) {
    let a = View::new(a, m, k, k, 1);
    let b = View::new(b, k, n, n, 1);
    gemm_into(dst, m, n, n, 1, a, b, 1.0, parallelism);
}

/// Typed access to the safetensors' tensors, with or without a `bert.` prefix.
struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
}

impl Weights<'_> {
    fn tensor(&self, name: &str) -> Result<&Tensor, String> {
        self.tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| format!("tensor {name} is missing"))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        let tensor = self.tensor(name)?;
        if tensor.dims() != shape {
            return Err(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                tensor.dims()
            ));
        }
        tensor.to_dtype(DType::F32).map_err(|err| err.to_string())
    }

    /// A `rows × cols` matrix, row-major (`rows: None` accepts any row count).
    fn matrix(&self, name: &str, rows: Option<usize>, cols: usize) -> Result<Vec<f32>, String> {
        let tensor = self.tensor(name)?;
        let actual = tensor.dims2().map_err(|err| format!("{name}: {err}"))?;
        if actual.1 != cols || rows.is_some_and(|r| r != actual.0) {
            return Err(format!("tensor {name} has shape {actual:?}"));
        }
        flat(&self.get(name, &[actual.0, actual.1])?)
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        flat(&self.get(name, &[len])?)
    }

    /// A PyTorch `Linear` weight (`out × in`) transposed to `in × out` for `x · W`.
    fn linear(&self, prefix: &str, out: usize, inp: usize) -> Result<Weight, String> {
        let values = transposed(&self.get(&format!("{prefix}.weight"), &[out, inp])?)?;
        Weight::new(&values, inp, out)
    }

    fn layer_norm(&self, prefix: &str, h: usize) -> Result<LayerNorm, String> {
        Ok(LayerNorm {
            gamma: self.vector(&format!("{prefix}.LayerNorm.weight"), h)?,
            beta: self.vector(&format!("{prefix}.LayerNorm.bias"), h)?,
        })
    }
}

fn flat(tensor: &Tensor) -> Result<Vec<f32>, String> {
    tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|err| err.to_string())
}

fn transposed(tensor: &Tensor) -> Result<Vec<f32>, String> {
    tensor
        .t()
        .and_then(|t| t.contiguous())
        .map_err(|err| err.to_string())
        .and_then(|t| flat(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_match_a_naive_loop() {
        // a: 3×2 with row stride 4 inside a larger buffer; b: 2×3 given transposed.
        let a_buf: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let b_buf: Vec<f32> = (0..6).map(|x| x as f32 * 0.5).collect();
        let a = View::new(&a_buf[1..], 3, 2, 4, 1);
        let b = View::new(&b_buf, 2, 3, 1, 2);
        let mut dst = vec![0f32; 9];
        gemm_into(&mut dst, 3, 3, 3, 1, a, b, 2.0, Parallelism::None);
        for r in 0..3 {
            for c in 0..3 {
                let expected: f32 = (0..2)
                    .map(|k| a_buf[1 + r * 4 + k] * b_buf[k + c * 2])
                    .sum::<f32>()
                    * 2.0;
                assert!((dst[r * 3 + c] - expected).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn every_product_matches_a_naive_loop_on_the_rounded_values() {
        // 4 panels of 16 columns (2 AMX passes); a depth inside one AMX tile and one past it.
        let n = 4 * PANEL;
        for k in [7, 45] {
            let values: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin()).collect();
            // What each kernel multiplies: AVX the f16 weights and the input as it is; AMX
            // both rounded to bf16.
            let f16 = |v: f32| half::f16::from_f32(v).to_f32();
            let bf16 = |v: f32| half::bf16::from_f32(v).to_f32();
            let check = |label: &str,
                         kernel: Option<PanelKernel>,
                         m: usize,
                         x: &[f32],
                         dst: &[f32]| {
                let (round_w, round_x): (&dyn Fn(f32) -> f32, &dyn Fn(f32) -> f32) = match kernel {
                    Some(PanelKernel::Amx) => (&bf16, &bf16),
                    _ => (&f16, &|v| v),
                };
                for r in 0..m {
                    for c in 0..n {
                        let expected: f64 = (0..k)
                            .map(|i| f64::from(round_x(x[r * k + i]) * round_w(values[i * n + c])))
                            .sum();
                        let got = f64::from(dst[r * n + c]);
                        assert!(
                            (got - expected).abs() < 1e-5 * (1.0 + expected.abs()),
                            "{label}, k {k}, m {m} ({r}, {c}): {got} vs {expected}"
                        );
                    }
                }
            };
            // As `apply` picks, and laid out for each kernel the CPU has.
            let weight = Weight::new(&values, k, n).unwrap();
            assert_eq!(weight.kernel, PanelKernel::detect());
            let per_kernel: Vec<(PanelKernel, Weight)> = PanelKernel::ALL
                .into_iter()
                .filter(|kernel| kernel.supported())
                .map(|kernel| {
                    (
                        kernel,
                        Weight::for_kernel(&values, k, n, Some(kernel)).unwrap(),
                    )
                })
                .collect();
            // Every row-group size of the AVX kernels, both AMX row blocks, and gemm's sizes.
            for m in
                (1..=2 * AVX512_ROWS + 1).chain([33, SHORT_INPUT_TOKENS, SHORT_INPUT_TOKENS + 1])
            {
                let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.11).cos()).collect();
                let mut dst = vec![f32::NAN; m * n];
                weight.apply(&mut dst, &x, m);
                let used = weight.kernel.filter(|_| m <= SHORT_INPUT_TOKENS);
                check("apply", used, m, &x, &dst);
                if m > SHORT_INPUT_TOKENS {
                    continue;
                }
                for (kernel, weight) in &per_kernel {
                    let mut dst = vec![f32::NAN; m * n];
                    panel_product(*kernel, &mut dst, &x, &weight.panels, m, k);
                    check(&format!("{kernel:?}"), Some(*kernel), m, &x, &dst);
                }
            }
        }
        // A width AMX's pairs of tiles do not divide: the next kernel the CPU has, or gemm.
        let values: Vec<f32> = (0..7 * 48).map(|i| (i as f32 * 0.37).sin()).collect();
        let narrow = Weight::new(&values, 7, 48).unwrap();
        let avx = [PanelKernel::Avx512, PanelKernel::Avx2];
        assert_eq!(
            narrow.kernel,
            avx.into_iter().find(|kernel| kernel.supported())
        );
        let forced = Weight::for_kernel(&values, 7, 48, Some(PanelKernel::Amx)).unwrap();
        assert_eq!(forced.kernel, None);
        let err = Weight::new(&[1.0, 1e6], 1, 2).err().unwrap();
        assert!(err.contains("1000000"), "{err}");
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn views_past_the_slice_are_refused() {
        let data = [0f32; 5];
        View::new(&data, 2, 3, 3, 1);
    }

    #[test]
    fn softmax_and_layer_norm() {
        let mut rows = [1.0f32, 2.0, 3.0, -5.0, 0.0, 5.0];
        softmax_rows(&mut rows, 3);
        for row in rows.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert!(row[2] > row[1] && row[1] > row[0]);
        }
        let e = [1.0f32.exp(), 2.0f32.exp(), 3.0f32.exp()];
        let total: f32 = e.iter().sum();
        assert!((rows[0] - e[0] / total).abs() < 1e-6);

        let norm = LayerNorm {
            gamma: vec![1.0; 4],
            beta: vec![0.0; 4],
        };
        let mut row = [1.0f32, 2.0, 3.0, 4.0];
        layer_norm(&mut row, &norm, 1e-12);
        assert!(row.iter().sum::<f32>().abs() < 1e-5);
        assert!((row.iter().map(|x| x * x).sum::<f32>() / 4.0 - 1.0).abs() < 1e-4);
    }

    #[test]
    fn fast_exp_and_erf_match_libm() {
        let mut worst_exp = 0f32;
        let mut worst_erf = 0f32;
        for i in 0..=200_000 {
            let x = -100.0 + i as f32 * 5e-4;
            let exact = x.exp();
            let rel = (exp_nonpositive(x) - exact).abs() / exact.max(f32::MIN_POSITIVE);
            if (-87.0..=0.0).contains(&x) {
                worst_exp = worst_exp.max(rel);
            }
            let y = -8.0 + i as f32 * 8e-5;
            worst_erf = worst_erf.max((erf(y) - libm::erff(y)).abs());
        }
        assert!(worst_exp < 1e-6, "exp relative error {worst_exp}");
        assert!(worst_erf < 1e-6, "erf absolute error {worst_erf}");
        assert!(exp_nonpositive(-1000.0) < 1e-37);
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn gelu_matches_known_values() {
        let mut xs = [0.0f32, 1.0, -1.0, 3.0];
        add_bias_gelu(&mut xs, &[0.0; 4]);
        let mut generic = [0.0f32, 1.0, -1.0, 3.0];
        add_bias_gelu_generic(&mut generic, &[0.0; 4]);
        assert_eq!(xs, generic);
        // gelu(1) = 0.841345, gelu(-1) = -0.158655, gelu(3) = 2.995950.
        let expected = [0.0, 0.841_344_7, -0.158_655_3, 2.995_95];
        for (x, e) in xs.iter().zip(expected) {
            assert!((x - e).abs() < 1e-5, "{x} vs {e}");
        }
    }
}
