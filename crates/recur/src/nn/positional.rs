//! Sinusoidal positional encoding, as in "Attention Is All You Need" and PyTorch's Transformer tutorial.

use super::{Layout, SequenceShape};
use crate::error::{Error, Result};
use crate::kernels::Real;

/// The table of sinusoidal positional encodings, row-major `max_len × d_model`:
///
/// `PE[pos, 2i] = sin(pos / 10000^(2i/d_model))`, `PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))`.
///
/// Each sine column and the cosine column after it share a frequency. With an odd `d_model` the last column is a
/// sine with no cosine beside it (PyTorch's tutorial code assumes an even `d_model`; this is its formula with the
/// cosine columns cut at `d_model`).
///
/// Values are computed in `f64` and rounded once to `T`. PyTorch's tutorial computes the angle
/// `pos · exp(2i · (−ln 10000 / d_model))` in `f32`, which rounds the angle to a relative 1e-7 or so: the two
/// tables agree to about `1e-7 · pos`.
///
/// Fails when the table would not fit in memory.
pub fn sinusoidal_positions<T: Real>(max_len: usize, d_model: usize) -> Result<Vec<T>> {
    let len = max_len.checked_mul(d_model).ok_or_else(|| {
        Error::config(format!("a positional encoding of {max_len} positions × {d_model} features is too large"))
    })?;
    let mut table = Vec::with_capacity(len);
    // One frequency per pair of columns: 10000^(−2i/d) = exp(2i · (−ln 10000 / d)).
    let frequencies: Vec<f64> =
        (0..d_model.div_ceil(2)).map(|i| (-(10000f64.ln()) * (2 * i) as f64 / d_model as f64).exp()).collect();
    for pos in 0..max_len {
        for j in 0..d_model {
            let angle = pos as f64 * frequencies[j / 2];
            let value = if j % 2 == 0 { angle.sin() } else { angle.cos() };
            table.push(T::from_f64_lossy(value));
        }
    }
    Ok(table)
}

/// Adds the sinusoidal position of each step to a sequence, as the `PositionalEncoding` module of PyTorch's
/// Transformer tutorial (without its dropout): `x[t, b] += PE[t]` for every step `t` and sequence `b`.
///
/// The table of [`sinusoidal_positions`] is computed once, for up to `max_len` steps. The encoding has no
/// parameters, and its backward is the identity: `∂L/∂x = ∂L/∂y`, so a training loop passes the output gradient
/// through unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionalEncoding<T: Real = f32> {
    max_len: usize,
    d_model: usize,
    table: Vec<T>,
}

impl<T: Real> PositionalEncoding<T> {
    /// The encoding of up to `max_len` steps of `d_model` features (PyTorch's tutorial uses `max_len = 5000`).
    ///
    /// Fails when the table would not fit in memory.
    pub fn new(max_len: usize, d_model: usize) -> Result<Self> {
        Ok(PositionalEncoding { max_len, d_model, table: sinusoidal_positions(max_len, d_model)? })
    }

    /// The longest sequence it encodes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Features per step.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// The table, row-major `max_len × d_model`: row `pos` is the encoding of step `pos`.
    pub fn table(&self) -> &[T] {
        &self.table
    }

