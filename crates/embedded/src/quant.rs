//! Weight matrices in ggml's block formats and the matrix × activations products over them.
//!
//! Activations are quantized to 8 bits per block of 32 (as llama.cpp does), so every product is
//! an integer dot product per block scaled by two floats. The x86-64 kernels use AVX2 and FMA
//! when the CPU has them, picked once at load; the portable kernels are the reference.

use half::f16;
use rayon::prelude::*;

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

/// Eight weight rows' Q4_1 blocks at one block column, interleaved for the x86 kernels so
/// that one 32-byte vector holds four weights of each row: byte `4j + t` of `qs[v]` is byte
/// `4v + t` of row `j`'s block (its low nibble is weight `4v + t`, its high one `16 + 4v + t`).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub struct BlockQ4_1x8 {
    qs: [[u8; 32]; 4],
    d: [f16; 8],
    m: [f16; 8],
}

impl BlockQ4_1x8 {
    fn interleave(rows: [&BlockQ4_1; 8]) -> BlockQ4_1x8 {
        BlockQ4_1x8 {
            qs: std::array::from_fn(|v| std::array::from_fn(|i| rows[i / 4].qs[4 * v + i % 4])),
            d: rows.map(|b| b.d),
            m: rows.map(|b| b.m),
        }
    }

    /// Row `j`'s block.
    fn block(&self, j: usize) -> BlockQ4_1 {
        BlockQ4_1 {
            d: self.d[j],
            m: self.m[j],
            qs: std::array::from_fn(|i| self.qs[i / 4][4 * j + i % 4]),
        }
    }
}

#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_0 {
    d: f16,
    qs: [i8; 32],
}

/// A block of 32 activations: `x ≈ d·q`, with `s = d·Σq` kept for the formats with an offset.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub struct BlockQ8 {
    d: f32,
    s: f32,
    qs: [i8; 32],
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
    /// Q4_1 in groups of eight rows: group `g`, block column `b` at `g * blocks_per_row + b`.
    Q4_1x8(Vec<BlockQ4_1x8>),
    Q8_0(Vec<BlockQ8_0>),
}

/// A weight matrix of `rows` outputs × `cols` inputs, row-major.
#[derive(Debug)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    data: Data,
    simd: bool,
    /// AVX-512 VNNI's 8-bit dot products, for the interleaved layout.
    vnni: bool,
}

/// Rows of activations, as floats and quantized.
pub struct Activations<'a> {
    pub rows: usize,
    pub cols: usize,
    floats: &'a [f32],
    blocks: Vec<BlockQ8>,
}

fn read_blocks<T: Copy>(bytes: &[u8], n: usize, name: &str) -> Result<Vec<T>, QuantError> {
    let size = std::mem::size_of::<T>();
    let bytes = bytes
        .get(..n * size)
        .ok_or_else(|| QuantError::Shape { name: name.into() })?;
    let mut out = Vec::<T>::with_capacity(n);
    // SAFETY: T is a plain `repr(C)` block of integers and f16s, valid for any bit pattern;
    // `bytes` holds exactly `n` of them and the destination has room for `n`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), n * size);
        out.set_len(n);
    }
    Ok(out)
}

