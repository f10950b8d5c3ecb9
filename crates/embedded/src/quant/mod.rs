//! Weight matrices in ggml's block formats and the matrix × activations products over them.
//!
//! Activations are quantized to 8 bits per block of 32 (as llama.cpp does), so every product is
//! an integer dot product per block scaled by two floats. The x86-64 kernels use AVX-512 VNNI
//! (weights interleaved sixteen rows wide), else AVX2 and FMA (eight rows), as the CPU has them,
//! picked once at load; the portable kernels are the reference.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

use half::f16;

use crate::cpu::{self, Kernels};

use portable::{
    dequantize_q4_1, dequantize_q8_0, dot_q4_0, dot_q4_1, dot_q8_0, quantize, tile_f32,
    tile_interleaved, tile_portable,
};

/// Values per quantization block in every format here.
pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ4_0 {
    d: f16,
    qs: [u8; 16],
}

#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ4_1 {
    d: f16,
    m: f16,
    qs: [u8; 16],
}

/// `N` weight rows' Q4_1 blocks at one block column, interleaved for the x86 kernels so that
/// each 32-bit lane of a vector holds four weights of one row: `qs[v][j]` is bytes `4v..4v + 4`
/// of row `j`'s block (their low nibbles are weights `4v..4v + 4`, their high ones
/// `16 + 4v..16 + 4v + 4`). Eight rows fill an AVX2 vector, sixteen an AVX-512 one.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub struct BlockQ4_1xN<const N: usize> {
    qs: [[[u8; 4]; N]; 4],
    d: [f16; N],
    m: [f16; N],
}

/// A group of interleaved weight rows at one block column.
trait Interleaved {
    /// Rows in a group.
    const ROWS: usize;
    type Block;
    /// Row `j`'s block.
    fn block(&self, j: usize) -> Self::Block;
}

impl<const N: usize> BlockQ4_1xN<N> {
    fn interleave(rows: [&BlockQ4_1; N]) -> BlockQ4_1xN<N> {
        BlockQ4_1xN {
            qs: std::array::from_fn(|v| rows.map(|r| std::array::from_fn(|t| r.qs[4 * v + t]))),
            d: rows.map(|b| b.d),
            m: rows.map(|b| b.m),
        }
    }
}

impl<const N: usize> Interleaved for BlockQ4_1xN<N> {
    const ROWS: usize = N;
    type Block = BlockQ4_1;

    fn block(&self, j: usize) -> BlockQ4_1 {
        BlockQ4_1 {
            d: self.d[j],
            m: self.m[j],
            qs: std::array::from_fn(|i| self.qs[i / 4][j][i % 4]),
        }
    }
}

#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_0 {
    d: f16,
    qs: [i8; 32],
}

/// `N` weight rows' Q8_0 blocks at one block column, interleaved as [`BlockQ4_1xN`] is
/// (`qs[v][j]` is weights `4v..4v + 4` of row `j`) and stored plus 128, so that VNNI's
/// unsigned × signed dot product takes them as they are; the kernels take the 128 back out
/// with the activations' sums.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub struct BlockQ8_0xN<const N: usize> {
    qs: [[[u8; 4]; N]; 8],
    d: [f16; N],
}

impl<const N: usize> BlockQ8_0xN<N> {
    fn interleave(rows: [&BlockQ8_0; N]) -> BlockQ8_0xN<N> {
        BlockQ8_0xN {
            qs: std::array::from_fn(|v| {
                rows.map(|r| std::array::from_fn(|t| (r.qs[4 * v + t] as u8) ^ 0x80))
            }),
            d: rows.map(|b| b.d),
        }
    }
}

impl<const N: usize> Interleaved for BlockQ8_0xN<N> {
    const ROWS: usize = N;
    type Block = BlockQ8_0;

    fn block(&self, j: usize) -> BlockQ8_0 {
        BlockQ8_0 {
            d: self.d[j],
            qs: std::array::from_fn(|i| (self.qs[i / 4][j][i % 4] ^ 0x80) as i8),
        }
    }
}

/// A block of 32 activations: `x ≈ d·q`, with `s = d·Σq` kept for the formats with an offset.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub struct BlockQ8 {
    d: f32,
    s: f32,
    qs: [i8; 32],
}

