//! One query head attending over its sequence's cached keys and values: scores, softmax,
//! weighted sum. The x86-64 version uses AVX2 and FMA (picked at run time); the portable
//! one is the reference it is tested against.

/// Where one head's keys and values lie in a layer's cache: position `t` of the head starts
/// at `t * stride + offset`, and is `out.len()` floats long.
pub struct HeadCache<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub stride: usize,
    pub offset: usize,
}

/// Attends `query` over positions `0..span` of `cache`, writing the result to `out`.
/// `scores` is scratch space.
pub fn attend(
    query: &[f32],
    cache: &HeadCache,
    span: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if query.len() % 8 == 0 && super::quant::simd_available() {
        // SAFETY: the CPU has AVX2 and FMA; the head length is a multiple of 8.
        unsafe { avx2::attend(query, cache, span, scale, scores, out) };
        return;
    }
    portable(query, cache, span, scale, scores, out);
}

fn portable(
    query: &[f32],
    cache: &HeadCache,
    span: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = query.len();
    scores.clear();
    scores.extend((0..span).map(|t| {
        let key = &cache.keys[t * cache.stride + cache.offset..][..hd];
        query.iter().zip(key).map(|(q, k)| q * k).sum::<f32>() * scale
    }));
    let total = softmax(scores);
    out.fill(0.0);
    for (t, s) in scores.iter().enumerate() {
        let weight = s / total;
        let value = &cache.values[t * cache.stride + cache.offset..][..hd];
        for (o, v) in out.iter_mut().zip(value) {
            *o += weight * v;
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
    use super::HeadCache;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX2 and FMA; `query.len()` is a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn attend(
        query: &[f32],
        cache: &HeadCache,
        span: usize,
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let hd = query.len();
        scores.clear();
        for t in 0..span {
            let key = &cache.keys[t * cache.stride + cache.offset..][..hd];
            let mut acc = _mm256_setzero_ps();
            for i in (0..hd).step_by(8) {
                let q = unsafe { _mm256_loadu_ps(query.as_ptr().add(i)) };
                let k = unsafe { _mm256_loadu_ps(key.as_ptr().add(i)) };
                acc = _mm256_fmadd_ps(q, k, acc);
            }
            scores.push(hsum(acc) * scale);
        }
        let total = super::softmax(scores);
        let lanes = hd / 8;
        // Up to 16 lanes of 8 stay in registers; longer heads go through `out` in pieces.
        for start in (0..lanes).step_by(8) {
            let n = (lanes - start).min(8);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (t, s) in scores.iter().enumerate() {
                let weight = _mm256_set1_ps(s / total);
                let value = &cache.values[t * cache.stride + cache.offset + start * 8..];
                for (l, a) in acc.iter_mut().enumerate().take(n) {
                    let v = unsafe { _mm256_loadu_ps(value.as_ptr().add(l * 8)) };
                    *a = _mm256_fmadd_ps(weight, v, *a);
                }
            }
            for (l, a) in acc.iter().enumerate().take(n) {
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add((start + l) * 8), *a) };
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_attention_matches_the_portable_one() {
        let (hd, stride, span) = (64, 192, 37);
        let wave = |n: usize, f: f32| (0..n).map(|i| ((i as f32) * f).sin()).collect::<Vec<_>>();
        let (keys, values, query) = (
            wave(stride * span, 0.37),
            wave(stride * span, 0.11),
            wave(hd, 0.5),
        );
        let cache = HeadCache {
            keys: &keys,
            values: &values,
            stride,
            offset: 64,
        };
        let (mut a, mut b, mut scratch) = (vec![0.0; hd], vec![0.0; hd], Vec::new());
        attend(&query, &cache, span, 0.125, &mut scratch, &mut a);
        portable(&query, &cache, span, 0.125, &mut scratch, &mut b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        // Attending over one position returns that position's value.
        attend(&query, &cache, 1, 0.125, &mut scratch, &mut a);
        assert!(
            a.iter()
                .zip(&values[64..128])
                .all(|(x, y)| (x - y).abs() < 1e-6)
        );
    }
}
