//! The short-input products on Intel's AMX tiles (Sapphire Rapids and later): the weights and
//! the input rounded to bf16, their products summed in f32 by `TDPBF16PS`, one 16 × 16 block
//! of sums per 16 rows of input, 32 input columns and 16 weight columns.
//!
//! AMX does the multiplications of a question in a few microseconds, so what is left is
//! streaming the weights (bf16: as many bytes as the f16 panels); each weight tile is read once
//! for up to 32 rows of input. Measured on the bench machine, a 20-token question's products
//! took 1.3 ms against 3.3 ms with the AVX-512 f16 kernel.
//!
//! The price is precision: bf16 keeps 8 significant bits where f16 keeps 11, and the input is
//! rounded too. A question's vector moves from the batch path's by at most ~1e-3 per
//! dimension (cosine ≥ 0.99998 on the evalset's questions; the model tests bound it).
//!
//! Rust has no stable AMX intrinsics: the tile instructions are inline assembly. Nothing else
//! in the process uses the tile registers, so they need no clobber declarations; the kernel
//! saves and restores the tile state of each thread like any other register state, once the
//! process has asked for it (`arch_prctl`, in [`supported`]).

use std::arch::asm;
use std::arch::x86_64::{__m512i, _mm512_cvtne2ps_pbh, _mm512_loadu_ps, _mm512_storeu_si512};
use std::sync::OnceLock;

/// Weight columns per pass: two 16-column tiles. A packed weight's width is a multiple of it.
pub(super) const COLUMNS: usize = 32;

/// Rows of a tile: 16 rows of input, or 16 pairs of weight rows.
const TILE_ROWS: usize = 16;

/// Input columns per tile: 32 bf16 (64 bytes a row).
const TILE_DEPTH: usize = 32;

/// `arch_prctl` requests: permission to use a state component, here the tile data.
const ARCH_REQ_XCOMP_PERM: libc::c_int = 0x1023;
const XFEATURE_XTILEDATA: libc::c_ulong = 18;

/// Whether this CPU has AMX-BF16 (and AVX512-BF16 for the input's conversion) and Linux lets
/// this process use the tiles. Asked once.
pub(super) fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        let amx = leaf.edx & (1 << 22) != 0 && leaf.edx & (1 << 24) != 0;
        amx && std::is_x86_feature_detected!("avx512bf16")
            // SAFETY: a plain system call with integer arguments.
            && unsafe {
                libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)
            } == 0
    })
}

/// A `k × n` weight (`n` a multiple of [`COLUMNS`]) as the kernel reads it: for each 16-column
/// tile, row pairs `(2j, 2j+1)` side by side per column (`[w(2j, c), w(2j+1, c)]`), `k`
/// padded with zeros to whole tiles; bf16 bits, rounded to nearest.
pub(super) fn pack(values: &[f32], k: usize, n: usize) -> Vec<u16> {
    debug_assert!(n.is_multiple_of(COLUMNS) && values.len() == k * n);
    let depth = k.next_multiple_of(TILE_DEPTH);
    let bf16 = |row: usize, column: usize| {
        if row < k {
            half::bf16::from_f32(values[row * n + column]).to_bits()
        } else {
            0
        }
    };
    let mut packed = Vec::with_capacity(depth * n);
    for tile in 0..n / TILE_ROWS {
        for pair in 0..depth / 2 {
            for column in tile * TILE_ROWS..(tile + 1) * TILE_ROWS {
                packed.extend([bf16(2 * pair, column), bf16(2 * pair + 1, column)]);
            }
        }
    }
    packed
}