impl BlockQ8 {
    const ZERO: BlockQ8 = BlockQ8 {
        d: 0.0,
        s: 0.0,
        qs: [0; 32],
    };

    /// Activations `4u..4u + 4` as one word, for the interleaved kernels to broadcast.
    #[inline(always)]
    fn word(&self, u: usize) -> i32 {
        assert!(u < 8, "a block has eight words");
        // SAFETY: u < 8, so the four bytes lie inside `qs`.
        unsafe { self.qs.as_ptr().cast::<i32>().add(u).read_unaligned() }
    }
}

/// Why a tensor cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error(
        "tensor `{name}` has ggml type {kind}, which the embedded backend does not run (F32, F16, Q4_0, Q4_1 and Q8_0 are supported)"
    )]
    Unsupported { name: String, kind: u32 },
    #[error("tensor `{name}` is truncated or has a shape that does not fit its type")]
    Shape { name: String },
}

#[derive(Debug)]
enum Data {
    F32(Vec<f32>),
    Q4_0(Vec<BlockQ4_0>),
    Q4_1(Vec<BlockQ4_1>),
    /// Q4_1 in groups of eight rows (for AVX2) or sixteen (for AVX-512): group `g`, block
    /// column `b` at `g * blocks_per_row + b`.
    Q4_1x8(Vec<BlockQ4_1xN<8>>),
    Q4_1x16(Vec<BlockQ4_1xN<16>>),
    Q8_0(Vec<BlockQ8_0>),
    /// Q8_0 in groups of sixteen rows, for AVX-512 (AVX2's `maddubs` would saturate on
    /// unsigned 8-bit weights).
    Q8_0x16(Vec<BlockQ8_0xN<16>>),
}

/// A weight matrix of `rows` outputs × `cols` inputs, row-major.
#[derive(Debug)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    data: Data,
    /// The kernels that run it (the layout was chosen for them).
    kernels: Kernels,
}

/// Rows of activations, as floats and quantized.
pub struct Activations<'a> {
    pub rows: usize,
    pub cols: usize,
    floats: &'a [f32],
    blocks: Vec<BlockQ8>,
}

/// The first `n` blocks' bytes of a tensor.
fn block_bytes<'a, T>(bytes: &'a [u8], n: usize, name: &str) -> Result<&'a [u8], QuantError> {
    n.checked_mul(std::mem::size_of::<T>())
        .and_then(|len| bytes.get(..len))
        .ok_or_else(|| QuantError::Shape { name: name.into() })
}

fn read_blocks<T: Copy>(bytes: &[u8], n: usize, name: &str) -> Result<Vec<T>, QuantError> {
    let size = std::mem::size_of::<T>();
    let bytes = block_bytes::<T>(bytes, n, name)?;
    let mut out = Vec::<T>::with_capacity(n);
    // SAFETY: T is a plain `repr(C)` block of integers and f16s, valid for any bit pattern;
    // `bytes` holds exactly `n` of them and the destination has room for `n`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), n * size);
        out.set_len(n);
    }
    Ok(out)
}

/// Reads a vector of floats (norm weights) stored as F32 or F16.
pub fn read_vector(
    bytes: &[u8],
    kind: u32,
    len: usize,
    name: &str,
) -> Result<Vec<f32>, QuantError> {
    match kind {
        0 => read_blocks::<f32>(bytes, len, name),
        1 => Ok(read_blocks::<f16>(bytes, len, name)?
            .into_iter()
            .map(f32::from)
            .collect()),
        kind => Err(QuantError::Unsupported {
            name: name.into(),
            kind,
        }),
    }
}

impl Matrix {
    /// Takes a `rows × cols` tensor of ggml type `kind` from the start of `bytes`, laid out
    /// for the widest kernels this CPU runs.
    pub fn from_ggml(
        bytes: &[u8],
        kind: u32,
        rows: usize,
        cols: usize,
        name: &str,
    ) -> Result<Matrix, QuantError> {
        Matrix::for_kernels(bytes, kind, rows, cols, name, Kernels::detect())
    }