    /// Adds `PE[t]` to every step `t` of `x`, a sequence of `shape` (`(T, B, d_model)` or, batch-first,
    /// `(B, T, d_model)`), in place.
    ///
    /// Fails when `x` does not hold `shape`, when `shape.features` is not `d_model`, or when the sequence has more
    /// than `max_len` steps.
    pub fn add_to(&self, x: &mut [T], shape: SequenceShape) -> Result<()> {
        let SequenceShape { steps, batch, features, layout } = shape;
        let d = self.d_model;
        let dims = match layout {
            Layout::TimeMajor => [steps, batch, features],
            Layout::BatchFirst => [batch, steps, features],
        };
        if features != d || steps > self.max_len {
            let pattern = match layout {
                Layout::TimeMajor => format!("[T, B, {d}]"),
                Layout::BatchFirst => format!("[B, T, {d}]"),
            };
            let expected = format!("{pattern} with T ≤ max_len = {}", self.max_len);
            return Err(Error::shape("positional encoding input", expected, &dims));
        }
        if steps.checked_mul(batch).and_then(|n| n.checked_mul(features)) != Some(x.len()) {
            let expected = format!("{dims:?} ({} values)", steps.saturating_mul(batch).saturating_mul(features));
            return Err(Error::shape("positional encoding input", expected, &[x.len()]));
        }
        if d == 0 {
            return Ok(());
        }
        for (row, xr) in x.chunks_exact_mut(d).enumerate() {
            let t = match layout {
                Layout::TimeMajor => row / batch,
                Layout::BatchFirst => row % steps,
            };
            let pe = &self.table[t * d..(t + 1) * d];
            xr.iter_mut().zip(pe).for_each(|(v, &p)| *v += p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let pe = sinusoidal_positions::<f64>(3, 4).unwrap();
        // pos 0: sin 0 = 0, cos 0 = 1.
        assert_eq!(&pe[..4], &[0.0, 1.0, 0.0, 1.0]);
        // pos 1: the first pair has frequency 1, the second 10000^(−2/4) = 0.01.
        let want = [1f64.sin(), 1f64.cos(), 0.01f64.sin(), 0.01f64.cos()];
        for (got, want) in pe[4..8].iter().zip(want) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        assert!((pe[8] - 2f64.sin()).abs() < 1e-15 && (pe[11] - 0.02f64.cos()).abs() < 1e-15);
    }

    #[test]
    fn matches_the_paper_s_formula_at_any_size() {
        for d in [1usize, 2, 5, 8, 33] {
            let pe = sinusoidal_positions::<f32>(100, d).unwrap();
            assert_eq!(pe.len(), 100 * d);
            for pos in [0usize, 1, 7, 50, 99] {
                for j in 0..d {
                    let i = j / 2;
                    let angle = pos as f64 / 10000f64.powf((2 * i) as f64 / d as f64);
                    let want = if j % 2 == 0 { angle.sin() } else { angle.cos() };
                    let got = pe[pos * d + j] as f64;
                    assert!((got - want).abs() < 1e-7, "d {d}, pos {pos}, column {j}: {got} vs {want}");
                }
            }
        }
        // An odd width ends on a sine: d = 1 is one sine column of frequency 1.
        let pe = sinusoidal_positions::<f64>(3, 1).unwrap();
        assert_eq!(pe, vec![0.0, 1f64.sin(), 2f64.sin()]);
        assert!(sinusoidal_positions::<f32>(0, 8).unwrap().is_empty());
        assert!(sinusoidal_positions::<f32>(usize::MAX, 2).is_err());
    }

    #[test]
    fn adds_the_step_s_row_in_both_layouts() {
        let (steps, batch, d) = (3, 2, 4);
        let enc = PositionalEncoding::<f64>::new(5, d).unwrap();
        assert_eq!((enc.max_len(), enc.d_model(), enc.table().len()), (5, 4, 20));
        let row = |t: usize| &enc.table()[t * d..(t + 1) * d];

        let mut x = vec![1.0; steps * batch * d];
        let shape = SequenceShape { steps, batch, features: d, layout: Layout::TimeMajor };
        enc.add_to(&mut x, shape).unwrap();
        for t in 0..steps {
            for b in 0..batch {
                let at = (t * batch + b) * d;
                let want: Vec<f64> = row(t).iter().map(|p| 1.0 + p).collect();
                assert_eq!(&x[at..at + d], &want[..]);
            }
        }

        let mut x = vec![0.0; steps * batch * d];
        enc.add_to(&mut x, SequenceShape { layout: Layout::BatchFirst, ..shape }).unwrap();
        for b in 0..batch {
            for t in 0..steps {
                let at = (b * steps + t) * d;
                assert_eq!(&x[at..at + d], row(t));
            }
        }
    }

    #[test]
    fn shapes_are_checked() {
        let enc = PositionalEncoding::<f32>::new(4, 2).unwrap();
        let shape = SequenceShape { steps: 3, batch: 1, features: 2, layout: Layout::BatchFirst };
        let err = enc.add_to(&mut [0.0; 5], shape).unwrap_err();
        assert!(err.to_string().contains("expected shape [1, 3, 2] (6 values), found [5]"), "{err}");
        let err = enc.add_to(&mut [0.0; 10], SequenceShape { steps: 5, ..shape }).unwrap_err();
        let want = "expected shape [B, T, 2] with T ≤ max_len = 4, found [1, 5, 2]";
        assert!(err.to_string().contains(want), "{err}");
        let err = enc.add_to(&mut [0.0; 9], SequenceShape { features: 3, layout: Layout::TimeMajor, ..shape });
        let want = "expected shape [T, B, 2] with T ≤ max_len = 4, found [3, 1, 3]";
        assert!(err.unwrap_err().to_string().contains(want));
        enc.add_to(&mut [], SequenceShape { steps: 0, ..shape }).unwrap();
    }
}