/// Whether the CPU has 8-bit dot products (AVX-512 VNNI, on 256-bit vectors too).
fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the AVX2 kernels (with FMA and F16C).
pub fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
    /// Takes a `rows × cols` tensor of ggml type `kind` from the start of `bytes`.
    pub fn from_ggml(
        bytes: &[u8],
        kind: u32,
        rows: usize,
        cols: usize,
        name: &str,
    ) -> Result<Matrix, QuantError> {
        let n = rows * cols;
        if !cols.is_multiple_of(BLOCK) {
            return Err(QuantError::Shape { name: name.into() });
        }
        let data = match kind {
            0 | 1 => Data::F32(read_vector(bytes, kind, n, name)?),
            2 => Data::Q4_0(read_blocks(bytes, n / BLOCK, name)?),
            3 => {
                let blocks: Vec<BlockQ4_1> = read_blocks(bytes, n / BLOCK, name)?;
                // Interleaved rows let one vector instruction serve eight outputs.
                if simd_available() && rows.is_multiple_of(8) {
                    let bpr = cols / BLOCK;
                    let group = |g: usize, b: usize| {
                        BlockQ4_1x8::interleave(std::array::from_fn(|j| {
                            &blocks[(8 * g + j) * bpr + b]
                        }))
                    };
                    Data::Q4_1x8(
                        (0..rows / 8)
                            .flat_map(|g| (0..bpr).map(move |b| (g, b)))
                            .map(|(g, b)| group(g, b))
                            .collect(),
                    )
                } else {
                    Data::Q4_1(blocks)
                }
            }
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
            simd: simd_available(),
            vnni: simd_available() && vnni_available(),
        })
    }

    /// Uses the portable kernels only (to check the fast ones against).
    pub fn portable(mut self) -> Matrix {
        self.simd = false;
        self
    }

    /// Uses the AVX2 kernels even where VNNI is there (to check both).
    #[cfg(test)]
    fn without_vnni(mut self) -> Matrix {
        self.vnni = false;
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
            Data::Q4_1x8(v) => {
                for (b, o) in v[row / 8 * bpr..][..bpr].iter().zip(out.chunks_mut(BLOCK)) {
                    dequantize_q4_1(&b.block(row % 8), o);
                }
            }
            Data::Q8_0(v) => {
                for (b, o) in v[row * bpr..][..bpr].iter().zip(out.chunks_mut(BLOCK)) {
                    let d = f32::from(b.d);
                    for (o, q) in o.iter_mut().zip(b.qs) {
                        *o = q as f32 * d;
                    }
                }
            }
        }
    }

    /// `out[r][j] = Σ_k self[j][k] · x[r][k]` for every activation row `r`; `out` is
    /// `x.rows × self.rows`. Output rows are split across the current rayon pool.
    pub fn matmul(&self, x: &Activations, out: &mut [f32]) {
        Matrix::matmul_each(&mut [(self, out)], x);
    }

    /// [`Matrix::matmul`] of several matrices with the same input, in one parallel loop:
    /// a decode step is short, and every loop's start and end costs the threads a meeting.
    pub fn matmul_each(products: &mut [(&Matrix, &mut [f32])], x: &Activations) {
        let threads = rayon::current_num_threads();
        let mut outs = Vec::with_capacity(products.len());
        let mut tasks = Vec::new();
        for (m, (matrix, out)) in products.iter_mut().enumerate() {
            assert_eq!(x.cols, matrix.cols, "matmul shapes");
            assert_eq!(out.len(), x.rows * matrix.rows, "matmul output");
            let n = matrix.rows;
            // Small chunks balance the threads; each chunk reuses its weight rows for every
            // input row. Chunks hold whole groups of eight rows, for the interleaved layout.
            let chunk = (n / (threads * 8)).clamp(8, 256).next_multiple_of(8);
            tasks.extend((0..n.div_ceil(chunk)).map(|c| (m, c * chunk..((c + 1) * chunk).min(n))));
            outs.push((&**matrix, SharedOut(out.as_mut_ptr())));
        }
        tasks.into_par_iter().for_each(|(m, js)| {
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
        if self.simd {
            // SAFETY: `simd` is set only when the CPU has AVX2, FMA and F16C.
            unsafe {
                match &self.data {
                    Data::Q4_0(w) => avx2::tile_q4_0(w, bpr, &x.blocks, x.rows, js, n, out.0),
                    Data::Q4_1(w) => avx2::tile_q4_1(w, bpr, &x.blocks, x.rows, js, n, out.0),
                    Data::Q4_1x8(w) if self.vnni => {
                        avx2::tile_q4_1x8_vnni(w, bpr, &x.blocks, x.rows, js, n, out.0)
                    }
                    Data::Q4_1x8(w) => avx2::tile_q4_1x8(w, bpr, &x.blocks, x.rows, js, n, out.0),
                    Data::Q8_0(w) => avx2::tile_q8_0(w, bpr, &x.blocks, x.rows, js, n, out.0),
                    Data::F32(w) => tile_f32(w, self.cols, x, js, &write),
                }
            }
            return;
        }
        match &self.data {
            Data::Q4_0(w) => tile_portable(w, bpr, x, js, &write, dot_q4_0),
            Data::Q4_1(w) => tile_portable(w, bpr, x, js, &write, dot_q4_1),
            Data::Q4_1x8(w) => {
                for j in js {
                    let row: Vec<BlockQ4_1> = w[j / 8 * bpr..][..bpr]
                        .iter()
                        .map(|b| b.block(j % 8))
                        .collect();
                    tile_portable(&row, bpr, x, 0..1, &|r, _, v| write(r, j, v), dot_q4_1);
                }
            }
            Data::Q8_0(w) => tile_portable(w, bpr, x, js, &write, dot_q8_0),
            Data::F32(w) => tile_f32(w, self.cols, x, js, &write),
        }
    }
}

struct SharedOut(*mut f32);
// SAFETY: writers touch disjoint elements (see `matmul`).
unsafe impl Sync for SharedOut {}

fn tile_portable<B>(
    w: &[B],
    bpr: usize,
    x: &Activations,
    js: std::ops::Range<usize>,
    write: &dyn Fn(usize, usize, f32),
    dot: fn(&[B], &[BlockQ8]) -> f32,
) {
    for j in js {
        let wr = &w[j * bpr..][..bpr];
        for r in 0..x.rows {
            write(r, j, dot(wr, &x.blocks[r * bpr..][..bpr]));
        }
    }
}

fn tile_f32(
    w: &[f32],
    cols: usize,
    x: &Activations,
    js: std::ops::Range<usize>,
    write: &dyn Fn(usize, usize, f32),
) {
    for j in js {
        let wr = &w[j * cols..][..cols];
        for r in 0..x.rows {
            let xr = &x.floats[r * cols..][..cols];
            write(r, j, wr.iter().zip(xr).map(|(a, b)| a * b).sum());
        }
    }
}

/// A block of 32 activations to 8 bits: `d = max|x| / 127`, each `x/d` rounded half away
/// from zero (by adding ±½ and truncating, as the AVX2 version does, so they agree exactly).
fn quantize(chunk: &[f32]) -> BlockQ8 {
    let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, v) in qs.iter_mut().zip(chunk) {
        let scaled = v * inverse;
        *q = (scaled + 0.5f32.copysign(scaled)).trunc() as i8;
        sum += *q as i32;
    }
    BlockQ8 {
        d,
        s: d * sum as f32,
        qs,
    }
}