    fn for_kernels(
        bytes: &[u8],
        kind: u32,
        rows: usize,
        cols: usize,
        name: &str,
        kernels: Kernels,
    ) -> Result<Matrix, QuantError> {
        let n = rows.checked_mul(cols).filter(|_| cols > 0);
        let Some(n) = n.filter(|_| cols.is_multiple_of(BLOCK)) else {
            return Err(QuantError::Shape { name: name.into() });
        };
        let bpr = cols / BLOCK;
        // Interleaved rows let one vector instruction serve eight or sixteen outputs.
        let wide = kernels == Kernels::Avx512 && rows.is_multiple_of(16);
        let narrow = kernels >= Kernels::Avx2 && rows.is_multiple_of(8);
        let data = match kind {
            0 | 1 => Data::F32(read_vector(bytes, kind, n, name)?),
            2 => Data::Q4_0(read_blocks(bytes, n / BLOCK, name)?),
            3 if wide => Data::Q4_1x16(groups(
                bytes,
                n / BLOCK,
                bpr,
                name,
                BlockQ4_1xN::interleave,
            )?),
            3 if narrow => Data::Q4_1x8(groups(
                bytes,
                n / BLOCK,
                bpr,
                name,
                BlockQ4_1xN::interleave,
            )?),
            3 => Data::Q4_1(read_blocks(bytes, n / BLOCK, name)?),
            8 if wide => Data::Q8_0x16(groups(
                bytes,
                n / BLOCK,
                bpr,
                name,
                BlockQ8_0xN::interleave,
            )?),
            8 => Data::Q8_0(read_blocks(bytes, n / BLOCK, name)?),
            kind => {
                return Err(QuantError::Unsupported {
                    name: name.into(),
                    kind,
                });
            }
        };
        Ok(Matrix {
            rows,
            cols,
            data,
            kernels,
        })
    }

    /// Uses the portable kernels only (to check the fast ones against).
    pub fn portable(mut self) -> Matrix {
        self.kernels = Kernels::Portable;
        self
    }

    /// Row `row` as floats (the embedding lookup).
    pub fn row(&self, row: usize, out: &mut [f32]) {
        let bpr = self.cols / BLOCK;
        match &self.data {
            Data::F32(v) => out.copy_from_slice(&v[row * self.cols..][..self.cols]),
            Data::Q4_0(v) => {
                for (b, o) in v[row * bpr..][..bpr].iter().zip(out.chunks_mut(BLOCK)) {
                    let d = f32::from(b.d);
                    for i in 0..16 {
                        o[i] = ((b.qs[i] & 15) as f32 - 8.0) * d;
                        o[i + 16] = ((b.qs[i] >> 4) as f32 - 8.0) * d;
                    }
                }
            }
            Data::Q4_1(v) => {
                for (b, o) in v[row * bpr..][..bpr].iter().zip(out.chunks_mut(BLOCK)) {
                    dequantize_q4_1(b, o);
                }
            }
            Data::Q4_1x8(v) => interleaved_row(v, bpr, row, out, dequantize_q4_1),
            Data::Q4_1x16(v) => interleaved_row(v, bpr, row, out, dequantize_q4_1),
            Data::Q8_0(v) => {
                for (b, o) in v[row * bpr..][..bpr].iter().zip(out.chunks_mut(BLOCK)) {
                    dequantize_q8_0(b, o);
                }
            }
            Data::Q8_0x16(v) => interleaved_row(v, bpr, row, out, dequantize_q8_0),
        }
    }

    /// `out[r][j] = Σ_k self[j][k] · x[r][k]` for every activation row `r`; `out` is
    /// `x.rows × self.rows`. Output rows are split across the current thread's team.
    pub fn matmul(&self, x: &Activations, out: &mut [f32]) {
        Matrix::matmul_each(&mut [(self, out)], x);
    }

