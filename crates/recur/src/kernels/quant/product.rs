//! `y ← b + x·Wᵀ` for rows of `x`, with `W` a [`StoredMatrix`] laid out once in panels of [`PANEL`] columns, as
//! [`crate::kernels::rowvec`] lays out `f32` weights. Each row of `x` is its own pass over the panels, so a row's
//! result never depends on how many rows share the call: a stream's numbers are the same alone and in a batch,
//! and a whole sequence gives what its steps give one at a time.
//!
//! The arithmetic, the same on every path:
//!
//! - **bf16, f16**: each weight widened to `f32` (exactly), `y_j = b_j + Σ_k x_k·w_kj` accumulated in `f32` in
//!   `k` order.
//! - **int8**: the row of `x` quantized on the fly, symmetric with its own scale `s_x = max_k |x_k| / 127` and
//!   `q_k = round(x_k / s_x)`; then `y_j = b_j + (s_x·s_j)·Σ_k q_k·w_kj` with the sum exact in `i32`. This is
//!   PyTorch's dynamic quantization (activations quantized per call, weights ahead of time), per row of `x`.

use super::{StoredMatrix, StoredValues};
use crate::kernels::packed::column_panels;

/// Columns per panel.
pub const PANEL: usize = 64;

/// A [`StoredMatrix`] `A` (`n × k`) laid out as `W = Aᵀ` (`k × n`) in panels of [`PANEL`] columns: panel `p`
/// holds `W[k][p·PANEL + j]` at `p·k·PANEL + k·PANEL + j`, columns past `n` zero.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredPanels {
    k: usize,
    n: usize,
    panels: Panels,
}

#[derive(Clone, Debug, PartialEq)]
enum Panels {
    Bf16(Vec<u16>),
    F16(Vec<u16>),
    /// The values and one scale per column of `W` (a per-tensor scale repeated).
    Int8 {
        values: Vec<i8>,
        scales: Vec<f32>,
    },
}

impl StoredPanels {
    /// Lays out `a` for [`StoredPanels::product`].
    pub fn new(a: &StoredMatrix) -> Self {
        let (n, k) = (a.rows(), a.cols());
        let panels = match a.values() {
            StoredValues::Bf16(v) => Panels::Bf16(column_panels(k, n, PANEL, |row, col| v[col * k + row])),
            StoredValues::F16(v) => Panels::F16(column_panels(k, n, PANEL, |row, col| v[col * k + row])),
            StoredValues::Int8 { values, scales } => Panels::Int8 {
                values: column_panels(k, n, PANEL, |row, col| values[col * k + row]),
                scales: (0..n).map(|j| scales[if scales.len() == 1 { 0 } else { j }]).collect(),
            },
        };
        StoredPanels { k, n, panels }
    }

    /// `k`: the length of a row of `x`.
    pub fn input_size(&self) -> usize {
        self.k
    }

    /// `n`: the columns of `y` there are.
    pub fn output_size(&self) -> usize {
        self.n
    }

    /// `y[r·y_stride + j] ← b[j] + Σ_k x[r·k + k]·W[k][j]` for the first `columns` columns `j` and `rows` rows
    /// `r` of `x` (row-major, `k` values a row); `b` is zero when `None`. Columns past `columns` are not written.
    ///
    /// # Panics
    /// When a length disagrees or `columns > n` (a caller bug).
    pub fn product(
        &self,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        y: &mut [f32],
        y_stride: usize,
        columns: usize,
    ) {
        let k = self.k;
        assert_eq!(x.len(), rows * k, "StoredPanels::product: x length");
        assert!(columns <= self.n && columns <= y_stride, "StoredPanels::product: columns");
        assert!(rows == 0 || y.len() >= (rows - 1) * y_stride + columns, "StoredPanels::product: y length");
        if let Some(b) = bias {
            assert!(b.len() >= columns, "StoredPanels::product: bias length");
        }
        for r in 0..rows {
            let (x_row, y_row) = (&x[r * k..(r + 1) * k], &mut y[r * y_stride..r * y_stride + columns]);
            match &self.panels {
                Panels::Bf16(p) => widened_row(x_row, p, super::bf16_to_f32, bias, y_row),
                Panels::F16(p) => widened_row(x_row, p, super::f16_to_f32, bias, y_row),
                Panels::Int8 { values, scales } => int8_row(x_row, values, scales, bias, y_row),
            }
        }
    }
}

/// One row of a bf16 or f16 product: `y_j = b_j + Σ_k x_k·widen(w_kj)`, in `k` order.
fn widened_row(x: &[f32], panels: &[u16], widen: impl Fn(u16) -> f32, bias: Option<&[f32]>, y: &mut [f32]) {
    let k = x.len();
    for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
        let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
        let mut acc = [0.0f32; PANEL];
        if let Some(b) = bias {
            acc[..y_panel.len()].copy_from_slice(&b[p * PANEL..p * PANEL + y_panel.len()]);
        }
        for (&xk, row) in x.iter().zip(panel.chunks_exact(PANEL)) {
            for (a, &w) in acc.iter_mut().zip(row) {
                *a = xk.mul_add(widen(w), *a);
            }
        }
        y_panel.copy_from_slice(&acc[..y_panel.len()]);
    }
}

