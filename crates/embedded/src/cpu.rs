//! What this CPU can do, asked once at the bottom of the crate (as candle's `cpu` module
//! does): the kernels above pick AVX2 or AVX-512 paths by these answers, and share the
//! few vector primitives every AVX2 kernel uses.

/// The widest matrix kernels a CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernels {
    Portable,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// AVX-512 F, BW, VL and VNNI (8-bit dot products on 512-bit vectors), besides AVX2.
    Avx512,
}

impl Kernels {
    /// This CPU's.
    pub fn detect() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if simd_available() {
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni");
            return if avx512 {
                Kernels::Avx512
            } else {
                Kernels::Avx2
            };
        }
        Kernels::Portable
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

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// The sum of a vector's eight lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}