    /// [`Matrix::matmul`] of several matrices with the same input, in one parallel loop:
    /// a decode step is short, and every loop's start and end costs the threads a meeting.
    pub fn matmul_each(products: &mut [(&Matrix, &mut [f32])], x: &Activations) {
        let threads = crate::team::threads();
        let mut outs = Vec::with_capacity(products.len());
        let mut tasks = Vec::new();
        for (m, (matrix, out)) in products.iter_mut().enumerate() {
            assert_eq!(x.cols, matrix.cols, "matmul shapes");
            assert_eq!(out.len(), x.rows * matrix.rows, "matmul output");
            let n = matrix.rows;
            // Small chunks balance the threads; each chunk reuses its weight rows for every
            // input row. Chunks hold whole groups of rows, for the interleaved layouts.
            let chunk = (n / (threads * 8)).clamp(16, 256).next_multiple_of(16);
            tasks.extend((0..n.div_ceil(chunk)).map(|c| (m, c * chunk..((c + 1) * chunk).min(n))));
            outs.push((&**matrix, SharedOut(out.as_mut_ptr())));
        }
        crate::team::for_each(tasks.len(), |t| {
            let (m, js) = tasks[t].clone();
            let (matrix, out) = &outs[m];
            // SAFETY: chunks cover disjoint output columns of each product, and the outputs
            // outlive the loop.
            unsafe { matrix.tile(x, js, out) }
        });
    }

    unsafe fn tile(&self, x: &Activations, js: std::ops::Range<usize>, out: &SharedOut) {
        let n = self.rows;
        let bpr = self.cols / BLOCK;
        let write = |r: usize, j: usize, v: f32| unsafe { *out.0.add(r * n + j) = v };
        #[cfg(target_arch = "x86_64")]
        if self.kernels >= Kernels::Avx2 {
            let (b, rows) = (&x.blocks, x.rows);
            // SAFETY: the layouts are chosen for kernels the CPU has (`Kernels::detect`): the
            // sixteen-row ones only with AVX-512, the rest with AVX2, FMA and F16C.
            unsafe {
                match &self.data {
                    Data::Q4_0(w) => avx2::tile_q4_0(w, bpr, b, rows, js, n, out.0),
                    Data::Q4_1(w) => avx2::tile_q4_1(w, bpr, b, rows, js, n, out.0),
                    Data::Q4_1x8(w) => avx2::tile_q4_1x8(w, bpr, b, rows, js, n, out.0),
                    Data::Q4_1x16(w) => avx512::tile_q4_1x16(w, bpr, b, rows, js, n, out.0),
                    Data::Q8_0(w) => avx2::tile_q8_0(w, bpr, b, rows, js, n, out.0),
                    Data::Q8_0x16(w) => avx512::tile_q8_0x16(w, bpr, b, rows, js, n, out.0),
                    Data::F32(w) => tile_f32(w, self.cols, x, js, &write),
                }
            }
            return;
        }
        match &self.data {
            Data::Q4_0(w) => tile_portable(w, bpr, x, js, &write, dot_q4_0),
            Data::Q4_1(w) => tile_portable(w, bpr, x, js, &write, dot_q4_1),
            Data::Q4_1x8(w) => tile_interleaved(w, bpr, x, js, &write, dot_q4_1),
            Data::Q4_1x16(w) => tile_interleaved(w, bpr, x, js, &write, dot_q4_1),
            Data::Q8_0(w) => tile_portable(w, bpr, x, js, &write, dot_q8_0),
            Data::Q8_0x16(w) => tile_interleaved(w, bpr, x, js, &write, dot_q8_0),
            Data::F32(w) => tile_f32(w, self.cols, x, js, &write),
        }
    }
}

/// The `n` blocks in `bytes` interleaved: rows `N·g..N·g + N` at each block column, group by
/// group, read straight from the file's bytes (a copy of the blocks first would double a
/// large tensor's memory while it loads).
fn groups<B: Copy, G, const N: usize>(
    bytes: &[u8],
    n: usize,
    bpr: usize,
    name: &str,
    interleave: fn([&B; N]) -> G,
) -> Result<Vec<G>, QuantError> {
    let bytes = block_bytes::<B>(bytes, n, name)?;
    // SAFETY: B is a plain `repr(C)` block of integers and f16s, valid for any bit pattern;
    // `bytes` holds `n` of them, and every index below is under `n`.
    let block = |i: usize| unsafe { bytes.as_ptr().cast::<B>().add(i).read_unaligned() };
    Ok((0..n / bpr / N)
        .flat_map(|g| (0..bpr).map(move |b| (g, b)))
        .map(|(g, b)| {
            let rows: [B; N] = std::array::from_fn(|j| block((N * g + j) * bpr + b));
            interleave(rows.each_ref())
        })
        .collect())
}

