//! Causal attention over a sequence's cached keys and values, for a block of query rows of
//! one sequence and the query heads that share one key/value head (grouped-query attention):
//! each cached key and value is read and converted once for the whole block.
//!
//! The cache holds signed bytes with a scale per vector ([`crate::kv`]), widened to f32 a
//! tile at a time. The x86-64 versions use AVX-512 for heads of 64 (a prompt's rows as small
//! matrix products, a generated token's few queries with a tree of shuffles), else AVX2, FMA
//! and F16C (heads of 64 or 128), picked at run time; the portable one is the reference they
//! are tested against.

use crate::kv::View;

/// One key/value head's cache in one layer: position after position, each `head_dim` long.
pub struct HeadCache<'a> {
    pub keys: View<'a>,
    pub values: View<'a>,
}

/// One query: its vector, how many positions it sees, and where its result goes.
pub struct Query<'a> {
    pub vector: &'a [f32],
    pub span: usize,
    pub out: &'a mut [f32],
}

/// Whose queries a call attends: a prompt's rows, or tokens just generated. The two may take
/// different kernels, so a query's result depends on its kind and never on what else is in
/// its block or step: a prompt gives the same keys however the scheduler splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    Prompt,
    Generated,
}

/// Attends every query over its span of `cache`. `scratch` is reused between calls.
pub fn attend(
    queries: &mut [Query],
    cache: &HeadCache,
    scale: f32,
    scratch: &mut Vec<f32>,
    rows: Rows,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd_available() {
        let width = queries.first().map_or(0, |q| q.vector.len());
        if queries.iter().all(|q| q.vector.len() == width) {
            if width == 64 && crate::cpu::Kernels::detect() == crate::cpu::Kernels::Avx512 {
                // SAFETY: the CPU has AVX-512 F besides AVX2, FMA and F16C; heads are 64 long.
                return unsafe {
                    match rows {
                        Rows::Prompt => avx512::attend(queries, cache, scale, scratch),
                        Rows::Generated => avx512::attend_few(queries, cache, scale, scratch),
                    }
                };
            }
            // SAFETY: the CPU has AVX2, FMA and F16C; every head is `width` long.
            match width {
                64 => return unsafe { avx2::attend::<8>(queries, cache, scale, scratch) },
                128 => return unsafe { avx2::attend::<16>(queries, cache, scale, scratch) },
                _ => {}
            }
        }
    }
    portable(queries, cache, scale, scratch);
}

fn portable(queries: &mut [Query], cache: &HeadCache, scale: f32, scratch: &mut Vec<f32>) {
    let Some(hd) = queries.first().map(|q| q.vector.len()) else {
        return;
    };
    let span = queries.iter().map(|q| q.span).max().unwrap_or(0);
    let n = queries.len();
    scratch.clear();
    scratch.resize(n * span + hd, 0.0);
    let (scores, row) = scratch.split_at_mut(n * span);
    for t in 0..span {
        cache.keys.widen(t, row);
        for (i, q) in queries.iter().enumerate().filter(|(_, q)| t < q.span) {
            scores[i * span + t] =
                q.vector.iter().zip(&*row).map(|(a, b)| a * b).sum::<f32>() * scale;
        }
    }
    let totals: Vec<f32> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| softmax(&mut scores[i * span..][..q.span]))
        .collect();
    for q in queries.iter_mut() {
        q.out.fill(0.0);
    }
    for t in 0..span {
        cache.values.widen(t, row);
        for (i, q) in queries.iter_mut().enumerate().filter(|(_, q)| t < q.span) {
            let weight = scores[i * span + t] / totals[i];
            for (o, v) in q.out.iter_mut().zip(&*row) {
                *o += weight * v;
            }
        }
    }
}

/// Asks for the keys' and values' bytes and scales of `positions` ahead of use.
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch(cache: &HeadCache, positions: std::ops::Range<usize>, width: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // Every cache line of `bytes` from `base + from`: starting at its line, so the last is
    // not missed.
    let lines = |base: *const u8, from: usize, bytes: usize| {
        let skew = base.addr().wrapping_add(from) % 64;
        let start = base.wrapping_add(from).wrapping_sub(skew);
        (0..bytes + skew)
            .step_by(64)
            .map(move |at| start.wrapping_add(at))
    };
    for view in [cache.keys, cache.values] {
        let data = view.data.as_ptr().cast::<u8>();
        let scales = view.scales.as_ptr().cast::<u8>();
        let count = positions.len();
        for line in lines(data, positions.start * width, count * width).chain(lines(
            scales,
            positions.start * 4,
            count * 4,
        )) {
            // SAFETY: prefetching is a hint; it reads nothing and faults on nothing.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.cast()) };
        }
    }
}