fn dequantize_q4_1(b: &BlockQ4_1, out: &mut [f32]) {
    let (d, m) = (f32::from(b.d), f32::from(b.m));
    for i in 0..16 {
        out[i] = (b.qs[i] & 15) as f32 * d + m;
        out[i + 16] = (b.qs[i] >> 4) as f32 * d + m;
    }
}

/// Σ q·x over a block of 4-bit values (low nibbles are values 0–15, high ones 16–31).
fn nibble_dot(qs: &[u8; 16], x: &[i8; 32]) -> f32 {
    let mut sum = 0i32;
    for i in 0..16 {
        sum += (qs[i] & 15) as i32 * x[i] as i32;
        sum += (qs[i] >> 4) as i32 * x[i + 16] as i32;
    }
    sum as f32
}

fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let d = f32::from(w.d);
            d * x.d * nibble_dot(&w.qs, &x.qs) - 8.0 * d * x.s
        })
        .sum()
}

fn dot_q4_1(w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| f32::from(w.d) * x.d * nibble_dot(&w.qs, &x.qs) + f32::from(w.m) * x.s)
        .sum()
}

fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let sum: i32 =
                w.qs.iter()
                    .zip(&x.qs)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum();
            f32::from(w.d) * x.d * sum as f32
        })
        .sum()
}