/// `x`'s scale and its values quantized to `[−127, 127]` into `q`: `s_x = max|x| / 127`, `q = round(x / s_x)`
/// (ties to even), all zero with a scale of 0 when `x` is.
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = max / 127.0;
    if scale == 0.0 || !scale.is_finite() {
        q.fill(0);
        // A non-finite input gives non-finite outputs, as an f32 product would.
        return if scale.is_finite() { 0.0 } else { f32::NAN };
    }
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// One row of an int8 product: `y_j = b_j + (s_x·s_j)·Σ_k q_k·w_kj`.
fn int8_row(x: &[f32], panels: &[i8], scales: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    let k = x.len();
    QUANTIZED_ROW.with_borrow_mut(|q| {
        q.resize(k, 0);
        let sx = quantize_row(x, q);
        for (p, y_panel) in y.chunks_mut(PANEL).enumerate() {
            let panel = &panels[p * k * PANEL..(p + 1) * k * PANEL];
            let mut acc = [0i32; PANEL];
            for (&qk, row) in q.iter().zip(panel.chunks_exact(PANEL)) {
                for (a, &w) in acc.iter_mut().zip(row) {
                    *a += i32::from(qk) * i32::from(w);
                }
            }
            for (j, (out, &sum)) in y_panel.iter_mut().zip(&acc).enumerate() {
                let col = p * PANEL + j;
                let b = bias.map_or(0.0, |b| b[col]);
                *out = sum as f32 * (sx * scales[col]) + b;
            }
        }
    });
}

thread_local! {
    /// A row of `x` quantized, kept from one product to the next so that a step allocates nothing.
    static QUANTIZED_ROW: std::cell::RefCell<Vec<i8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::super::{Int8Scale, Scheme};
    use super::*;

    /// `b + x·Aᵀ` in f64 from the values `a` stands for.
    fn reference(x: &[f32], rows: usize, a: &StoredMatrix, b: &[f32]) -> Vec<f64> {
        let (n, k, w) = (a.rows(), a.cols(), a.dequantize());
        (0..rows)
            .flat_map(|r| {
                let w = &w;
                (0..n)
                    .map(move |j| b[j] as f64 + (0..k).map(|p| x[r * k + p] as f64 * w[j * k + p] as f64).sum::<f64>())
            })
            .collect()
    }

    #[test]
    fn every_scheme_matches_its_dequantized_product() {
        for (k, n, rows) in [(1, 1, 1), (7, 33, 2), (32, 256, 3), (130, 65, 1), (0, 3, 2)] {
            let a: Vec<f32> = (0..k * n).map(|i| ((i * 11 % 17) as f32 - 8.0) / 8.0).collect();
            let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.25).collect();
            for scheme in Scheme::ALL {
                let m = StoredMatrix::quantize(&a, n, k, scheme);
                let mut y = vec![f32::NAN; rows * n];
                StoredPanels::new(&m).product(&x, rows, Some(&b), &mut y, n, n);
                // int8 also quantizes x: half a step of x's scale on each term.
                let tol = if let Scheme::Int8(_) = scheme { 0.5 / 127.0 * k as f64 + 1e-5 } else { 1e-5 };
                for (got, want) in y.iter().zip(reference(&x, rows, &m, &b)) {
                    assert!(
                        (*got as f64 - want).abs() <= tol * want.abs().max(1.0),
                        "{scheme} k={k} n={n}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_row_is_the_same_alone_and_among_others_and_leading_columns_stay_put() {
        let (k, n) = (40, 100);
        let a: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.13).cos()).collect();
        let x: Vec<f32> = (0..3 * k).map(|i| (i as f32 * 0.9).sin()).collect();
        for scheme in Scheme::ALL {
            let p = StoredPanels::new(&StoredMatrix::quantize(&a, n, k, scheme));
            let mut all = vec![0.0; 3 * n];
            p.product(&x, 3, None, &mut all, n, n);
            let mut one = vec![0.0; n];
            p.product(&x[k..2 * k], 1, None, &mut one, n, n);
            assert_eq!(one, all[n..2 * n], "{scheme}");
            let mut leading = vec![-1.0; n + 5];
            p.product(&x[k..2 * k], 1, None, &mut leading, n + 5, 70);
            assert_eq!(leading[..70], one[..70], "{scheme}");
            assert!(leading[70..].iter().all(|&v| v == -1.0));
        }
        let _ = Int8Scale::Row;
    }
}
