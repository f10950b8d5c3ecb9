//! Causal attention over a sequence's cached keys and values, for a block of query rows of
//! one sequence and the query heads that share one key/value head (grouped-query attention):
//! each cached key and value is read and converted once for the whole block.
//!
//! The cache holds f16. The x86-64 version (heads of 64 or 128) uses AVX2, FMA and F16C,
//! picked at run time; the portable one is the reference it is tested against.

use half::f16;

/// One key/value head's cache in one layer: position after position, each `head_dim` long.
pub struct HeadCache<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
}

/// One query: its vector, how many positions it sees, and where its result goes.
pub struct Query<'a> {
    pub vector: &'a [f32],
    pub span: usize,
    pub out: &'a mut [f32],
}

/// Attends every query over its span of `cache`. `scratch` is reused between calls.
pub fn attend(queries: &mut [Query], cache: &HeadCache, scale: f32, scratch: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd_available() {
        let width = queries.first().map_or(0, |q| q.vector.len());
        if queries.iter().all(|q| q.vector.len() == width) {
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
        widen(&cache.keys[t * hd..][..hd], row);
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
        widen(&cache.values[t * hd..][..hd], row);
        for (i, q) in queries.iter_mut().enumerate().filter(|(_, q)| t < q.span) {
            let weight = scores[i * span + t] / totals[i];
            for (o, v) in q.out.iter_mut().zip(&*row) {
                *o += weight * v;
            }
        }
    }
}

fn widen(from: &[f16], to: &mut [f32]) {
    for (t, f) in to.iter_mut().zip(from) {
        *t = f32::from(*f);
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
    use crate::vector::avx2::exp;
    use half::f16;
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
            let at = tile * hd..(tile + len) * hd;
            unsafe {
                widen(&cache.keys[at.clone()], &mut keys[..len * hd]);
                widen(&cache.values[at.clone()], &mut values[..len * hd]);
            }
            // The next tile comes from memory while the queries go over this one.
            let next = at.end..(at.end + TILE * hd).min(span * hd);
            for line in next.step_by(32) {
                let (k, v) = (cache.keys.as_ptr(), cache.values.as_ptr());
                _mm_prefetch::<_MM_HINT_T0>(k.wrapping_add(line).cast());
                _mm_prefetch::<_MM_HINT_T0>(v.wrapping_add(line).cast());
            }
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

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn widen(from: &[f16], to: &mut [f32]) {
        for l in (0..from.len()).step_by(8) {
            let halves = unsafe { _mm_loadu_si128(from.as_ptr().add(l).cast()) };
            unsafe { _mm256_storeu_ps(to.as_mut_ptr().add(l), _mm256_cvtph_ps(halves)) };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * f).sin()).collect()
    }

    #[test]
    fn fast_attention_matches_the_portable_one() {
        // Spans across several tiles, with and without a partial block of eight keys; both
        // head widths with a fast path.
        for hd in [64, 128] {
            let span = 75;
            let half = |v: Vec<f32>| v.into_iter().map(f16::from_f32).collect::<Vec<_>>();
            // Large scores, so a later tile raises the running maximum.
            let (keys, values) = (
                half(wave(hd * span, 0.37).iter().map(|k| 3.0 * k).collect()),
                half(wave(hd * span, 0.11)),
            );
            let cache = HeadCache {
                keys: &keys,
                values: &values,
            };
            let vectors = [wave(hd, 0.5), wave(hd, 0.7), wave(hd, 0.9)];
            let spans = [75, 1, 41];
            let run = |fast: bool| {
                let mut outs = vec![vec![0f32; hd]; 3];
                let mut queries: Vec<Query> = outs
                    .iter_mut()
                    .zip(&vectors)
                    .zip(spans)
                    .map(|((out, vector), span)| Query { vector, span, out })
                    .collect();
                let mut scratch = Vec::new();
                if fast {
                    attend(&mut queries, &cache, 0.125, &mut scratch);
                } else {
                    portable(&mut queries, &cache, 0.125, &mut scratch);
                }
                outs
            };
            let (a, b) = (run(true), run(false));
            for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
            // A query that sees one position gets that position's value.
            for (x, y) in a[1].iter().zip(&values[..hd]) {
                assert!((x - f32::from(*y)).abs() < 1e-6);
            }
        }
    }
}
