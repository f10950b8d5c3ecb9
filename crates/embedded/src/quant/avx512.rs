//! AVX-512 kernels for the layouts interleaved sixteen rows wide: each 32-bit lane of a
//! 512-bit vector is one weight row, so one VNNI `dpbusd` (unsigned × signed bytes, four at
//! a time, summed into i32) advances sixteen outputs by four weights, and no horizontal sums
//! are needed. Every lane does exactly what a lane of `avx2::tile_q4_1x8` does, in the same
//! order, so the two agree to the bit.

use super::{BlockQ4_1xN, BlockQ8, BlockQ8_0xN};
use std::arch::x86_64::*;

/// The four bytes of activations `4u..4u + 4` of a block in every 32-bit lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn word(x: &BlockQ8, u: usize) -> __m512i {
    _mm512_set1_epi32(x.word(u))
}

/// Σ weight × activation over one block for sixteen rows: vector `u` of `w` holds each row's
/// weights `4u..4u + 4`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot(w: &[__m512i; 8], x: &BlockQ8) -> __m512i {
    // Two chains, so one sum does not wait on the other.
    let (mut a, mut b) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    for u in 0..4 {
        a = _mm512_dpbusd_epi32(a, w[u], word(x, u));
        b = _mm512_dpbusd_epi32(b, w[4 + u], word(x, 4 + u));
    }
    _mm512_add_epi32(a, b)
}

/// A Q4_1 block's weights as bytes (low nibbles are weights 0–15, high ones 16–31), with each
/// row's scale and offset.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn unpack_q4_1(wb: &BlockQ4_1xN<16>) -> ([__m512i; 8], __m512, __m512) {
    let mask = _mm512_set1_epi8(15);
    let mut w = [_mm512_setzero_si512(); 8];
    for v in 0..4 {
        let packed = unsafe { _mm512_loadu_si512(wb.qs[v].as_ptr().cast()) };
        w[v] = _mm512_and_si512(packed, mask);
        w[4 + v] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), mask);
    }
    let d = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(wb.d.as_ptr().cast()) });
    let m = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(wb.m.as_ptr().cast()) });
    (w, d, m)
}

/// A Q8_0 block's weights (plus 128), with each row's scale and the offset that takes the
/// 128 back out: `d·Σ(q + 128)·x - 128·d·Σx`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn unpack_q8_0(wb: &BlockQ8_0xN<16>) -> ([__m512i; 8], __m512, __m512) {
    let w = std::array::from_fn(|u| unsafe { _mm512_loadu_si512(wb.qs[u].as_ptr().cast()) });
    let d = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(wb.d.as_ptr().cast()) });
    (w, d, _mm512_mul_ps(d, _mm512_set1_ps(-128.0)))
}

const PREFETCH: usize = 8;

macro_rules! tile_x16 {
    ($name:ident, $rows:ident, $block:ty, $unpack:ident) => {
        /// # Safety
        /// The CPU has AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C; `js` covers whole
        /// groups of sixteen rows; `out` has room for `rows × n` floats and no one else
        /// writes columns `js` while this runs.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub unsafe fn $name(
            w: &[$block],
            bpr: usize,
            x: &[BlockQ8],
            rows: usize,
            js: std::ops::Range<usize>,
            n: usize,
            out: *mut f32,
        ) {
            for g in js.start / 16..js.end.div_ceil(16) {
                let wg = &w[g * bpr..][..bpr];
                let at = |r: usize| unsafe { out.add(r * n + 16 * g) };
                let mut r = 0;
                while r + 4 <= rows {
                    unsafe { $rows::<4>(wg, &x[r * bpr..], bpr, at(r), n) };
                    r += 4;
                }
                // Two or three streams decoding together: one unpacking serves them all.
                match rows - r {
                    3 => unsafe { $rows::<3>(wg, &x[r * bpr..], bpr, at(r), n) },
                    2 => unsafe { $rows::<2>(wg, &x[r * bpr..], bpr, at(r), n) },
                    1 => unsafe { $rows::<1>(wg, &x[r * bpr..], bpr, at(r), n) },
                    _ => {}
                }
            }
        }

        /// Sixteen outputs of `R` activation rows: each lane of `acc` is one weight row.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn $rows<const R: usize>(
            w: &[$block],
            x: &[BlockQ8],
            bpr: usize,
            out: *mut f32,
            n: usize,
        ) {
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, wb) in w.iter().enumerate() {
                let ahead = (wb as *const $block).wrapping_add(PREFETCH).cast::<i8>();
                // Blocks start on 32 bytes, so one can touch a line more than its size needs.
                for line in (0..std::mem::size_of::<$block>() + 32).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
                }
                let (weights, d, m) = unsafe { $unpack(wb) };
                for (k, acc) in acc.iter_mut().enumerate() {
                    let xb = &x[k * bpr + b];
                    let sum = _mm512_cvtepi32_ps(unsafe { dot(&weights, xb) });
                    *acc = _mm512_fmadd_ps(sum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), *acc);
                    *acc = _mm512_fmadd_ps(m, _mm512_set1_ps(xb.s), *acc);
                }
            }
            for (k, acc) in acc.iter().enumerate() {
                unsafe { _mm512_storeu_ps(out.add(k * n), *acc) };
            }
        }
    };
}
tile_x16!(tile_q4_1x16, rows_q4_1x16, BlockQ4_1xN<16>, unpack_q4_1);
tile_x16!(tile_q8_0x16, rows_q8_0x16, BlockQ8_0xN<16>, unpack_q8_0);