/// The tile configuration `LDTILECFG` reads (an invalid one faults).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// `dst (m×n) = x (m×k) · packed` for a weight [`pack`]ed from `k` rows; `m` of any size (the
/// caller keeps it short: the input is copied as bf16 first). Only where [`supported`].
pub(super) fn product(dst: &mut [f32], x: &[f32], packed: &[u16], m: usize, k: usize) {
    let depth = k.next_multiple_of(TILE_DEPTH);
    let n = packed.len() / depth;
    assert!(x.len() >= m * k && dst.len() >= m * n && n.is_multiple_of(COLUMNS));
    assert!(supported(), "AMX products on a CPU or process without AMX");
    // The input as bf16, `depth` wide, in whole pairs of 16-row blocks (zeros past `m`).
    let blocks = m.div_ceil(2 * TILE_ROWS) * 2;
    let mut input = vec![0u16; blocks * TILE_ROWS * depth];
    // SAFETY: AVX512-BF16 is part of `supported`; `input` has `m` rows of `depth ≥ k`.
    unsafe { to_bf16(&mut input, depth, x, m, k) };

    // Palette 1 has 8 tiles: the entries past them must be zero.
    let mut config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        bytes_per_row: [0; 16],
        rows: [0; 16],
    };
    config.bytes_per_row[..8].fill(64);
    config.rows[..8].fill(TILE_ROWS as u8);
    // Sums of one pass: rows 0–15 × tiles 0 and 1, then rows 16–31 × the same tiles.
    let mut sums = [0f32; 4 * TILE_ROWS * TILE_ROWS];
    let input_stride = (depth * 2) as u64;
    let tile_stride = 64u64;
    // The words of one 16-column tile of the weight.
    let tile_words = depth * TILE_ROWS;
    // SAFETY: the configuration is valid for palette 1 (8 tiles of 16 rows × 64 bytes).
    unsafe {
        asm!("ldtilecfg [{}]", in(reg) std::ptr::from_ref(&config), options(nostack, readonly))
    };
    for first_block in (0..blocks).step_by(2) {
        let top = input[first_block * TILE_ROWS * depth..].as_ptr();
        let bottom = input[(first_block + 1) * TILE_ROWS * depth..].as_ptr();
        for pass in 0..n / COLUMNS {
            let left = packed[2 * pass * tile_words..].as_ptr();
            let right = packed[(2 * pass + 1) * tile_words..].as_ptr();
            // SAFETY: tiles 0–3 hold the pass's sums; 4 and 5 the two input blocks, 6 and 7
            // the two weight tiles. Every load reads 16 rows of 64 bytes inside its buffer:
            // the input blocks are 16 rows of `depth` bf16 (`input_stride` bytes) from
            // `top`/`bottom` plus `step·32` columns, `step < depth/32`; a weight tile's 16 row
            // pairs (64 bytes each) start `step·16·32` words into a tile of `tile_words`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
                for step in 0..depth / TILE_DEPTH {
                    asm!(
                        "tileloadd tmm4, [{top} + {input_stride}*1]",
                        "tileloadd tmm6, [{left} + {tile_stride}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm5, [{bottom} + {input_stride}*1]",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tileloadd tmm7, [{right} + {tile_stride}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        top = in(reg) top.add(step * TILE_DEPTH),
                        bottom = in(reg) bottom.add(step * TILE_DEPTH),
                        left = in(reg) left.add(step * TILE_ROWS * TILE_DEPTH),
                        right = in(reg) right.add(step * TILE_ROWS * TILE_DEPTH),
                        input_stride = in(reg) input_stride,
                        tile_stride = in(reg) tile_stride,
                        options(nostack, readonly)
                    );
                }
                let out = sums.as_mut_ptr();
                asm!(
                    "tilestored [{s0} + {tile_stride}*1], tmm0",
                    "tilestored [{s1} + {tile_stride}*1], tmm1",
                    "tilestored [{s2} + {tile_stride}*1], tmm2",
                    "tilestored [{s3} + {tile_stride}*1], tmm3",
                    s0 = in(reg) out,
                    s1 = in(reg) out.add(256),
                    s2 = in(reg) out.add(512),
                    s3 = in(reg) out.add(768),
                    tile_stride = in(reg) tile_stride,
                    options(nostack)
                );
            }
            for (index, block) in sums.chunks_exact(TILE_ROWS * TILE_ROWS).enumerate() {
                let first_row = (first_block + index / 2) * TILE_ROWS;
                let column = pass * COLUMNS + (index % 2) * TILE_ROWS;
                for (r, row) in block
                    .chunks_exact(TILE_ROWS)
                    .take(m.saturating_sub(first_row))
                    .enumerate()
                {
                    dst[(first_row + r) * n + column..][..TILE_ROWS].copy_from_slice(row);
                }
            }
        }
    }
    // SAFETY: ends this thread's use of the tiles (their state is no longer saved).
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// `m` rows of `x` (`k` wide) into the first `k` columns of `input`'s rows (`width` apart),
/// rounded to the nearest bf16.
///
/// # Safety
/// The CPU has AVX512-BF16; `input` holds `m` rows of `width ≥ k`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn to_bf16(input: &mut [u16], width: usize, x: &[f32], m: usize, k: usize) {
    for (row, out) in x.chunks_exact(k).take(m).zip(input.chunks_exact_mut(width)) {
        let whole = k - k % 32;
        for start in (0..whole).step_by(32) {
            // SAFETY: 32 floats from `start < whole ≤ k` are in `row`, 32 bf16 in `out`.
            unsafe {
                let low = _mm512_loadu_ps(row.as_ptr().add(start));
                let high = _mm512_loadu_ps(row.as_ptr().add(start + 16));
                let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(high, low));
                _mm512_storeu_si512(out.as_mut_ptr().add(start).cast(), packed);
            }
        }
        for (value, half) in row[whole..].iter().zip(&mut out[whole..k]) {
            *half = half::bf16::from_f32(*value).to_bits();
        }
    }
}
