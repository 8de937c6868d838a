//! Weights stored in fewer bits than `f32`, and the products that read them as they are stored.
//!
//! A [`StoredMatrix`] is a row-major `rows × cols` weight (PyTorch's `out × in`) in one of three formats
//! ([`Scheme`]):
//!
//! - **bf16**: the upper half of each `f32` (8 bits of mantissa), rounded to nearest, ties to even;
//! - **f16**: IEEE half precision (11 bits of mantissa, values to ±65504);
//! - **int8**: symmetric, `w ≈ s_r · q` with `q ∈ [−127, 127]` and one `f32` scale `s_r = max_c |w_rc| / 127` per
//!   row (per output unit; [`Int8Scale::Row`]) or one for the whole matrix ([`Int8Scale::Tensor`]).
//!
//! [`StoredPanels`] lays a matrix out for the product `y ← b + x·Wᵀ` over rows of `x`, the one product of a layer's
//! input and recurrent projections and of a linear head ([`product`] has its kernels and their arithmetic). Like
//! every kernel here, these functions take lengths on trust: a wrong length is a caller bug and panics. Values
//! read from a file are checked above (in `model_file`) before they reach this module.

pub mod product;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

pub use product::StoredPanels;

/// How a weight matrix is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// bfloat16: `f32`'s exponent, 8 bits of mantissa.
    Bf16,
    /// IEEE 754 half precision.
    F16,
    /// Symmetric 8-bit integers with `f32` scales.
    Int8(Int8Scale),
}

/// What one int8 scale covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Int8Scale {
    /// One scale per row (per output unit: per gate unit of a recurrent weight).
    Row,
    /// One scale for the whole matrix.
    Tensor,
}

impl Scheme {
    /// Every scheme, in the order the documentation lists them.
    pub const ALL: [Scheme; 4] =
        [Scheme::Bf16, Scheme::F16, Scheme::Int8(Int8Scale::Row), Scheme::Int8(Int8Scale::Tensor)];

