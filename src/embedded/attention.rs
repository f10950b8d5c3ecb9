//! Causal attention over a sequence's cached keys and values, for a block of query rows of
//! one sequence and the query heads that share one key/value head (grouped-query attention):
//! each cached key and value is read and converted once for the whole block.
//!
//! The cache holds f16. The x86-64 version uses AVX2, FMA and F16C (picked at run time);
//! the portable one is the reference it is tested against.

use half::f16;

/// Where one key/value head lies in a layer's cache: position `t` starts at
/// `t * stride + offset` and is `head_dim` values long.
pub struct HeadCache<'a> {
    pub keys: &'a [f16],
    pub values: &'a [f16],
    pub stride: usize,
    pub offset: usize,
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
    if queries.iter().all(|q| q.vector.len() % 8 == 0) && super::quant::simd_available() {
        // SAFETY: the CPU has AVX2, FMA and F16C; head lengths are multiples of 8.
        unsafe { avx2::attend(queries, cache, scale, scratch) };
        return;
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
        widen(&cache.keys[t * cache.stride + cache.offset..][..hd], row);
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
        widen(&cache.values[t * cache.stride + cache.offset..][..hd], row);
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
    use super::{HeadCache, Query};
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX2, FMA and F16C; every query's length is a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn attend(
        queries: &mut [Query],
        cache: &HeadCache,
        scale: f32,
        scratch: &mut Vec<f32>,
    ) {
        let Some(hd) = queries.first().map(|q| q.vector.len()) else {
            return;
        };
        let span = queries.iter().map(|q| q.span).max().unwrap_or(0);
        scratch.clear();
        scratch.resize(queries.len() * span + 2 * span * hd, 0.0);
        let (scores, kv) = scratch.split_at_mut(queries.len() * span);
        let (keys, values) = kv.split_at_mut(span * hd);
        // The head's keys and values, widened to f32 once for every query of the task.
        for t in 0..span {
            let at = t * cache.stride + cache.offset;
            unsafe {
                widen(&cache.keys[at..][..hd], &mut keys[t * hd..][..hd]);
                widen(&cache.values[at..][..hd], &mut values[t * hd..][..hd]);
            }
        }
        for (i, q) in queries.iter_mut().enumerate() {
            let scores = &mut scores[i * span..][..q.span];
            // A head is done in pieces of 64 dimensions (8 registers): all of it, for most models.
            for piece in (0..hd).step_by(64) {
                let lanes = ((hd - piece) / 8).min(8);
                unsafe { scores_piece(q.vector, keys, hd, piece, lanes, scale, scores) };
            }
            let total = super::softmax(scores);
            for piece in (0..hd).step_by(64) {
                let lanes = ((hd - piece) / 8).min(8);
                unsafe { values_piece(values, hd, piece, lanes, 1.0 / total, scores, q.out) };
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

    /// Adds `scale · q·k_t` over dimensions `piece..piece + 8·lanes` to `scores[t]`, four
    /// positions at a time with one horizontal reduction per four. Key `t` starts at `t·hd`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scores_piece(
        query: &[f32],
        keys: &[f32],
        hd: usize,
        piece: usize,
        lanes: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        let mut q = [_mm256_setzero_ps(); 8];
        for (l, q) in q.iter_mut().enumerate().take(lanes) {
            *q = unsafe { _mm256_loadu_ps(query.as_ptr().add(piece + l * 8)) };
        }
        let dot = |t: usize| {
            let k = unsafe { keys.as_ptr().add(t * hd + piece) };
            let mut acc = _mm256_setzero_ps();
            for (l, q) in q.iter().enumerate().take(lanes) {
                acc = _mm256_fmadd_ps(*q, unsafe { _mm256_loadu_ps(k.add(l * 8)) }, acc);
            }
            acc
        };
        let span = scores.len();
        let mut t = 0;
        while t + 4 <= span {
            let (a, b, c, d) = (dot(t), dot(t + 1), dot(t + 2), dot(t + 3));
            let s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
            let sums = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            let old = unsafe { _mm_loadu_ps(scores.as_ptr().add(t)) };
            let new = _mm_fmadd_ps(sums, _mm_set1_ps(scale), old);
            unsafe { _mm_storeu_ps(scores.as_mut_ptr().add(t), new) };
            t += 4;
        }
        for (t, score) in scores.iter_mut().enumerate().skip(t) {
            *score += hsum(dot(t)) * scale;
        }
    }

    /// Writes `weight · Σ_t scores[t] · v_t` over dimensions `piece..piece + 8·lanes` to `out`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn values_piece(
        values: &[f32],
        hd: usize,
        piece: usize,
        lanes: usize,
        weight: f32,
        scores: &[f32],
        out: &mut [f32],
    ) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (t, &s) in scores.iter().enumerate() {
            let v = unsafe { values.as_ptr().add(t * hd + piece) };
            let s = _mm256_set1_ps(s);
            for (l, a) in acc.iter_mut().enumerate().take(lanes) {
                *a = _mm256_fmadd_ps(s, unsafe { _mm256_loadu_ps(v.add(l * 8)) }, *a);
            }
        }
        let weight = _mm256_set1_ps(weight);
        for (l, a) in acc.iter().enumerate().take(lanes) {
            unsafe {
                _mm256_storeu_ps(
                    out.as_mut_ptr().add(piece + l * 8),
                    _mm256_mul_ps(*a, weight),
                )
            };
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
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
        let (hd, stride, span) = (64, 192, 37);
        let half = |v: Vec<f32>| v.into_iter().map(f16::from_f32).collect::<Vec<_>>();
        let (keys, values) = (
            half(wave(stride * span, 0.37)),
            half(wave(stride * span, 0.11)),
        );
        let cache = HeadCache {
            keys: &keys,
            values: &values,
            stride,
            offset: 64,
        };
        let vectors = [wave(hd, 0.5), wave(hd, 0.7), wave(hd, 0.9)];
        let spans = [37, 1, 20];
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
        for (x, y) in a[1].iter().zip(&values[64..128]) {
            assert!((x - f32::from(*y)).abs() < 1e-6);
        }
    }
}
