//! AVX2 kernels, after ggml's: 4-bit weights are unpacked to bytes, multiplied with the
//! 8-bit activations by `maddubs` (unsigned × signed), summed to i32 and scaled in float.
//! Each weight block is unpacked once and used for up to four activation rows. The
//! interleaved Q4_1 kernel (`tile_q4_1x8`) instead gives each 32-bit lane one weight row, so
//! eight outputs advance per instruction and need no horizontal sums (`avx512` does sixteen).
use super::{BlockQ4_0, BlockQ4_1, BlockQ4_1xN, BlockQ8, BlockQ8_0};
use crate::cpu::avx2::hsum;
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
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
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
fn word(x: &BlockQ8, i: usize) -> __m256i {
    _mm256_set1_epi32(x.word(i))
}

/// Σ weight × activation over one block, for the eight rows of an interleaved group: `lo`
/// and `hi` are its low and high nibbles. Eight `maddubs` sums fit in i16 (8 · 2 · 15 · 127).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_x8(lo: &[__m256i; 4], hi: &[__m256i; 4], x: &BlockQ8) -> __m256i {
    let mut sum = _mm256_setzero_si256();
    for v in 0..4 {
        sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(lo[v], word(x, v)));
        sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(hi[v], word(x, 4 + v)));
    }
    _mm256_madd_epi16(sum, _mm256_set1_epi16(1))
}

/// # Safety
/// The CPU has AVX2, FMA and F16C; `js` covers whole groups of eight rows; `out` has room for
/// `rows × n` floats and no one else writes columns `js` while this runs.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tile_q4_1x8(
    w: &[BlockQ4_1xN<8>],
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
            unsafe { rows_q4_1x8::<4>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n) };
            r += 4;
        }
        // Two or three streams decoding together: one unpacking serves them all.
        match rows - r {
            3 => unsafe { rows_q4_1x8::<3>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n) },
            2 => unsafe { rows_q4_1x8::<2>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n) },
            1 => unsafe { rows_q4_1x8::<1>(wg, &x[r * bpr..], bpr, out.add(r * n + 8 * g), n) },
            _ => {}
        }
    }
}

/// Eight outputs of `R` activation rows: each lane of `acc` is one weight row.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_q4_1x8<const R: usize>(
    w: &[BlockQ4_1xN<8>],
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
            let sum = _mm256_cvtepi32_ps(unsafe { dot_x8(&lo, &hi, xb) });
            *acc = _mm256_fmadd_ps(sum, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), *acc);
            *acc = _mm256_fmadd_ps(m, _mm256_set1_ps(xb.s), *acc);
        }
    }
    for (k, acc) in acc.iter().enumerate() {
        unsafe { _mm256_storeu_ps(out.add(k * n), *acc) };
    }
}

tile!(tile_q4_1, BlockQ4_1, dot_q4_1);
tile!(tile_q8_0, BlockQ8_0, dot_q8_0);