impl<'a> Activations<'a> {
    /// Quantizes `rows` rows of `cols` floats.
    pub fn new(floats: &'a [f32], cols: usize) -> Activations<'a> {
        assert_eq!(floats.len() % cols, 0, "activation shape");
        let chunks = floats.chunks_exact(BLOCK);
        #[cfg(target_arch = "x86_64")]
        if simd_available() {
            // SAFETY: the CPU has AVX2, FMA and F16C; chunks are BLOCK long.
            let blocks = chunks.map(|c| unsafe { avx2::quantize(c) }).collect();
            return Activations {
                rows: floats.len() / cols,
                cols,
                floats,
                blocks,
            };
        }
        let blocks = chunks.map(quantize).collect();
        Activations {
            rows: floats.len() / cols,
            cols,
            floats,
            blocks,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 kernels, after ggml's: 4-bit weights are unpacked to bytes, multiplied with the
    //! 8-bit activations by `maddubs` (unsigned × signed), summed to i32 and scaled in float.
    //! Each weight block is unpacked once and used for up to four activation rows. The
    //! interleaved Q4_1 kernels (`tile_q4_1x8*`) instead give each 32-bit lane one weight
    //! row, so eight outputs advance per instruction and need no horizontal sums.
    use super::{BlockQ4_0, BlockQ4_1, BlockQ4_1x8, BlockQ8, BlockQ8_0};
    use crate::vector::avx2::hsum;
    use half::f16;
    use std::arch::x86_64::*;

    /// An f16 in all eight lanes, converted by the CPU.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn splat(h: f16) -> __m256 {
        _mm256_cvtph_ps(_mm_set1_epi16(h.to_bits() as i16))
    }

    /// The 32 nibbles of a 4-bit block as bytes, in value order (low nibbles first).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
        let packed = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
        let mask = _mm_set1_epi8(15);
        let lo = _mm_and_si128(packed, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), mask);
        _mm256_set_m128i(hi, lo)
    }

