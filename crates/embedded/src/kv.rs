//! How a head's cached keys or values are stored: position after position, each vector of
//! the head's width as signed bytes with one scale (its largest magnitude over 127), as
//! llama.cpp's `q8_0` cache does per 32. Decoding at a long context reads every cached
//! vector once a step, so its speed follows their bytes: a quarter of f32's, about half of
//! f16's, for an error under half a step of 1/127 of each vector's largest value.

/// One head's vectors in one layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vectors {
    data: Vec<i8>,
    scales: Vec<f32>,
}

/// A read-only view of [`Vectors`], for the attention kernels.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// `width` bytes a position.
    pub data: &'a [i8],
    /// One a position.
    pub scales: &'a [f32],
}

impl Vectors {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// Bytes it takes.
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * self.scales.len()
    }

    /// Keeps the first `positions` (of `width` each).
    pub fn truncate(&mut self, positions: usize, width: usize) {
        self.data.truncate(positions * width);
        self.scales.truncate(positions);
    }

    /// Appends one position's vector.
    pub fn push(&mut self, x: &[f32]) {
        let top = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = top / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        self.data.extend(
            x.iter()
                .map(|v| (v * inverse).round().clamp(-127.0, 127.0) as i8),
        );
        self.scales.push(scale);
    }

    /// A copy of the first `positions`.
    pub fn prefix(&self, positions: usize, width: usize) -> Vectors {
        Vectors {
            data: self.data[..positions * width].to_vec(),
            scales: self.scales[..positions].to_vec(),
        }
    }

    pub fn view(&self) -> View<'_> {
        View {
            data: &self.data,
            scales: &self.scales,
        }
    }

    /// Appends its bytes, then its scales as little-endian f32.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.data.iter().map(|&b| b as u8));
        for s in &self.scales {
            out.extend_from_slice(&s.to_le_bytes());
        }
    }

    /// `positions` vectors of `width` from what [`Vectors::write`] wrote at the start of
    /// `bytes`, and the bytes after them; `None` if too short or a scale is not a finite
    /// number at least 0.
    pub fn read(bytes: &[u8], positions: usize, width: usize) -> Option<(Vectors, &[u8])> {
        let (data, rest) = bytes.split_at_checked(positions.checked_mul(width)?)?;
        let (scales, rest) = rest.split_at_checked(positions.checked_mul(4)?)?;
        let scales: Vec<f32> = scales
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if !scales.iter().all(|s| s.is_finite() && *s >= 0.0) {
            return None;
        }
        let data = data.iter().map(|&b| b as i8).collect();
        Some((Vectors { data, scales }, rest))
    }
}

impl View<'_> {
    /// Position `t`'s vector, as f32, into `to` (the head's width long).
    pub fn widen(&self, t: usize, to: &mut [f32]) {
        let width = to.len();
        let scale = self.scales[t];
        for (o, &q) in to.iter_mut().zip(&self.data[t * width..][..width]) {
            *o = f32::from(q) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_comes_back_within_half_a_step_and_survives_bytes() {
        let x: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.7).sin() * 3.0).collect();
        let mut v = Vectors::default();
        v.push(&x);
        v.push(&[0.0; 64]);
        let mut back = vec![0f32; 64];
        v.view().widen(0, &mut back);
        let step = 3.0 / 127.0;
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() <= step / 2.0 + 1e-6, "{a} vs {b}");
        }
        v.view().widen(1, &mut back);
        assert!(back.iter().all(|&b| b == 0.0));
        let mut bytes = Vec::new();
        v.write(&mut bytes);
        bytes.push(9);
        let (read, rest) = Vectors::read(&bytes, 2, 64).unwrap();
        assert_eq!((read, rest), (v.clone(), &[9u8][..]));
        assert!(Vectors::read(&bytes[..100], 2, 64).is_none());
        let mut bad = bytes.clone();
        bad[128..132].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Vectors::read(&bad, 2, 64).is_none());
        assert_eq!(v.prefix(1, 64).len(), 1);
    }
}