    /// The scheme's name, as files and the command line spell it: `bf16`, `f16`, `int8` (per row) or
    /// `int8-tensor`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bf16 => "bf16",
            Scheme::F16 => "f16",
            Scheme::Int8(Int8Scale::Row) => "int8",
            Scheme::Int8(Int8Scale::Tensor) => "int8-tensor",
        }
    }

    /// The scheme named `name` ([`Scheme::name`]), if any.
    pub fn parse(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes per stored value.
    pub fn bytes_per_value(self) -> usize {
        match self {
            Scheme::Bf16 | Scheme::F16 => 2,
            Scheme::Int8(_) => 1,
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The stored values of a [`StoredMatrix`].
#[derive(Clone, Debug, PartialEq)]
pub enum StoredValues {
    /// bfloat16 bit patterns.
    Bf16(Vec<u16>),
    /// IEEE half-precision bit patterns.
    F16(Vec<u16>),
    /// Integers in `[−127, 127]` and their scales: one per row, or one in all.
    Int8 {
        /// The quantized values, row-major.
        values: Vec<i8>,
        /// `rows` scales ([`Int8Scale::Row`]) or one ([`Int8Scale::Tensor`]), each finite and ≥ 0.
        scales: Vec<f32>,
        /// What one scale covers.
        per: Int8Scale,
    },
}

/// A row-major `rows × cols` weight stored in a [`Scheme`].
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMatrix {
    rows: usize,
    cols: usize,
    values: StoredValues,
}

impl StoredMatrix {
    /// Stores the row-major `rows × cols` matrix `a` in `scheme`. bf16 and f16 round to nearest (ties to even);
    /// f16 saturates nothing, so a value past ±65504 becomes infinite (the caller checks the range first where it
    /// matters). int8 rounds `w / s` to nearest (ties to even).
    ///
    /// # Panics
    /// When `a.len() != rows·cols`, or for int8 when `a` holds a value that is not finite (a caller bug: the
    /// caller refuses such weights with the tensor's name).
    pub fn quantize(a: &[f32], rows: usize, cols: usize, scheme: Scheme) -> Self {
        assert_eq!(a.len(), rows * cols, "StoredMatrix::quantize: matrix size");
        let values = match scheme {
            Scheme::Bf16 => StoredValues::Bf16(a.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect()),
            Scheme::F16 => StoredValues::F16(a.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect()),
            Scheme::Int8(per) => {
                assert!(a.iter().all(|v| v.is_finite()), "StoredMatrix::quantize: int8 of a non-finite value");
                let groups: Vec<&[f32]> = match per {
                    Int8Scale::Row if cols > 0 => a.chunks_exact(cols).collect(),
                    Int8Scale::Row => vec![&[][..]; rows],
                    Int8Scale::Tensor => vec![a],
                };
                let scales: Vec<f32> =
                    groups.iter().map(|g| g.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0).collect();
                let mut values = Vec::with_capacity(a.len());
                for (r, row) in a.chunks_exact(cols.max(1)).enumerate().take(rows) {
                    let s = scales[if per == Int8Scale::Row { r } else { 0 }];
                    values.extend(row.iter().map(|&v| quantize_value(v, s)));
                }
                StoredValues::Int8 { values, scales, per }
            }
        };
        StoredMatrix { rows, cols, values }
    }

    /// A matrix from values already stored (read from a file).
    ///
    /// # Panics
    /// When the number of values is not `rows·cols`, or an int8 matrix has not the scales its `per` says (one per
    /// row, or one; a caller bug: `model_file` checks both with the tensor's name first).
    pub fn from_values(rows: usize, cols: usize, values: StoredValues) -> Self {
        let (len, scales) = match &values {
            StoredValues::Bf16(v) | StoredValues::F16(v) => (v.len(), None),
            StoredValues::Int8 { values, scales, per } => {
                (values.len(), Some((scales.len(), if *per == Int8Scale::Row { rows } else { 1 })))
            }
        };
        assert_eq!(len, rows * cols, "StoredMatrix::from_values: matrix size");
        if let Some((n, want)) = scales {
            assert_eq!(n, want, "StoredMatrix::from_values: scales for {rows} rows");
        }
        StoredMatrix { rows, cols, values }
    }

    /// Rows (output units).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The stored values.
    pub fn values(&self) -> &StoredValues {
        &self.values
    }

    /// How the matrix is stored.
    pub fn scheme(&self) -> Scheme {
        match &self.values {
            StoredValues::Bf16(_) => Scheme::Bf16,
            StoredValues::F16(_) => Scheme::F16,
            StoredValues::Int8 { per, .. } => Scheme::Int8(*per),
        }
    }

    /// Bytes of the stored values and scales.
    pub fn bytes(&self) -> usize {
        match &self.values {
            StoredValues::Bf16(v) | StoredValues::F16(v) => 2 * v.len(),
            StoredValues::Int8 { values, scales, .. } => values.len() + 4 * scales.len(),
        }
    }

    /// Row `r` as `f32` values, into `out` (`cols` values): an embedding's lookup.
    ///
    /// # Panics
    /// When `r ≥ rows` or `out.len() != cols`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        assert!(r < self.rows, "StoredMatrix::row_into: row {r} of {}", self.rows);
        assert_eq!(out.len(), self.cols, "StoredMatrix::row_into: row length");
        let at = r * self.cols..(r + 1) * self.cols;
        match &self.values {
            StoredValues::Bf16(v) => out.iter_mut().zip(&v[at]).for_each(|(o, &b)| *o = bf16_to_f32(b)),
            StoredValues::F16(v) => out.iter_mut().zip(&v[at]).for_each(|(o, &b)| *o = f16_to_f32(b)),
            StoredValues::Int8 { values, scales, per } => {
                let s = scales[if *per == Int8Scale::Row { r } else { 0 }];
                out.iter_mut().zip(&values[at]).for_each(|(o, &q)| *o = s * f32::from(q));
            }
        }
    }

    /// The whole matrix as `f32`, row-major: the value each stored weight stands for.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        if self.cols > 0 {
            for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
                self.row_into(r, row);
            }
        }
        out
    }

    /// The matrix of rows `picked` of this one, in that order (a stream's split of a layer's units), with their
    /// scales; a per-tensor scale stays the one scale.
    ///
    /// # Panics
    /// When a row is out of range.
    pub fn pick_rows(&self, picked: &[usize]) -> Self {
        let cols = self.cols;
        let gather = |v: &[u16]| picked.iter().flat_map(|&r| v[r * cols..(r + 1) * cols].iter().copied()).collect();
        let values = match &self.values {
            StoredValues::Bf16(v) => StoredValues::Bf16(gather(v)),
            StoredValues::F16(v) => StoredValues::F16(gather(v)),
            StoredValues::Int8 { values, scales, per } => StoredValues::Int8 {
                values: picked.iter().flat_map(|&r| values[r * cols..(r + 1) * cols].iter().copied()).collect(),
                scales: match per {
                    Int8Scale::Row => picked.iter().map(|&r| scales[r]).collect(),
                    Int8Scale::Tensor => scales.clone(),
                },
                per: *per,
            },
        };
        StoredMatrix { rows: picked.len(), cols, values }
    }
}

/// A [`StoredMatrix`] with its [`StoredPanels`], laid out on first use: a layer's weight stored in fewer bits. Clones
/// start without the panels and comparisons ignore them.
#[derive(Debug)]
pub struct StoredWeight {
    matrix: StoredMatrix,
    panels: std::sync::OnceLock<StoredPanels>,
}