/// Exponentiates scores in place (shifted by their maximum) and returns their sum.
fn softmax(scores: &mut [f32]) -> f32 {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut total = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        total += *s;
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Attention in tiles of keys (as in FlashAttention): a tile of keys and values is widened
    //! to f32 once, stays in L1 while every query of the task goes over it, and each query
    //! keeps a running maximum and sum (an online softmax) so no score row outlives its tile.

    use super::{HeadCache, Query};
    use crate::cpu::avx2::hsum;
    use crate::kv::View;
    use crate::vector::avx2::exp;
    use std::arch::x86_64::*;

    /// Keys per tile: keys and values of a 64-wide head then fill 16 KB, half of L1.
    const TILE: usize = 32;

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; every query's length is `8 * LANES`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn attend<const LANES: usize>(
        queries: &mut [Query],
        cache: &HeadCache,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        let hd = 8 * LANES;
        let span = queries.iter().map(|q| q.span).max().unwrap_or(0);
        let need = 2 * TILE * hd + TILE + 2 * queries.len();
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (keys, rest) = scratch.split_at_mut(TILE * hd);
        let (values, rest) = rest.split_at_mut(TILE * hd);
        let (scores, rest) = rest.split_at_mut(TILE);
        // Per query: the largest score so far and the sum of exponentials relative to it.
        let (maxima, sums) = rest[..2 * queries.len()].split_at_mut(queries.len());
        maxima.fill(f32::NEG_INFINITY);
        sums.fill(0.0);
        for q in queries.iter_mut() {
            q.out.fill(0.0);
        }
        for tile in (0..span).step_by(TILE) {
            let len = TILE.min(span - tile);
            // A tile's keys (and values) lie one after another in the cache.
            unsafe {
                widen(cache.keys, tile..tile + len, &mut keys[..len * hd]);
                widen(cache.values, tile..tile + len, &mut values[..len * hd]);
            }
            // The next tile comes from memory while the queries go over this one.
            super::prefetch(cache, tile + len..(tile + len + TILE).min(span), hd);
            for (i, q) in queries.iter_mut().enumerate() {
                if q.span <= tile {
                    continue;
                }
                let n = len.min(q.span - tile);
                let scores = &mut scores[..n];
                unsafe { dot_keys::<LANES>(q.vector, keys, scale, scores) };
                let top = unsafe { max_of(scores, maxima[i]) };
                // exp(-inf) is 0: the first tile rescales nothing. Past the first tiles the
                // maximum seldom moves, and exp(0) is exactly 1.
                let rescale = match top == maxima[i] {
                    true => 1.0,
                    false => (maxima[i] - top).exp(),
                };
                maxima[i] = top;
                let total = unsafe { exp_shifted(scores, top) };
                sums[i] = sums[i] * rescale + total;
                unsafe { accumulate::<LANES>(values, scores, rescale, q.out) };
            }
        }
        for (q, &sum) in queries.iter_mut().zip(sums.iter()) {
            let inverse = 1.0 / sum;
            for o in q.out.iter_mut() {
                *o *= inverse;
            }
        }
    }

    /// `positions` of `view` as f32, one after another, into `to`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn widen(view: View, positions: std::ops::Range<usize>, to: &mut [f32]) {
        let width = to.len() / positions.len().max(1);
        for (p, to) in positions.zip(to.chunks_exact_mut(width)) {
            let scale = _mm256_set1_ps(view.scales[p]);
            let from = &view.data[p * width..][..width];
            for l in (0..width).step_by(8) {
                let bytes = unsafe { _mm_loadl_epi64(from.as_ptr().add(l).cast()) };
                let x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                unsafe { _mm256_storeu_ps(to.as_mut_ptr().add(l), _mm256_mul_ps(x, scale)) };
            }
        }
    }

    /// `scores[t] = scale · query·key_t` for the tile's first `scores.len()` keys, eight keys
    /// at a time: eight independent sums keep both FMA pipes busy.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_keys<const LANES: usize>(
        query: &[f32],
        keys: &[f32],
        scale: f32,
        scores: &mut [f32],
    ) {
        let hd = 8 * LANES;
        let mut q = [_mm256_setzero_ps(); LANES];
        for (l, q) in q.iter_mut().enumerate() {
            *q = unsafe { _mm256_loadu_ps(query.as_ptr().add(l * 8)) };
        }
        let scale = _mm256_set1_ps(scale);
        let n = scores.len();
        let mut t = 0;
        while t + 8 <= n {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (l, q) in q.iter().enumerate() {
                for (j, a) in acc.iter_mut().enumerate() {
                    let k = unsafe { _mm256_loadu_ps(keys.as_ptr().add((t + j) * hd + l * 8)) };
                    *a = _mm256_fmadd_ps(*q, k, *a);
                }
            }
            // Eight vectors to the eight sums, in order.
            let low = _mm256_hadd_ps(
                _mm256_hadd_ps(acc[0], acc[1]),
                _mm256_hadd_ps(acc[2], acc[3]),
            );
            let high = _mm256_hadd_ps(
                _mm256_hadd_ps(acc[4], acc[5]),
                _mm256_hadd_ps(acc[6], acc[7]),
            );
            let sums = _mm256_add_ps(
                _mm256_permute2f128_ps(low, high, 0x20),
                _mm256_permute2f128_ps(low, high, 0x31),
            );
            unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(t), _mm256_mul_ps(sums, scale)) };
            t += 8;
        }
        for (t, score) in scores.iter_mut().enumerate().skip(t) {
            let mut acc = _mm256_setzero_ps();
            for (l, q) in q.iter().enumerate() {
                let k = unsafe { _mm256_loadu_ps(keys.as_ptr().add(t * hd + l * 8)) };
                acc = _mm256_fmadd_ps(*q, k, acc);
            }
            *score = hsum(_mm256_mul_ps(acc, scale));
        }
    }

    /// The largest of `scores` and `start`, eight at a time (scores are never NaN).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn max_of(scores: &[f32], start: f32) -> f32 {
        let mut top = _mm256_set1_ps(start);
        let mut chunks = scores.chunks_exact(8);
        for chunk in &mut chunks {
            top = _mm256_max_ps(top, unsafe { _mm256_loadu_ps(chunk.as_ptr()) });
        }
        let top = _mm_max_ps(_mm256_castps256_ps128(top), _mm256_extractf128_ps(top, 1));
        let top = _mm_max_ps(top, _mm_movehl_ps(top, top));
        let top = _mm_max_ss(top, _mm_movehdup_ps(top));
        chunks
            .remainder()
            .iter()
            .fold(_mm_cvtss_f32(top), |m, &s| m.max(s))
    }

    /// Replaces each score by `exp(score - top)` and returns their sum.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn exp_shifted(scores: &mut [f32], top: f32) -> f32 {
        let shift = _mm256_set1_ps(top);
        let mut total = _mm256_setzero_ps();
        let mut chunks = scores.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let x = _mm256_sub_ps(unsafe { _mm256_loadu_ps(chunk.as_ptr()) }, shift);
            let e = exp(x);
            unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), e) };
            total = _mm256_add_ps(total, e);
        }
        let mut sum = hsum(total);
        for s in chunks.into_remainder() {
            *s = (*s - top).exp();
            sum += *s;
        }
        sum
    }

    /// `out = rescale · out + Σ_t weights[t] · value_t`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn accumulate<const LANES: usize>(
        values: &[f32],
        weights: &[f32],
        rescale: f32,
        out: &mut [f32],
    ) {
        let hd = 8 * LANES;
        let rescale = _mm256_set1_ps(rescale);
        let mut acc = [_mm256_setzero_ps(); LANES];
        for (l, a) in acc.iter_mut().enumerate() {
            *a = _mm256_mul_ps(unsafe { _mm256_loadu_ps(out.as_ptr().add(l * 8)) }, rescale);
        }
        for (t, &w) in weights.iter().enumerate() {
            let w = _mm256_set1_ps(w);
            for (l, a) in acc.iter_mut().enumerate() {
                let v = unsafe { _mm256_loadu_ps(values.as_ptr().add(t * hd + l * 8)) };
                *a = _mm256_fmadd_ps(w, v, *a);
            }
        }
        for (l, a) in acc.iter().enumerate() {
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(l * 8), *a) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Two kernels for 64-wide heads on 512-bit vectors.
    //!
    //! [`attend`]: a block of a prompt's queries (up to sixteen rows, each with the query
    //! heads of one key/value head) against tiles of keys, as small matrix products:
    //! the queries are transposed once so a vector holds one dimension of sixteen queries, a
    //! key's element is broadcast against it, and every score of a tile comes out of fused
    //! multiply-adds with no horizontal sums (the AVX2 kernel spends a third of its time in
    //! those and in reloading each key once per query). The online softmax then runs on
    //! sixteen queries a vector. Sums are taken in another order than the AVX2 kernel's, so
    //! results differ from it in the last bits; each lane's sums are its own, so a query's
    //! result does not depend on the others in its block.
    //!
    //! [`attend_few`]: a generated token's three queries would fill a sixth of those lanes, so
    //! its dot products run sixteen dimensions a vector instead, added across keys in a tree
    //! of shuffles.

    use super::{HeadCache, Query};
    use crate::kv::View;
    use crate::vector::avx2::exp;
    use std::arch::x86_64::*;

    /// Queries a vector holds, and a pass takes: three vectors' worth keep the scores of
    /// eight keys in 24 registers.
    const LANES: usize = 16;
    const PASS: usize = 3 * LANES;
    const HD: usize = 64;
    /// Keys per tile, as in the AVX2 kernel.
    const TILE: usize = 32;
    /// Queries whose outputs are updated together: 6 × 4 accumulators, 4 value vectors.
    const OUT_GROUP: usize = 6;

    /// # Safety
    /// The CPU has AVX-512 F, AVX2, FMA and F16C; every query is 64 long.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn attend(
        queries: &mut [Query],
        cache: &HeadCache,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        for pass in queries.chunks_mut(PASS) {
            match pass.len().div_ceil(LANES) {
                1 => unsafe { attend_pass::<1>(pass, cache, scale, scratch) },
                2 => unsafe { attend_pass::<2>(pass, cache, scale, scratch) },
                _ => unsafe { attend_pass::<3>(pass, cache, scale, scratch) },
            }
        }
    }

    /// One pass of at most `16 * VECS` queries.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn attend_pass<const VECS: usize>(
        queries: &mut [Query],
        cache: &HeadCache,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        let width = VECS * LANES;
        let span = queries.iter().map(|q| q.span).max().unwrap_or(0);
        // Scratch: the queries transposed and scaled, a tile's keys and values, the tile's
        // weights (key-major, a row of `width` queries each), and per query its running
        // maximum, sum and rescale.
        let need = HD * width + 2 * TILE * HD + TILE * width + 3 * width;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (qt, rest) = scratch.split_at_mut(HD * width);
        let (keys, rest) = rest.split_at_mut(TILE * HD);
        let (values, rest) = rest.split_at_mut(TILE * HD);
        let (weights, rest) = rest.split_at_mut(TILE * width);
        let (maxima, rest) = rest.split_at_mut(width);
        let (sums, rest) = rest.split_at_mut(width);
        let rescales = &mut rest[..width];
        qt.fill(0.0);
        for (i, q) in queries.iter().enumerate() {
            for (d, &x) in q.vector.iter().enumerate() {
                qt[d * width + i] = x * scale;
            }
        }
        maxima.fill(f32::NEG_INFINITY);
        sums.fill(0.0);
        for q in queries.iter_mut() {
            q.out.fill(0.0);
        }
        // Spans as integers, a vector per sixteen queries; absent queries see nothing.
        let mut spans = [_mm512_setzero_si512(); VECS];
        for (v, spans) in spans.iter_mut().enumerate() {
            let mut lanes = [0i32; LANES];
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane = queries.get(v * LANES + l).map_or(0, |q| q.span as i32);
            }
            *spans = unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) };
        }
        for tile in (0..span).step_by(TILE) {
            let len = TILE.min(span - tile);
            unsafe { load_tile(cache, tile, len, span, keys, values) };
            for block in (0..len).step_by(8) {
                unsafe { scores::<VECS>(qt, &keys[block * HD..], &mut weights[block * width..]) };
            }
            for v in 0..VECS {
                let lanes = v * LANES..(v + 1) * LANES;
                unsafe {
                    softmax_tile(
                        &mut weights[v * LANES..],
                        width,
                        len,
                        tile,
                        spans[v],
                        &mut maxima[lanes.clone()],
                        &mut sums[lanes.clone()],
                        &mut rescales[lanes],
                    )
                };
            }
            for (g, group) in queries.chunks_mut(OUT_GROUP).enumerate() {
                let first = g * OUT_GROUP;
                unsafe {
                    accumulate(
                        group,
                        first,
                        &weights[..len * width],
                        width,
                        values,
                        rescales,
                    )
                };
            }
        }
        for (q, &sum) in queries.iter_mut().zip(sums.iter()) {
            let inverse = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            for o in q.out.iter_mut() {
                *o *= inverse;
            }
        }
    }

    /// Queries a pass of [`attend_few`] takes: a generated token's three query heads of one
    /// key/value head, or four.
    const FEW: usize = 4;

    /// A generated token's few queries against tiles of keys: each key's dot products are
    /// taken sixteen dimensions a vector, and sixteen keys' partial sums are added across
    /// in one tree of shuffles, instead of eight keys' in horizontal adds; the weighted sum
    /// of values keeps every query's output in registers across the tiles.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, AVX2, FMA and F16C; every query is 64 long.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn attend_few(
        queries: &mut [Query],
        cache: &HeadCache,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        for pass in queries.chunks_mut(FEW) {
            match pass.len() {
                1 => unsafe { attend_few_pass::<1>(pass, cache, scale, scratch) },
                2 => unsafe { attend_few_pass::<2>(pass, cache, scale, scratch) },
                3 => unsafe { attend_few_pass::<3>(pass, cache, scale, scratch) },
                _ => unsafe { attend_few_pass::<4>(pass, cache, scale, scratch) },
            }
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn attend_few_pass<const N: usize>(
        queries: &mut [Query],
        cache: &HeadCache,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        let span = queries.iter().map(|q| q.span).max().unwrap_or(0);
        let need = 2 * TILE * HD + N * TILE;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        let (keys, rest) = scratch.split_at_mut(TILE * HD);
        let (values, rest) = rest.split_at_mut(TILE * HD);
        let weights = &mut rest[..N * TILE];
        let scale = _mm512_set1_ps(scale);
        let mut q = [[_mm512_setzero_ps(); 4]; N];
        for (q, query) in q.iter_mut().zip(queries.iter()) {
            for (c, q) in q.iter_mut().enumerate() {
                let x = unsafe { _mm512_loadu_ps(query.vector.as_ptr().add(c * LANES)) };
                *q = _mm512_mul_ps(x, scale);
            }
        }
        let mut acc = [[_mm512_setzero_ps(); 4]; N];
        let mut maxima = [f32::NEG_INFINITY; N];
        let mut sums = [0f32; N];
        for tile in (0..span).step_by(TILE) {
            let len = TILE.min(span - tile);
            unsafe { load_tile(cache, tile, len, span, keys, values) };
            for i in 0..N {
                let weights = &mut weights[i * TILE..][..TILE];
                let Some(query) = queries.get(i) else {
                    break;
                };
                // Keys this query sees in the tile; the others weigh nothing.
                let seen = len.min(query.span.saturating_sub(tile));
                if seen == 0 {
                    weights.fill(0.0);
                    continue;
                }
                let mut scores = [_mm512_set1_ps(f32::NEG_INFINITY); 2];
                for (g, scores) in scores.iter_mut().enumerate().take(seen.div_ceil(LANES)) {
                    let sums = unsafe { dot16(&q[i], &keys[g * LANES * HD..]) };
                    let valid = mask(seen - g * LANES);
                    *scores = _mm512_mask_blend_ps(valid, *scores, sums);
                }
                let top = _mm512_reduce_max_ps(_mm512_max_ps(scores[0], scores[1]));
                let top = top.max(maxima[i]);
                let rescale = (maxima[i] - top).exp();
                maxima[i] = top;
                let shift = _mm512_set1_ps(top);
                let mut total = _mm512_setzero_ps();
                for (g, scores) in scores.iter().enumerate() {
                    let valid = mask(seen.saturating_sub(g * LANES));
                    let w = _mm512_maskz_mov_ps(valid, exp16(_mm512_sub_ps(*scores, shift)));
                    unsafe { _mm512_storeu_ps(weights.as_mut_ptr().add(g * LANES), w) };
                    total = _mm512_add_ps(total, w);
                }
                sums[i] = sums[i] * rescale + _mm512_reduce_add_ps(total);
                let rescale = _mm512_set1_ps(rescale);
                for a in acc[i].iter_mut() {
                    *a = _mm512_mul_ps(*a, rescale);
                }
            }
            for j in 0..len {
                let mut v = [_mm512_setzero_ps(); 4];
                for (c, v) in v.iter_mut().enumerate() {
                    *v = unsafe { _mm512_loadu_ps(values.as_ptr().add(j * HD + c * LANES)) };
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let w = _mm512_set1_ps(weights[i * TILE + j]);
                    for (a, v) in acc.iter_mut().zip(&v) {
                        *a = _mm512_fmadd_ps(w, *v, *a);
                    }
                }
            }
        }
        for ((query, acc), &sum) in queries.iter_mut().zip(&acc).zip(&sums) {
            let inverse = _mm512_set1_ps(if sum > 0.0 { 1.0 / sum } else { 0.0 });
            for (c, a) in acc.iter().enumerate() {
                let out = _mm512_mul_ps(*a, inverse);
                unsafe { _mm512_storeu_ps(query.out.as_mut_ptr().add(c * LANES), out) };
            }
        }
    }

    /// The first `n` of sixteen lanes (all of them from sixteen on).
    #[inline]
    fn mask(n: usize) -> __mmask16 {
        if n >= LANES {
            u16::MAX
        } else {
            (1u16 << n) - 1
        }
    }

    /// A query's dot products with sixteen keys (row-major, 64 each), in key order: each
    /// key's four vectors of products are added lane-wise, then the sixteen keys' vectors
    /// across in a tree of shuffles (fifteen adds, not sixteen horizontal sums).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn dot16(q: &[__m512; 4], keys: &[f32]) -> __m512 {
        let mut partial = [_mm512_setzero_ps(); 16];
        for (j, p) in partial.iter_mut().enumerate() {
            let k = |c: usize| unsafe { _mm512_loadu_ps(keys.as_ptr().add(j * HD + c * LANES)) };
            let mut sum = _mm512_mul_ps(q[0], k(0));
            for (c, q) in q.iter().enumerate().skip(1) {
                sum = _mm512_fmadd_ps(*q, k(c), sum);
            }
            *p = sum;
        }
        // Pairs of keys: each key's sixteen partial sums to eight (quarters 0+2, 1+3).
        let mut halves = [_mm512_setzero_ps(); 8];
        for (h, pair) in halves.iter_mut().zip(partial.chunks_exact(2)) {
            *h = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(pair[0], pair[1]),
                _mm512_shuffle_f32x4::<0xEE>(pair[0], pair[1]),
            );
        }
        // Four keys a vector, a quarter each, four partial sums per key.
        let mut quarters = [_mm512_setzero_ps(); 4];
        for (h, pair) in quarters.iter_mut().zip(halves.chunks_exact(2)) {
            *h = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(pair[0], pair[1]),
                _mm512_shuffle_f32x4::<0xDD>(pair[0], pair[1]),
            );
        }
        // Within each quarter: two keys of two partial sums, then four keys of one.
        let pairs = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x88>(a, b),
                _mm512_shuffle_ps::<0xDD>(a, b),
            )
        };
        let low = pairs(quarters[0], quarters[1]);
        let high = pairs(quarters[2], quarters[3]);
        // Lane 4k + m now holds key k + 4m.
        let sums = pairs(low, high);
        let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
        _mm512_permutexvar_ps(order, sums)
    }

    /// The `len` keys and values from `tile` on, as f32, into the tile buffers (`TILE` × 64
    /// each); the rest of them zeros, whose weights are masked to zero. The next tile (up to
    /// `span`) is asked for from memory while the queries go over this one.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn load_tile(
        cache: &HeadCache,
        tile: usize,
        len: usize,
        span: usize,
        keys: &mut [f32],
        values: &mut [f32],
    ) {
        for (view, to) in [(cache.keys, keys), (cache.values, values)] {
            unsafe { widen(view, tile..tile + len, &mut to[..len * HD]) };
            to[len * HD..TILE * HD].fill(0.0);
        }
        super::prefetch(cache, tile + len..(tile + len + TILE).min(span), HD);
    }

    /// `positions` of `view` as f32, one after another, into `to` (64 each).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn widen(view: View, positions: std::ops::Range<usize>, to: &mut [f32]) {
        for (p, to) in positions.zip(to.chunks_exact_mut(HD)) {
            let scale = _mm512_set1_ps(view.scales[p]);
            let from = &view.data[p * HD..][..HD];
            for l in (0..HD).step_by(LANES) {
                let bytes = unsafe { _mm_loadu_si128(from.as_ptr().add(l).cast()) };
                let x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
                unsafe { _mm512_storeu_ps(to.as_mut_ptr().add(l), _mm512_mul_ps(x, scale)) };
            }
        }
    }

    /// The scores of eight keys (row-major, 64 each) for every query: `out[j * width + i]`,
    /// `width = 16 * VECS`.
    // Indexed loops over constant bounds, which the compiler unrolls into registers.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn scores<const VECS: usize>(qt: &[f32], keys: &[f32], out: &mut [f32]) {
        let width = VECS * LANES;
        let mut acc = [[_mm512_setzero_ps(); 8]; VECS];
        for d in 0..HD {
            let mut q = [_mm512_setzero_ps(); VECS];
            for (v, q) in q.iter_mut().enumerate() {
                *q = unsafe { _mm512_loadu_ps(qt.as_ptr().add(d * width + v * LANES)) };
            }
            for j in 0..8 {
                let k = _mm512_set1_ps(unsafe { *keys.get_unchecked(j * HD + d) });
                for v in 0..VECS {
                    acc[v][j] = _mm512_fmadd_ps(q[v], k, acc[v][j]);
                }
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            for (j, a) in acc.iter().enumerate() {
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(j * width + v * LANES), *a) };
            }
        }
    }

    /// Turns sixteen queries' scores for a tile (`scores[j * width]`, key `tile + j`) into
    /// weights relative to their new running maxima, masking keys a query does not see, and
    /// updates the maxima, the sums and the factor earlier outputs are rescaled by.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn softmax_tile(
        scores: &mut [f32],
        width: usize,
        len: usize,
        tile: usize,
        spans: __m512i,
        maxima: &mut [f32],
        sums: &mut [f32],
        rescales: &mut [f32],
    ) {
        let seen = |j: usize| _mm512_cmpgt_epi32_mask(spans, _mm512_set1_epi32((tile + j) as i32));
        let old = unsafe { _mm512_loadu_ps(maxima.as_ptr()) };
        let mut top = old;
        for j in 0..len {
            let s = unsafe { _mm512_loadu_ps(scores.as_ptr().add(j * width)) };
            top = _mm512_mask_max_ps(top, seen(j), top, s);
        }
        // A query that has seen nothing yet keeps -inf; shift it by 0 instead, so no
        // infinity is subtracted from another.
        let shift = _mm512_mask_blend_ps(
            _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(top, _mm512_set1_ps(f32::NEG_INFINITY)),
            top,
            _mm512_setzero_ps(),
        );
        let mut total = _mm512_setzero_ps();
        for j in 0..len {
            let at = unsafe { scores.as_mut_ptr().add(j * width) };
            let s = unsafe { _mm512_loadu_ps(at) };
            let w = _mm512_maskz_mov_ps(seen(j), exp16(_mm512_sub_ps(s, shift)));
            unsafe { _mm512_storeu_ps(at, w) };
            total = _mm512_add_ps(total, w);
        }
        let rescale = exp16(_mm512_sub_ps(old, shift));
        let sum = _mm512_fmadd_ps(unsafe { _mm512_loadu_ps(sums.as_ptr()) }, rescale, total);
        unsafe {
            _mm512_storeu_ps(maxima.as_mut_ptr(), top);
            _mm512_storeu_ps(sums.as_mut_ptr(), sum);
            _mm512_storeu_ps(rescales.as_mut_ptr(), rescale);
        }
    }

    /// `e^x` on sixteen lanes (the AVX2 function on each half; -inf gives about 1e-38, and
    /// those weights are masked or multiply zeros).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    fn exp16(x: __m512) -> __m512 {
        let low = exp(_mm512_castps512_ps256(x));
        let high = exp(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
            _mm512_castps_pd(x),
        )));
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castps_pd(_mm512_castps256_ps512(low)),
            _mm256_castps_pd(high),
        ))
    }

    /// For up to six queries (`first..`): `out = rescale · out + Σ_j weight_j · value_j`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn accumulate(
        group: &mut [Query],
        first: usize,
        weights: &[f32],
        width: usize,
        values: &[f32],
        rescales: &[f32],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; OUT_GROUP];
        for (r, q) in group.iter().enumerate() {
            let rescale = _mm512_set1_ps(rescales[first + r]);
            for (c, a) in acc[r].iter_mut().enumerate() {
                let o = unsafe { _mm512_loadu_ps(q.out.as_ptr().add(c * LANES)) };
                *a = _mm512_mul_ps(o, rescale);
            }
        }
        let keys = weights.len() / width;
        for j in 0..keys {
            let mut v = [_mm512_setzero_ps(); 4];
            for (c, v) in v.iter_mut().enumerate() {
                *v = unsafe { _mm512_loadu_ps(values.as_ptr().add(j * HD + c * LANES)) };
            }
            for (r, acc) in acc.iter_mut().enumerate().take(group.len()) {
                let w = _mm512_set1_ps(unsafe { *weights.get_unchecked(j * width + first + r) });
                for (a, v) in acc.iter_mut().zip(&v) {
                    *a = _mm512_fmadd_ps(w, *v, *a);
                }
            }
        }
        for (q, acc) in group.iter_mut().zip(&acc) {
            for (c, a) in acc.iter().enumerate() {
                unsafe { _mm512_storeu_ps(q.out.as_mut_ptr().add(c * LANES), *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Vectors;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * f).sin()).collect()
    }

    /// `x` stored as a cache of vectors `width` long.
    fn stored(x: &[f32], width: usize) -> Vectors {
        let mut v = Vectors::default();
        for position in x.chunks(width) {
            v.push(position);
        }
        v
    }

    /// Position 0 of `v`, as the kernels see it.
    fn first(v: &Vectors, width: usize) -> Vec<f32> {
        let mut out = vec![0f32; width];
        v.view().widen(0, &mut out);
        out
    }

    #[test]
    fn a_prompt_block_attended_as_matrix_products_matches_the_portable_one() {
        let hd = 64;
        let span = 100;
        let keys: Vec<f32> = wave(hd * span, 0.37).iter().map(|k| 3.0 * k).collect();
        let (keys, values) = (stored(&keys, hd), stored(&wave(hd * span, 0.11), hd));
        let cache = HeadCache {
            keys: keys.view(),
            values: values.view(),
        };
        // Seventeen rows of three heads (a pass of 48 queries and one of 3), at consecutive
        // positions ending past three tiles, and one query that sees a single position.
        let mut spans: Vec<usize> = (0..17).flat_map(|row| [span - 16 + row; 3]).collect();
        spans[4] = 1;
        let vectors: Vec<Vec<f32>> = (0..spans.len())
            .map(|i| wave(hd, 0.3 + 0.05 * i as f32))
            .collect();
        // The outputs of queries `range`, attended together with `kernel`.
        let run = |range: std::ops::Range<usize>, kernel: &dyn Fn(&mut [Query])| {
            let mut outs = vec![vec![0f32; hd]; range.len()];
            let mut queries: Vec<Query> = outs
                .iter_mut()
                .zip(&vectors[range.clone()])
                .zip(&spans[range])
                .map(|((out, vector), &span)| Query { vector, span, out })
                .collect();
            kernel(&mut queries);
            outs
        };
        let prompt = |q: &mut [Query]| attend(q, &cache, 0.125, &mut Vec::new(), Rows::Prompt);
        let all = 0..spans.len();
        let a = run(all.clone(), &prompt);
        let b = run(all.clone(), &|q| {
            portable(q, &cache, 0.125, &mut Vec::new())
        });
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        for (x, y) in a[4].iter().zip(first(&values, hd)) {
            assert!((x - y).abs() < 1e-6);
        }
        // A row attended alone gives the same bits as in its block: how a prompt is split
        // into steps changes nothing.
        for row in [0, 1, 16] {
            let alone = run(3 * row..3 * row + 3, &prompt);
            assert_eq!(alone, a[3 * row..3 * row + 3], "row {row}");
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::Kernels::detect() == crate::cpu::Kernels::Avx512 {
            // This is the kernel a prompt's rows take: the one for generated tokens sums in
            // another order.
            let generated = run(all, &|q| {
                attend(q, &cache, 0.125, &mut Vec::new(), Rows::Generated)
            });
            assert_ne!(generated, a, "the prompt kernel ran");
        }
    }

    #[test]
    fn fast_attention_matches_the_portable_one() {
        // Spans across several tiles, with and without a partial block of keys, one ending
        // on a tile's edge and one a key past it; five queries (two passes of the few-query
        // kernel); both head widths with a fast path.
        for hd in [64, 128] {
            let span = 75;
            // Large scores, so a later tile raises the running maximum.
            let keys: Vec<f32> = wave(hd * span, 0.37).iter().map(|k| 3.0 * k).collect();
            let (keys, values) = (stored(&keys, hd), stored(&wave(hd * span, 0.11), hd));
            let cache = HeadCache {
                keys: keys.view(),
                values: values.view(),
            };
            let vectors: Vec<Vec<f32>> = [0.5, 0.7, 0.9, 0.4, 0.6]
                .iter()
                .map(|&f| wave(hd, f))
                .collect();
            let spans = [75, 1, 41, 33, 32];
            let run = |kernel: &dyn Fn(&mut [Query])| {
                let mut outs = vec![vec![0f32; hd]; spans.len()];
                let mut queries: Vec<Query> = outs
                    .iter_mut()
                    .zip(&vectors)
                    .zip(spans)
                    .map(|((out, vector), span)| Query { vector, span, out })
                    .collect();
                kernel(&mut queries);
                outs
            };
            let a = run(&|q| attend(q, &cache, 0.125, &mut Vec::new(), Rows::Generated));
            let b = run(&|q| portable(q, &cache, 0.125, &mut Vec::new()));
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
            // A query that sees one position gets that position's value.
            for (x, y) in a[1].iter().zip(first(&values, hd)) {
                assert!((x - y).abs() < 1e-6);
            }
            #[cfg(target_arch = "x86_64")]
            if hd == 64 && crate::cpu::Kernels::detect() == crate::cpu::Kernels::Avx512 {
                // The few-query kernel ran: the AVX2 one sums in another order.
                // SAFETY: the CPU has AVX2, FMA and F16C; heads are 64 long.
                let avx2 =
                    run(&|q| unsafe { avx2::attend::<8>(q, &cache, 0.125, &mut Vec::new()) });
                assert_ne!(avx2, a, "the AVX-512 kernel ran");
            }
        }
    }
}