/// Row `row` of interleaved groups, as floats.
fn interleaved_row<G: Interleaved>(
    groups: &[G],
    bpr: usize,
    row: usize,
    out: &mut [f32],
    dequantize: fn(&G::Block, &mut [f32]),
) {
    for (g, o) in groups[row / G::ROWS * bpr..][..bpr]
        .iter()
        .zip(out.chunks_mut(BLOCK))
    {
        dequantize(&g.block(row % G::ROWS), o);
    }
}

struct SharedOut(*mut f32);
// SAFETY: writers touch disjoint elements (see `matmul`).
unsafe impl Sync for SharedOut {}

impl<'a> Activations<'a> {
    /// Quantizes `rows` rows of `cols` floats.
    pub fn new(floats: &'a [f32], cols: usize) -> Activations<'a> {
        assert_eq!(floats.len() % cols, 0, "activation shape");
        let quantize_one: fn(&[f32]) -> BlockQ8 = match cpu::simd_available() {
            // SAFETY: the CPU has AVX2, FMA and F16C; chunks are BLOCK long.
            #[cfg(target_arch = "x86_64")]
            true => |c| unsafe { avx2::quantize(c) },
            _ => quantize,
        };
        let mut blocks = vec![BlockQ8::ZERO; floats.len() / BLOCK];
        // A prompt's rows are many: their blocks are quantized on every thread of the team.
        crate::team::for_each_chunk(&mut blocks, QUANTIZE_TASK, |k, out| {
            let from = &floats[k * QUANTIZE_TASK * BLOCK..];
            for (block, chunk) in out.iter_mut().zip(from.chunks_exact(BLOCK)) {
                *block = quantize_one(chunk);
            }
        });
        Activations {
            rows: floats.len() / cols,
            cols,
            floats,
            blocks,
        }
    }
}

/// Blocks one task of [`Activations::new`] quantizes: a decode step's rows are one task.
const QUANTIZE_TASK: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    /// Random-looking but reproducible bytes.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    /// Blocks whose f16 scales are small, finite numbers.
    fn weights(kind: u32, rows: usize, cols: usize) -> Vec<u8> {
        let size = match kind {
            2 => 18,
            3 => 20,
            8 => 34,
            _ => unreachable!(),
        };
        let mut raw = bytes(rows * cols / BLOCK * size, kind as u64);
        for block in raw.chunks_mut(size) {
            let scale = f16::from_f32(0.01 + block[0] as f32 / 5000.0);
            block[..2].copy_from_slice(&scale.to_le_bytes());
            if kind == 3 {
                block[2..4].copy_from_slice(&f16::from_f32(-0.05).to_le_bytes());
            }
        }
        raw
    }

    #[test]
    fn fast_kernels_agree_with_portable_ones_and_with_floats() {
        // Seven activation rows take the four- and three-row paths; two, the decode of two
        // streams; one, the single stream's.
        // 48 weight rows fill groups of sixteen; 40, only groups of eight (the AVX2 layout
        // even where AVX-512 is there, and plain Q8_0).
        for rows in [48, 40] {
            for n in [7, 2, 1] {
                agree_with_portable_and_floats(n, rows);
            }
        }
    }

