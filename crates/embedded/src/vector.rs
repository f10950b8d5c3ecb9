//! Element-wise maths on whole rows: the SiLU-gated product of the feed-forward block, the
//! vector `exp` and sums the attention kernel shares, and the log-sum-exp that turns a row of
//! logits into log-probabilities. These run on one thread between the parallel products, so
//! a scalar `expf` per element shows.

/// `gate[i] = silu(gate[i]) · up[i]`, where `silu(g) = g / (1 + e^-g)`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd_available() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        unsafe { avx2::silu_mul(gate, up) };
        return;
    }
    silu_mul_portable(gate, up);
}

fn silu_mul_portable(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `log Σ exp(logits)`: a logit less it is a log-probability.
pub fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return f64::from(max);
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::simd_available() {
        // SAFETY: the CPU has AVX2, FMA and F16C.
        return f64::from(max) + unsafe { avx2::sum_exp_shifted(logits, max) }.ln();
    }
    f64::from(max) + sum_exp_shifted_portable(logits, max).ln()
}

fn sum_exp_shifted_portable(xs: &[f32], shift: f32) -> f64 {
    xs.iter().map(|&x| f64::from(x - shift).exp()).sum()
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use crate::cpu::avx2::hsum;

    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
        let one = _mm256_set1_ps(1.0);
        let mut gates = gate.chunks_exact_mut(8);
        let mut ups = up.chunks_exact(8);
        for (g, u) in (&mut gates).zip(&mut ups) {
            let x = unsafe { _mm256_loadu_ps(g.as_ptr()) };
            let u = unsafe { _mm256_loadu_ps(u.as_ptr()) };
            let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
            let silu = _mm256_div_ps(x, _mm256_add_ps(one, e));
            unsafe { _mm256_storeu_ps(g.as_mut_ptr(), _mm256_mul_ps(silu, u)) };
        }
        super::silu_mul_portable(gates.into_remainder(), ups.remainder());
    }

    /// `e^x` to about 2 ulp for x in [-87, 88] (clamped outside it; Cephes' polynomial):
    /// x = n·ln 2 + r, e^r by its series on |r| ≤ ln 2 / 2, and 2^n put straight into the
    /// exponent bits.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn exp(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-87.0)),
            _mm256_set1_ps(88.0),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        // ln 2 in two parts, so r keeps its precision.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            5e-1,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(e, _mm256_castsi256_ps(bits))
    }

    /// `Σ e^(x - shift)`, eight lanes at a time, each 256 added into an f64 total so a
    /// vocabulary's worth of terms keeps its precision.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn sum_exp_shifted(xs: &[f32], shift: f32) -> f64 {
        let shift_v = _mm256_set1_ps(shift);
        let mut total = 0f64;
        let mut blocks = xs.chunks_exact(256);
        for block in &mut blocks {
            let mut acc = _mm256_setzero_ps();
            for l in (0..256).step_by(8) {
                let x = unsafe { _mm256_loadu_ps(block.as_ptr().add(l)) };
                acc = _mm256_add_ps(acc, exp(_mm256_sub_ps(x, shift_v)));
            }
            total += f64::from(hsum(acc));
        }
        total + super::sum_exp_shifted_portable(blocks.remainder(), shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_matches_the_sum_in_f64() {
        let logits: Vec<f32> = (0..49_157)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 9.0)
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let expected = f64::from(max) + sum_exp_shifted_portable(&logits, max).ln();
        assert!((log_sum_exp(&logits) - expected).abs() < 1e-5);
        assert_eq!(log_sum_exp(&[]), f64::from(f32::NEG_INFINITY));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_exp_matches_the_library() {
        use std::arch::x86_64::*;
        if !crate::cpu::simd_available() {
            return;
        }
        let xs: Vec<f32> = (0..8000).map(|i| 88.0 - i as f32 * 0.0251).collect();
        for chunk in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
            unsafe {
                _mm256_storeu_ps(got.as_mut_ptr(), avx2::exp(_mm256_loadu_ps(chunk.as_ptr())))
            };
            for (x, g) in chunk.iter().zip(got) {
                let want = x.exp();
                assert!(
                    (g - want).abs() <= want * 4e-7 + 1e-37,
                    "exp({x}) = {g}, not {want}"
                );
            }
        }
    }

    #[test]
    fn silu_matches_its_definition() {
        // 21 values: the vector path and its remainder; large magnitudes saturate cleanly.
        let gate: Vec<f32> = (0..21).map(|i| (i as f32 - 10.0) * 9.7).collect();
        let up: Vec<f32> = (0..21).map(|i| 0.5 + i as f32 * 0.1).collect();
        let mut fast = gate.clone();
        silu_mul(&mut fast, &up);
        for ((g, u), f) in gate.iter().zip(&up).zip(&fast) {
            let want = g / (1.0 + (-g).exp()) * u;
            assert!(
                (f - want).abs() <= want.abs() * 1e-6 + 1e-30,
                "silu({g})·{u} = {f}, not {want}"
            );
        }
    }
}