    /// Σ u8 × i8 over 32 lanes, as eight i32 sums converted to float.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(u, s);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load(x: &BlockQ8) -> __m256i {
        unsafe { _mm256_loadu_si256(x.qs.as_ptr().cast()) }
    }

    /// Dot products of one weight row with activation rows `x[r]`, `r < R`; each `x[r]` is a
    /// row of blocks as long as `w`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q4_1<const R: usize>(w: &[BlockQ4_1], x: [&[BlockQ8]; R]) -> [f32; R] {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut offsets = [_mm256_setzero_ps(); R];
        for (b, wb) in w.iter().enumerate() {
            let qx = unsafe { nibbles(&wb.qs) };
            let (d, m) = (splat(wb.d), splat(wb.m));
            for r in 0..R {
                let xb = &x[r][b];
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(xb.d));
                acc[r] = _mm256_fmadd_ps(scale, dot_u8_i8(qx, unsafe { load(xb) }), acc[r]);
                // m·s lands in every lane; one lane's worth is taken at the end.
                offsets[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(xb.s), offsets[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]) + _mm256_cvtss_f32(offsets[r]))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q4_0<const R: usize>(w: &[BlockQ4_0], x: [&[BlockQ8]; R]) -> [f32; R] {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut offsets = [_mm256_setzero_ps(); R];
        for (b, wb) in w.iter().enumerate() {
            let qx = unsafe { nibbles(&wb.qs) };
            let d = splat(wb.d);
            let d8 = _mm256_mul_ps(d, _mm256_set1_ps(8.0));
            for r in 0..R {
                let xb = &x[r][b];
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(xb.d));
                acc[r] = _mm256_fmadd_ps(scale, dot_u8_i8(qx, unsafe { load(xb) }), acc[r]);
                offsets[r] = _mm256_fmadd_ps(d8, _mm256_set1_ps(xb.s), offsets[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]) - _mm256_cvtss_f32(offsets[r]))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_q8_0<const R: usize>(w: &[BlockQ8_0], x: [&[BlockQ8]; R]) -> [f32; R] {
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, wb) in w.iter().enumerate() {
            let qx = unsafe { _mm256_loadu_si256(wb.qs.as_ptr().cast()) };
            // maddubs wants one unsigned side: move the weights' signs onto the activations.
            let ax = _mm256_sign_epi8(qx, qx);
            let d = splat(wb.d);
            for r in 0..R {
                let xb = &x[r][b];
                let sy = _mm256_sign_epi8(unsafe { load(xb) }, qx);
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(xb.d));
                acc[r] = _mm256_fmadd_ps(scale, dot_u8_i8(ax, sy), acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }

    macro_rules! tile {
        ($name:ident, $block:ty, $dot:ident) => {
            /// # Safety
            /// The CPU has AVX2, FMA and F16C; `out` has room for `rows × n` floats and no one
            /// else writes columns `js` while this runs.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name(
                w: &[$block],
                bpr: usize,
                x: &[BlockQ8],
                rows: usize,
                js: std::ops::Range<usize>,
                n: usize,
                out: *mut f32,
            ) {
                let xr = |r: usize| &x[r * bpr..][..bpr];
                for j in js {
                    let wr = &w[j * bpr..][..bpr];
                    let mut r = 0;
                    while r + 4 <= rows {
                        let v = unsafe { $dot::<4>(wr, [xr(r), xr(r + 1), xr(r + 2), xr(r + 3)]) };
                        for (k, v) in v.into_iter().enumerate() {
                            unsafe { *out.add((r + k) * n + j) = v };
                        }
                        r += 4;
                    }
                    while r + 2 <= rows {
                        let v = unsafe { $dot::<2>(wr, [xr(r), xr(r + 1)]) };
                        for (k, v) in v.into_iter().enumerate() {
                            unsafe { *out.add((r + k) * n + j) = v };
                        }
                        r += 2;
                    }
                    if r < rows {
                        let [v] = unsafe { $dot::<1>(wr, [xr(r)]) };
                        unsafe { *out.add(r * n + j) = v };
                    }
                }
            }
        };
    }
    tile!(tile_q4_0, BlockQ4_0, dot_q4_0);

    /// [`super::quantize`], eight lanes at a time.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C; `chunk` holds 32 floats.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn quantize(chunk: &[f32]) -> BlockQ8 {
        assert_eq!(chunk.len(), 32, "an activation block");
        let sign = _mm256_set1_ps(-0.0);
        let v: [__m256; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * i)) });
        let abs = v.map(|x| _mm256_andnot_ps(sign, x));
        let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let inverse = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let half = _mm256_set1_ps(0.5);
        let q = v.map(|x| {
            let scaled = _mm256_mul_ps(x, inverse);
            let away = _mm256_add_ps(scaled, _mm256_or_ps(half, _mm256_and_ps(scaled, sign)));
            _mm256_cvttps_epi32(away)
        });
        let sums = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let sum = _mm256_cvtepi32_ps(sums);
        // i32 → i16 → i8 packs within 128-bit lanes; one permutation restores the order.
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let ordered =
            _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        let mut qs = [0i8; 32];
        unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), ordered) };
        BlockQ8 {
            d,
            s: d * hsum(sum),
            qs,
        }
    }

    /// The four bytes of activations `4i..4i + 4` of a block in every 32-bit lane.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn word(x: &BlockQ8, i: usize) -> __m256i {
        // SAFETY: i < 8, so the four bytes lie inside `qs`.
        _mm256_set1_epi32(unsafe { x.qs.as_ptr().cast::<i32>().add(i).read_unaligned() })
    }

    /// Σ weight × activation over one block, for the eight rows of an interleaved group: `lo`
    /// and `hi` are its low and high nibbles. Eight `maddubs` sums fit in i16 (8 · 2 · 15 · 127).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_x8(lo: &[__m256i; 4], hi: &[__m256i; 4], x: &BlockQ8) -> __m256i {
        let mut sum = _mm256_setzero_si256();
        for v in 0..4 {
            sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(lo[v], unsafe { word(x, v) }));
            sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(hi[v], unsafe { word(x, 4 + v) }));
        }
        _mm256_madd_epi16(sum, _mm256_set1_epi16(1))
    }

    /// [`dot_x8`] with AVX-512 VNNI's `dpbusd`, which multiplies and sums four bytes at once.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    unsafe fn dot_x8_vnni(lo: &[__m256i; 4], hi: &[__m256i; 4], x: &BlockQ8) -> __m256i {
        // Two chains, so one sum does not wait on the other.
        let (mut a, mut b) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for v in 0..4 {
            unsafe {
                a = _mm256_dpbusd_epi32(a, lo[v], word(x, v));
                b = _mm256_dpbusd_epi32(b, hi[v], word(x, 4 + v));
            }
        }
        _mm256_add_epi32(a, b)
    }

    macro_rules! tile_x8 {
        ($name:ident, $rows:ident, $features:literal, $dot:ident) => {
            /// # Safety
            /// The CPU has the features this is compiled for; `js` covers whole groups of
            /// eight rows; `out` has room for `rows × n` floats and no one else writes
            /// columns `js` while this runs.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(
                w: &[BlockQ4_1x8],
                bpr: usize,
                x: &[BlockQ8],
                rows: usize,
                js: std::ops::Range<usize>,
                n: usize,
                out: *mut f32,
            ) {
                for g in js.start / 8..js.end.div_ceil(8) {
                    let wg = &w[g * bpr..][..bpr];
                    let mut r = 0;
                    while r + 4 <= rows {
                        unsafe { $rows::<4>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n) };
                        r += 4;
                    }
                    // Two or three streams decoding together: one unpacking serves them all.
                    match rows - r {
                        3 => unsafe {
                            $rows::<3>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n)
                        },
                        2 => unsafe {
                            $rows::<2>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n)
                        },
                        1 => unsafe {
                            $rows::<1>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n)
                        },
                        _ => {}
                    }
                }
            }

            /// Eight outputs of `R` activation rows: each lane of `acc` is one weight row.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $rows<const R: usize>(
                w: &[BlockQ4_1x8],
                x: &[BlockQ8],
                bpr: usize,
                out: *mut f32,
                n: usize,
            ) {
                let mask = _mm256_set1_epi8(15);
                let mut acc = [_mm256_setzero_ps(); R];
                for (b, wb) in w.iter().enumerate() {
                    let mut lo = [_mm256_setzero_si256(); 4];
                    let mut hi = [_mm256_setzero_si256(); 4];
                    for v in 0..4 {
                        let packed = unsafe { _mm256_load_si256(wb.qs[v].as_ptr().cast()) };
                        lo[v] = _mm256_and_si256(packed, mask);
                        hi[v] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask);
                    }
                    let d = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(wb.d.as_ptr().cast()) });
                    let m = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(wb.m.as_ptr().cast()) });
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let xb = &x[k * bpr + b];
                        let sum = _mm256_cvtepi32_ps(unsafe { $dot(&lo, &hi, xb) });
                        *acc = _mm256_fmadd_ps(sum, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), *acc);
                        *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(xb.s), *acc);
                    }
                }
                for (k, acc) in acc.iter().enumerate() {
                    unsafe { _mm256_storeu_ps(out.add(k * n), *acc) };
                }
            }
        };
    }
    tile_x8!(tile_q4_1x8, rows_x8, "avx2,fma,f16c", dot_x8);
    tile_x8!(
        tile_q4_1x8_vnni,
        rows_x8_vnni,
        "avx2,fma,f16c,avx512vnni,avx512vl",
        dot_x8_vnni
    );
    tile!(tile_q4_1, BlockQ4_1, dot_q4_1);
    tile!(tile_q8_0, BlockQ8_0, dot_q8_0);
}

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
        let (rows, cols, n) = (40, 128, 7);
        let x: Vec<f32> = bytes(n * cols, 7)
            .iter()
            .map(|&b| b as f32 / 64.0 - 2.0)
            .collect();
        let acts = Activations::new(&x, cols);
        for kind in [2, 3, 8] {
            let raw = weights(kind, rows, cols);
            let fast = Matrix::from_ggml(&raw, kind, rows, cols, "w").unwrap();
            let avx2 = Matrix::from_ggml(&raw, kind, rows, cols, "w")
                .unwrap()
                .without_vnni();
            let portable = Matrix::from_ggml(&raw, kind, rows, cols, "w")
                .unwrap()
                .portable();
            let (mut a, mut a2, mut b) = (
                vec![0.0; n * rows],
                vec![0.0; n * rows],
                vec![0.0; n * rows],
            );
            fast.matmul(&acts, &mut a);
            avx2.matmul(&acts, &mut a2);
            portable.matmul(&acts, &mut b);
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
        if simd_available() {
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
    }
}
