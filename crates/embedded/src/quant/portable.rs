//! The portable kernels: the reference the SIMD ones must match, and the fallback on CPUs
//! without them.

use super::*;

pub(super) fn tile_portable<B>(
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

/// [`tile_portable`] over weights interleaved in groups of rows.
pub(super) fn tile_interleaved<G: Interleaved>(
    w: &[G],
    bpr: usize,
    x: &Activations,
    js: std::ops::Range<usize>,
    write: &dyn Fn(usize, usize, f32),
    dot: fn(&[G::Block], &[BlockQ8]) -> f32,
) {
    for j in js {
        let row: Vec<G::Block> = w[j / G::ROWS * bpr..][..bpr]
            .iter()
            .map(|g| g.block(j % G::ROWS))
            .collect();
        tile_portable(&row, bpr, x, 0..1, &|r, _, v| write(r, j, v), dot);
    }
}

pub(super) fn tile_f32(
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
pub(super) fn quantize(chunk: &[f32]) -> BlockQ8 {
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

pub(super) fn dequantize_q8_0(b: &BlockQ8_0, out: &mut [f32]) {
    let d = f32::from(b.d);
    for (o, q) in out.iter_mut().zip(b.qs) {
        *o = q as f32 * d;
    }
}

pub(super) fn dequantize_q4_1(b: &BlockQ4_1, out: &mut [f32]) {
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

pub(super) fn dot_q4_0(w: &[BlockQ4_0], x: &[BlockQ8]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| {
            let d = f32::from(w.d);
            d * x.d * nibble_dot(&w.qs, &x.qs) - 8.0 * d * x.s
        })
        .sum()
}

pub(super) fn dot_q4_1(w: &[BlockQ4_1], x: &[BlockQ8]) -> f32 {
    w.iter()
        .zip(x)
        .map(|(w, x)| f32::from(w.d) * x.d * nibble_dot(&w.qs, &x.qs) + f32::from(w.m) * x.s)
        .sum()
}

pub(super) fn dot_q8_0(w: &[BlockQ8_0], x: &[BlockQ8]) -> f32 {
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