    fn agree_with_portable_and_floats(n: usize, rows: usize) {
        let cols = 128;
        let x: Vec<f32> = bytes(n * cols, 7)
            .iter()
            .map(|&b| b as f32 / 64.0 - 2.0)
            .collect();
        let acts = Activations::new(&x, cols);
        for kind in [2, 3, 8] {
            let raw = weights(kind, rows, cols);
            let fast = Matrix::from_ggml(&raw, kind, rows, cols, "w").unwrap();
            let narrower = Kernels::detect().min(Kernels::Avx2);
            let avx2 = Matrix::for_kernels(&raw, kind, rows, cols, "w", narrower).unwrap();
            let portable = Matrix::from_ggml(&raw, kind, rows, cols, "w")
                .unwrap()
                .portable();
            let (mut a, mut a2, mut b) = (
                vec![0.0; n * rows],
                vec![0.0; n * rows],
                vec![0.0; n * rows],
            );
            if Kernels::detect() == Kernels::Avx512 && kind != 2 && rows.is_multiple_of(16) {
                // The sixteen-row layouts are what the fast path runs.
                assert!(matches!(fast.data, Data::Q4_1x16(_) | Data::Q8_0x16(_)));
            }
            fast.matmul(&acts, &mut a);
            avx2.matmul(&acts, &mut a2);
            portable.matmul(&acts, &mut b);
            if kind == 3 {
                // Sixteen rows a vector or eight, each lane does the same sums in order.
                assert_eq!(a, a2, "Q4_1, sixteen rows a vector against eight");
            }
            for (x, y) in a.iter().zip(&a2) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "type {kind}: {x} vs {y}"
                );
            }
            let mut row = vec![0.0; cols];
            for j in 0..rows {
                fast.row(j, &mut row);
                for r in 0..n {
                    let exact: f32 = row
                        .iter()
                        .zip(&x[r * cols..][..cols])
                        .map(|(w, x)| w * x)
                        .sum();
                    let (a, b) = (a[r * rows + j], b[r * rows + j]);
                    assert!(
                        (a - b).abs() <= 1e-3 * (1.0 + b.abs()),
                        "type {kind} row {r} col {j}: {a} vs {b} (exact {exact})"
                    );
                    // Rounding each activation to its block's 8-bit grid moves it at most
                    // half a step (amax/254), which bounds the error of the product.
                    let bound: f32 = row
                        .chunks(BLOCK)
                        .zip(x[r * cols..][..cols].chunks(BLOCK))
                        .map(|(w, x)| {
                            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                            w.iter().map(|w| w.abs()).sum::<f32>() * amax / 254.0
                        })
                        .sum();
                    assert!(
                        (b - exact).abs() <= bound * 1.01 + 1e-4,
                        "type {kind}: {b} vs {exact} (bound {bound})"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_quantization_agrees_with_the_portable_one() {
        #[cfg(target_arch = "x86_64")]
        if cpu::simd_available() {
            // Values across magnitudes, signs and exact halves of the grid; a zero block.
            let mut x: Vec<f32> = bytes(32 * 40, 3)
                .iter()
                .enumerate()
                .map(|(i, &b)| (b as f32 - 128.0) * (1.0 + (i % 7) as f32).powi(3) / 97.0)
                .collect();
            x[32..64].copy_from_slice(&[0.0; 32]);
            x[64..96].copy_from_slice(&std::array::from_fn::<f32, 32, _>(|i| i as f32 - 15.5));
            for chunk in x.chunks_exact(BLOCK) {
                let (a, b) = (quantize(chunk), unsafe { avx2::quantize(chunk) });
                assert_eq!(a.qs, b.qs);
                assert_eq!(a.d, b.d);
                // The sum is exact in either; only the order of float adds may differ.
                assert!(
                    (a.s - b.s).abs() <= 1e-6 * (1.0 + a.s.abs()),
                    "{} vs {}",
                    a.s,
                    b.s
                );
            }
        }
    }

    #[test]
    fn unsupported_types_and_short_tensors_are_errors() {
        assert!(matches!(
            Matrix::from_ggml(&[0; 1000], 12, 1, 256, "blk.0.ffn_up.weight"),
            Err(QuantError::Unsupported { kind: 12, .. })
        ));
        assert!(matches!(
            Matrix::from_ggml(&[0; 10], 8, 2, 32, "w"),
            Err(QuantError::Shape { .. })
        ));
        // No columns (a file may say so), or more than memory holds.
        for (rows, cols) in [(64, 0), (usize::MAX / 16, 64)] {
            for kind in [0, 3, 8] {
                assert!(matches!(
                    Matrix::from_ggml(&[0; 4096], kind, rows, cols, "w"),
                    Err(QuantError::Shape { .. })
                ));
            }
        }
    }
}