impl StoredWeight {
    /// The weight `matrix`.
    pub fn new(matrix: StoredMatrix) -> Self {
        StoredWeight { matrix, panels: std::sync::OnceLock::new() }
    }

    /// The stored matrix.
    pub fn matrix(&self) -> &StoredMatrix {
        &self.matrix
    }

    /// The matrix laid out for its products, on first use.
    pub fn panels(&self) -> &StoredPanels {
        self.panels.get_or_init(|| StoredPanels::new(&self.matrix))
    }

    /// The weight of rows `picked` alone (see [`StoredMatrix::pick_rows`]).
    pub fn pick_rows(&self, picked: &[usize]) -> Self {
        StoredWeight::new(self.matrix.pick_rows(picked))
    }

    /// `y ← b + x·Wᵀ` for `rows` rows of `x`, each `y` row `W.rows()` values (see [`StoredPanels::product`]).
    pub fn product(&self, x: &[f32], rows: usize, bias: Option<&[f32]>, y: &mut [f32]) {
        let n = self.matrix.rows;
        self.panels().product(x, rows, bias, y, n, n);
    }
}

impl Clone for StoredWeight {
    fn clone(&self) -> Self {
        StoredWeight::new(self.matrix.clone())
    }
}

impl PartialEq for StoredWeight {
    fn eq(&self, other: &Self) -> bool {
        self.matrix == other.matrix
    }
}

/// Why `w` cannot be stored in `scheme`, if it cannot: a value that is not finite, or (f16) one past f16's
/// ±65504.
pub fn unstorable(w: &[f32], scheme: Scheme) -> Option<String> {
    if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Some(format!("its value {i} is {v}"));
    }
    let max = f32::from(half::f16::MAX);
    if scheme == Scheme::F16
        && let Some((i, v)) = w.iter().enumerate().find(|(_, v)| v.abs() > max)
    {
        return Some(format!("its value {i} is {v}, past f16's ±65504"));
    }
    None
}

/// `round(v / s)` in `[−127, 127]`, ties to even; 0 when the scale is 0 (an all-zero group).
fn quantize_value(v: f32, s: f32) -> i8 {
    if s == 0.0 {
        return 0;
    }
    (v / s).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// The `f32` a bfloat16 bit pattern stands for.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// The `f32` an IEEE half-precision bit pattern stands for.
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_rows_round_to_their_own_scale() {
        let a = [1.0, -0.5, 0.25, /* row 2 */ 0.0, 0.0, 0.0, /* row 3 */ -4.0, 2.0, 1.0];
        let m = StoredMatrix::quantize(&a, 3, 3, Scheme::Int8(Int8Scale::Row));
        let StoredValues::Int8 { values, scales, .. } = m.values() else { panic!("int8") };
        assert_eq!(scales, &[1.0 / 127.0, 0.0, 4.0 / 127.0]);
        assert_eq!(values, &[127, -64, 32, 0, 0, 0, -127, 64, 32]);
        let back = m.dequantize();
        for (x, y) in a.iter().zip(&back) {
            assert!((x - y).abs() <= 4.0 / 127.0 / 2.0 + 1e-7, "{x} vs {y}");
        }
        assert_eq!(m.scheme(), Scheme::Int8(Int8Scale::Row));
        assert_eq!(m.bytes(), 9 + 12);
    }

    #[test]
    fn int8_tensor_shares_one_scale_and_survives_picking_rows() {
        let a = [1.0, -2.0, 0.5, 0.25];
        let m = StoredMatrix::quantize(&a, 2, 2, Scheme::Int8(Int8Scale::Tensor));
        assert_eq!(m.scheme(), Scheme::Int8(Int8Scale::Tensor));
        let picked = m.pick_rows(&[1]);
        assert_eq!(picked.scheme(), Scheme::Int8(Int8Scale::Tensor));
        assert_eq!(picked.dequantize(), m.dequantize()[2..]);
    }

    #[test]
    fn half_formats_round_to_nearest() {
        let a = [1.0 + 1.0 / 256.0 + 1.0 / 512.0, -3.0, 1e-3, 70000.0];
        let b = StoredMatrix::quantize(&a, 2, 2, Scheme::Bf16).dequantize();
        assert_eq!(b[..3], [1.0 + 1.0 / 128.0, -3.0, half::bf16::from_f32(1e-3).to_f32()]);
        let h = StoredMatrix::quantize(&a, 2, 2, Scheme::F16).dequantize();
        assert_eq!(h[1], -3.0);
        assert!((h[2] - 1e-3).abs() < 1e-6 && h[3].is_infinite());
        for s in Scheme::ALL {
            assert_eq!(Scheme::parse(s.name()), Some(s));
        }
    }
}
