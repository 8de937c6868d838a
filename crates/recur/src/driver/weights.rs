//! The input and recurrent weights every cell has, with PyTorch's names and shapes, and their gradients.

use std::ops::Range;

use rand::Rng;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::kernels::Real;
use crate::kernels::gemm::{MatMut, MatRef, broadcast_rows, gemm};
use crate::kernels::packed::{
    PackedMatrix, Start, has_vector_tile_kernel, packed_product, packed_product_leading, packed_product_on_threads,
};
use crate::kernels::quant::{Scheme, StoredMatrix, StoredPanels, StoredWeight};
use crate::kernels::rowvec::{RowPanels, rows_times};
use crate::params::{Param, ParamMut, ParamRef, Parameter, init_uniform, store_weight};

/// `weight_ih (G·H, I)`, `weight_hh (G·H, H_out)` and the optional `bias_ih`, `bias_hh (G·H)` of one cell, where
/// `G` is the number of gates, `H` the hidden size and `H_out` the size of the fed-back state.
#[derive(Clone, Debug, PartialEq)]
pub struct CellWeights<T: Real = f32> {
    input_size: usize,
    hidden_size: usize,
    recurrent_size: usize,
    gates: usize,
    weight_ih: Parameter<T>,
    weight_hh: Parameter<T>,
    bias_ih: Option<Parameter<T>>,
    bias_hh: Option<Parameter<T>>,
    /// `weight_ih` and `weight_hh` stored in fewer bits, for inference: when set, the two parameters above are
    /// empty and every product reads these (see [`crate::kernels::quant`]).
    stored: Option<StoredPair>,
    packed: Packed<T>,
}

/// `weight_ih` and `weight_hh` in a [`Scheme`], each with its panels laid out on first use.
#[derive(Clone, Debug, PartialEq)]
struct StoredPair {
    ih: StoredWeight,
    hh: StoredWeight,
}

/// The recurrent weights as a time loop reads them, from [`CellWeights::packed_forward`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum ForwardPanels<'a, T> {
    /// `W_hhᵀ` in `T`, packed for the tile kernel.
    Full(&'a PackedMatrix<T>),
    /// `W_hh` stored in fewer bits.
    Stored(&'a StoredPanels),
}

/// The weights laid out for the kernels, each built on first use and dropped whenever the weights may change:
/// `W_ihᵀ` and `W_hhᵀ` for one-row steps ([`crate::kernels::rowvec`]), and `W_hh` in panels for the per-step
/// products of whole sequences ([`crate::kernels::packed`]), once as `W_hhᵀ` (forward) and once as `W_hh`
/// (backward). Not part of a cell's value: clones start without them and comparisons ignore them.
#[derive(Debug)]
struct Packed<T> {
    /// Names these weights' current values: a new number whenever they may have changed (see
    /// [`CellWeights::layout_id`]).
    id: u64,
    rows: OnceLock<(RowPanels, RowPanels)>,
    input: OnceLock<PackedMatrix<T>>,
    forward: OnceLock<PackedMatrix<T>>,
    backward: OnceLock<PackedMatrix<T>>,
    /// One gate's block of `W_hh` for a cell that applies it to something else than `h_{t−1}` (see
    /// [`CellWeights::packed_gate_forward`]), with that gate's number: `W_hh,gᵀ` forward, `W_hh,g` backward.
    gate_forward: OnceLock<(usize, PackedMatrix<T>)>,
    gate_backward: OnceLock<(usize, PackedMatrix<T>)>,
}

/// The value in `cell`, made by `make` if there is none yet. `make` runs before the cell's lock is taken: packing
/// runs on Rayon's threads, and a lock held across a parallel section can deadlock, when a thread that took part
/// of the packing runs, while it waits inside it, another job that asks for the same weights. Two threads asking at
/// once may both pack; one result is kept.
fn made_once<M>(cell: &OnceLock<M>, make: impl FnOnce() -> M) -> &M {
    if let Some(made) = cell.get() {
        return made;
    }
    let made = make();
    cell.get_or_init(|| made)
}

/// The next [`Packed::id`]: unique in the process.
static NEXT_LAYOUT_ID: AtomicU64 = AtomicU64::new(1);

impl<T> Default for Packed<T> {
    fn default() -> Self {
        Packed {
            id: NEXT_LAYOUT_ID.fetch_add(1, Ordering::Relaxed),
            rows: OnceLock::new(),
            input: OnceLock::new(),
            forward: OnceLock::new(),
            backward: OnceLock::new(),
            gate_forward: OnceLock::new(),
            gate_backward: OnceLock::new(),
        }
    }
}

impl<T> Clone for Packed<T> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> PartialEq for Packed<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What the weight gradients of one layer direction are gathered from, after the time loop, all row-major with
/// `rows = T·B` rows in time order.
pub(crate) struct WeightGradInputs<'a, T> {
    /// The layer input, `rows × I`.
    pub x: &'a [T],
    /// Gradient of `gx` (the input pre-activations), `rows × G·H`.
    pub dgx: &'a [T],
    /// Gradient of `gh` (the recurrent pre-activations), `rows × G·H`.
    pub dgh: &'a [T],
    /// `h_{t−1}` as each row read it, `rows × H_out`.
    pub h_prev: &'a [T],
}

impl<T: Real> CellWeights<T> {
    /// Zero weights for a cell with `gates` gates.
    pub fn zeros(gates: usize, input_size: usize, hidden_size: usize, recurrent_size: usize, bias: bool) -> Self {
        let rows = gates * hidden_size;
        CellWeights {
            input_size,
            hidden_size,
            recurrent_size,
            gates,
            weight_ih: Parameter::zeros(rows * input_size),
            weight_hh: Parameter::zeros(rows * recurrent_size),
            bias_ih: bias.then(|| Parameter::zeros(rows)),
            bias_hh: bias.then(|| Parameter::zeros(rows)),
            stored: None,
            packed: Packed::default(),
        }
    }

    /// How `weight_ih` and `weight_hh` are stored, when not in `T`.
    pub fn scheme(&self) -> Option<Scheme> {
        self.stored.as_ref().map(|s| s.ih.matrix().scheme())
    }

    /// `weight_ih` and `weight_hh` as stored, when stored in fewer bits.
    pub fn stored(&self) -> Option<(&StoredMatrix, &StoredMatrix)> {
        self.stored.as_ref().map(|s| (s.ih.matrix(), s.hh.matrix()))
    }

    /// Bytes of `weight_ih` and `weight_hh` as they are held.
    pub fn weight_bytes(&self) -> usize {
        match &self.stored {
            Some(s) => s.ih.matrix().bytes() + s.hh.matrix().bytes(),
            None => (self.weight_ih.value().len() + self.weight_hh.value().len()) * size_of::<T>(),
        }
    }

    /// Replaces `weight_ih` and `weight_hh` by matrices stored in fewer bits (read from a file, or made by
    /// [`CellWeights::quantize`]); the biases stay as they are.
    ///
    /// # Panics
    /// When a matrix's shape is not the weight's (a caller bug: `model_file` checks shapes with the tensor's name).
    pub(crate) fn set_stored(&mut self, ih: StoredMatrix, hh: StoredMatrix) {
        let rows = self.width();
        assert_eq!((ih.rows(), ih.cols()), (rows, self.input_size), "set_stored: weight_ih shape");
        assert_eq!((hh.rows(), hh.cols()), (rows, self.recurrent_size), "set_stored: weight_hh shape");
        self.weight_ih = Parameter::zeros(0);
        self.weight_hh = Parameter::zeros(0);
        self.stored = Some(StoredPair { ih: StoredWeight::new(ih), hh: StoredWeight::new(hh) });
        self.packed = Packed::default();
    }

    /// `weight_ih` and `weight_hh` (named with `suffix`) as matrices in `scheme`. Fails, naming the tensor, when a
    /// weight is not finite, or is out of f16's range for [`Scheme::F16`].
    pub(crate) fn quantize(&self, scheme: Scheme, suffix: &str) -> Result<(StoredMatrix, StoredMatrix)> {
        let rows = self.width();
        let store = |name: &str, w: &Parameter<T>, cols: usize| {
            let w: Vec<f32> = w.value().iter().map(|&v| Real::to_f32(v)).collect();
            store_weight(&format!("{name}{suffix}"), &w, (rows, cols), scheme, self.scheme())
        };
        Ok((
            store("weight_ih", &self.weight_ih, self.input_size)?,
            store("weight_hh", &self.weight_hh, self.recurrent_size)?,
        ))
    }

    /// The stored matrices laid out for their products, on first use.
    fn stored_panels(&self) -> Option<(&StoredPanels, &StoredPanels)> {
        self.stored.as_ref().map(|s| (s.ih.panels(), s.hh.panels()))
    }

    /// Size of the input `x_t`.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Hidden size `H` (rows per gate).
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Size of the state fed back through `weight_hh` (`H`, or the projection size).
    pub fn recurrent_size(&self) -> usize {
        self.recurrent_size
    }

    /// Whether the cell has biases.
    pub fn has_bias(&self) -> bool {
        self.bias_ih.is_some()
    }

    /// `weight_ih`, row-major `(G·H, I)`.
    pub fn weight_ih(&self) -> &[T] {
        self.weight_ih.value()
    }

    /// `weight_hh`, row-major `(G·H, H_out)`.
    pub fn weight_hh(&self) -> &[T] {
        self.weight_hh.value()
    }

    /// `bias_hh`, if the cell has biases.
    pub fn bias_hh(&self) -> Option<&[T]> {
        self.bias_hh.as_ref().map(Parameter::value)
    }

    /// The gradients of `weight_hh` and `bias_hh` (allocated on first use), for a cell that applies part of
    /// `weight_hh` to something else than `h_{t−1}` and accumulates that part's gradient itself. The values do
    /// not change, so the packed copies stay.
    pub(crate) fn recurrent_grads_mut(&mut self) -> (&mut [T], Option<&mut [T]>) {
        (self.weight_hh.grad_mut(), self.bias_hh.as_mut().map(Parameter::grad_mut))
    }

    /// `G·H`: rows of both weights.
    pub(crate) fn width(&self) -> usize {
        self.gates * self.hidden_size
    }

    /// `gx ← x Wᵢₕᵀ + b_ih` for `rows` rows of `x` (`rows × I`); with `on_threads`, a large product is cut in
    /// halves of rows on two threads. Without, it runs on this thread alone: the caller already keeps both cores
    /// busy (a group of rows beside another, a direction beside the other), and a nested split there made the
    /// `B32 H256` LSTM forward 8% slower (alternating runs, 22.3 against 20.5 ms).
    pub(crate) fn input_projection(&self, x: &[T], rows: usize, gx: &mut [T], on_threads: bool) {
        let bias = self.bias_ih.as_ref().map(Parameter::value);
        if let Some((panels, _)) = self.stored_panels() {
            let width = self.width();
            let (x, gx, bias) = as_f32(x, gx, bias);
            let half = rows / 2;
            if on_threads && half > 0 {
                let (x0, x1) = x.split_at(half * self.input_size);
                let (y0, y1) = gx.split_at_mut(half * width);
                rayon::join(
                    || panels.product(x0, half, bias, y0, width, width),
                    || panels.product(x1, rows - half, bias, y1, width, width),
                );
            } else {
                panels.product(x, rows, bias, gx, width, width);
            }
        } else if has_vector_tile_kernel::<T>() {
            // With `W_ihᵀ` packed once per pass, recur's kernel beats the gemm crate on these products (which
            // repacks the weights on every call), and it starts from the bias in registers rather than after a
            // pass that copies the bias into every row (the 2-layer `B32 H256` LSTM forward 5% faster; the
            // figures for each CPU are in docs/performance.md).
            let start = bias.map_or(Start::Zero, Start::Bias);
            let (packed, width) = (self.packed_input(), self.width());
            if on_threads {
                packed_product_on_threads(x, self.input_size, rows, packed, start, gx, width);
            } else {
                packed_product(x, self.input_size, rows, packed, start, gx, width);
            }
        } else {
            affine_rows(MatRef::new(x, rows, self.input_size), self.weight_ih.value(), self.width(), bias, gx);
        }
    }

    /// `W_ihᵀ` in panels for [`Self::input_projection`], packed on first use after the weights changed.
    fn packed_input(&self) -> &PackedMatrix<T> {
        made_once(&self.packed.input, || {
            PackedMatrix::from_transposed(self.weight_ih.value(), self.width(), self.input_size)
        })
    }

    /// A number that changes whenever the weights may have changed (any mutable access to the parameters), and
    /// differs between any two weights alive at once: whoever builds something from the weights (a stream's
    /// split of the units) can tell whether it is still current.
    pub fn layout_id(&self) -> u64 {
        self.packed.id
    }

    /// The weights of the hidden units `units` alone: rows `g·H + u` of every weight and bias for each gate `g`
    /// and unit `u ∈ units`, in gate order, so that a cell of `units.len()` units computes exactly those units
    /// of this one (the input and recurrent sizes are unchanged). Without gradients.
    ///
    /// # Panics
    /// When `units` is empty or reaches past the hidden size (a caller bug).
    pub fn unit_slice(&self, units: Range<usize>) -> Self {
        assert!(!units.is_empty() && units.end <= self.hidden_size, "unit_slice: units out of range");
        let hidden = self.hidden_size;
        let rows = |p: &Parameter<T>, width: usize| {
            let v = p.value();
            if v.is_empty() {
                // A weight stored in fewer bits (picked below).
                return Parameter::zeros(0);
            }
            let picked: Vec<T> = (0..self.gates)
                .flat_map(|g| units.clone().map(move |u| g * hidden + u))
                .flat_map(|row| v[row * width..(row + 1) * width].iter().copied())
                .collect();
            Parameter::from_values(picked)
        };
        let picked: Vec<usize> = (0..self.gates).flat_map(|g| units.clone().map(move |u| g * hidden + u)).collect();
        CellWeights {
            input_size: self.input_size,
            hidden_size: units.len(),
            recurrent_size: self.recurrent_size,
            gates: self.gates,
            weight_ih: rows(&self.weight_ih, self.input_size),
            weight_hh: rows(&self.weight_hh, self.recurrent_size),
            bias_ih: self.bias_ih.as_ref().map(|b| rows(b, 1)),
            bias_hh: self.bias_hh.as_ref().map(|b| rows(b, 1)),
            stored: self
                .stored
                .as_ref()
                .map(|s| StoredPair { ih: s.ih.pick_rows(&picked), hh: s.hh.pick_rows(&picked) }),
            packed: Packed::default(),
        }
    }

    /// `W_hhᵀ` in panels for [`Self::recurrent_projection`], packed on first use after the weights changed: a
    /// time loop asks for it once, before its first step.
    pub(crate) fn packed_forward(&self) -> ForwardPanels<'_, T> {
        if let Some((_, hh)) = self.stored_panels() {
            return ForwardPanels::Stored(hh);
        }
        ForwardPanels::Full(made_once(&self.packed.forward, || {
            PackedMatrix::from_transposed(self.weight_hh.value(), self.width(), self.recurrent_size)
        }))
    }

    /// `W_hh` in panels for [`Self::recurrent_backward`], packed on first use after the weights changed.
    ///
    /// # Panics
    /// For weights stored in fewer bits, which are for inference only (the layer refuses a backward pass first).
    pub(crate) fn packed_backward(&self) -> &PackedMatrix<T> {
        assert!(self.stored.is_none(), "a backward pass through weights stored as {:?}", self.scheme());
        made_once(&self.packed.backward, || {
            PackedMatrix::from_rows(self.weight_hh.value(), self.width(), self.recurrent_size)
        })
    }

    /// The block of gate `gate` of `weight_hh` (its rows `gate·H .. (gate+1)·H`), transposed and packed for
    /// [`packed_product`], on first use after the weights changed: for a cell that applies that block to
    /// something else than `h_{t−1}` in its gate pass (the GRU without `linear_before_reset` multiplies `r ⊙ h`
    /// by `W_hn`), so that a step's product does not repack it. A cell asks for one gate only.
    ///
    /// # Panics
    /// When asked for another gate than the first call (a caller bug).
    pub(crate) fn packed_gate_forward(&self, gate: usize) -> &PackedMatrix<T> {
        let (packed_gate, packed) = made_once(&self.packed.gate_forward, || {
            let (rows, cols) = (self.hidden_size, self.recurrent_size);
            (gate, PackedMatrix::from_transposed(self.gate_hh(gate), rows, cols))
        });
        assert_eq!(*packed_gate, gate, "packed_gate_forward: one gate per weights");
        packed
    }

    /// The same block as [`Self::packed_gate_forward`], untransposed: for its backward product `dg · W_hh,g`.
    ///
    /// # Panics
    /// When asked for another gate than the first call (a caller bug).
    pub(crate) fn packed_gate_backward(&self, gate: usize) -> &PackedMatrix<T> {
        let (packed_gate, packed) = made_once(&self.packed.gate_backward, || {
            let (rows, cols) = (self.hidden_size, self.recurrent_size);
            (gate, PackedMatrix::from_rows(self.gate_hh(gate), rows, cols))
        });
        assert_eq!(*packed_gate, gate, "packed_gate_backward: one gate per weights");
        packed
    }

    /// Rows `gate·H .. (gate+1)·H` of `weight_hh`.
    fn gate_hh(&self, gate: usize) -> &[T] {
        let block = self.hidden_size * self.recurrent_size;
        &self.weight_hh.value()[gate * block..(gate + 1) * block]
    }

    /// `gh ← h Wₕₕᵀ + b_hh` for `rows` rows of `h` (`rows × H_out`), from `w_hh_t` = [`Self::packed_forward`],
    /// for the first `gates` gates alone (the columns of the others are left as they were).
    pub(crate) fn recurrent_projection(
        &self,
        w_hh_t: ForwardPanels<'_, T>,
        h: &[T],
        rows: usize,
        gh: &mut [T],
        gates: usize,
    ) {
        let n = gates * self.hidden_size;
        let bias = self.bias_hh.as_ref().map(|b| &b.value()[..n]);
        let rs = self.recurrent_size;
        match w_hh_t {
            ForwardPanels::Full(w_hh_t) => {
                let start = bias.map_or(Start::Zero, Start::Bias);
                packed_product_leading(h, rs, rows, (w_hh_t, rs, n), start, gh, self.width());
            }
            ForwardPanels::Stored(panels) => {
                let (h, gh, bias) = as_f32(&h[..rows * rs], gh, bias);
                panels.product(h, rows, bias, gh, self.width(), n);
            }
        }
    }

    /// `dh ← dh + dgh · W_hh` for `rows` rows: the gradient a step passes to the previous hidden state, from
    /// `w_hh` = [`Self::packed_backward`], through the first `gates` gates alone (`dgh` of the others is zero).
    pub(crate) fn recurrent_backward(
        &self,
        w_hh: &PackedMatrix<T>,
        dgh: &[T],
        rows: usize,
        dh: &mut [T],
        gates: usize,
    ) {
        let (k, rs) = (gates * self.hidden_size, self.recurrent_size);
        packed_product_leading(dgh, self.width(), rows, (w_hh, k, rs), Start::Accumulate, dh, rs);
    }

    /// `dx ← dgx · W_ih` for `rows` rows: the gradient of the layer input.
    pub(crate) fn input_backward(&self, dgx: &[T], rows: usize, dx: &mut [T]) {
        let w = MatRef::new(self.weight_ih.value(), self.width(), self.input_size);
        gemm(MatRef::new(dgx, rows, self.width()), w, T::zero(), MatMut::new(dx, rows, self.input_size));
    }

    /// Accumulates the weight gradients of a whole direction in a few large products:
    /// `dW_ih += dGXᵀ X`, `dW_hh += dGHᵀ H_prev`, `db_ih += Σ dGX`, `db_hh += Σ dGH`.
    pub(crate) fn accumulate_grads(&mut self, inputs: WeightGradInputs<'_, T>) {
        let width = self.width();
        let rows = inputs.dgx.len() / width;
        let dgx = MatRef::new(inputs.dgx, rows, width);
        let grad_ih = MatMut::new(self.weight_ih.grad_mut(), width, self.input_size);
        gemm(dgx.t(), MatRef::new(inputs.x, rows, self.input_size), T::one(), grad_ih);
        let recurrent = self.recurrent_size;
        let dgh = MatRef::new(inputs.dgh, rows, width);
        let grad_hh = MatMut::new(self.weight_hh.grad_mut(), width, recurrent);
        gemm(dgh.t(), MatRef::new(inputs.h_prev, rows, recurrent), T::one(), grad_hh);
        if let (Some(bi), Some(bh)) = (&mut self.bias_ih, &mut self.bias_hh) {
            // Cells whose two pre-activations share a gradient (LSTM, RNN) pass the same slice twice: one sum.
            let sums_x = column_sums(inputs.dgx, width);
            let sums_h = (!std::ptr::eq(inputs.dgh, inputs.dgx)).then(|| column_sums(inputs.dgh, width));
            add_to(bi.grad_mut(), &sums_x);
            add_to(bh.grad_mut(), sums_h.as_deref().unwrap_or(&sums_x));
        }
    }

    /// The parameters, named as PyTorch names them, each followed by `suffix`.
    pub(crate) fn params(&self, suffix: &str) -> Vec<ParamRef<'_, T>> {
        self.named(suffix).into_iter().map(|(name, shape, p)| ParamRef { name, shape, data: p.value() }).collect()
    }

    /// The parameters, mutably.
    pub(crate) fn params_mut(&mut self, suffix: &str) -> Vec<ParamMut<'_, T>> {
        self.named_mut(suffix)
            .into_iter()
            .map(|(name, shape, p)| ParamMut { name, shape, data: p.value_mut() })
            .collect()
    }

    /// The parameters with their gradients (allocated on first use).
    pub(crate) fn params_with_grads(&mut self, suffix: &str) -> Vec<Param<'_, T>> {
        self.named_mut(suffix)
            .into_iter()
            .map(|(name, shape, p)| {
                let (value, grad) = p.value_and_grad_mut();
                Param { name, shape, value, grad }
            })
            .collect()
    }

    fn named(&self, suffix: &str) -> Vec<(String, Vec<usize>, &Parameter<T>)> {
        let rows = self.width();
        let mut out = vec![
            (format!("weight_ih{suffix}"), vec![rows, self.input_size], &self.weight_ih),
            (format!("weight_hh{suffix}"), vec![rows, self.recurrent_size], &self.weight_hh),
        ];
        if self.stored.is_some() {
            // Not parameters in `T`: see `CellWeights::stored`.
            out.clear();
        }
        if let (Some(bi), Some(bh)) = (&self.bias_ih, &self.bias_hh) {
            out.push((format!("bias_ih{suffix}"), vec![rows], bi));
            out.push((format!("bias_hh{suffix}"), vec![rows], bh));
        }
        out
    }

    fn named_mut(&mut self, suffix: &str) -> Vec<(String, Vec<usize>, &mut Parameter<T>)> {
        // Whoever asks for the parameters mutably may change them: the packed copies are stale from now on.
        self.packed = Packed::default();
        let rows = self.width();
        let mut out = vec![
            (format!("weight_ih{suffix}"), vec![rows, self.input_size], &mut self.weight_ih),
            (format!("weight_hh{suffix}"), vec![rows, self.recurrent_size], &mut self.weight_hh),
        ];
        if self.stored.is_some() {
            out.clear();
        }
        if let (Some(bi), Some(bh)) = (&mut self.bias_ih, &mut self.bias_hh) {
            out.push((format!("bias_ih{suffix}"), vec![rows], bi));
            out.push((format!("bias_hh{suffix}"), vec![rows], bh));
        }
        out
    }

    /// The same weights in another precision, without gradients. Weights stored in fewer bits become the values
    /// they stand for.
    pub fn cast<U: Real>(&self) -> CellWeights<U> {
        let (weight_ih, weight_hh) = match &self.stored {
            Some(s) => (
                Parameter::<f32>::from_values(s.ih.matrix().dequantize()).cast(),
                Parameter::<f32>::from_values(s.hh.matrix().dequantize()).cast(),
            ),
            None => (self.weight_ih.cast(), self.weight_hh.cast()),
        };
        CellWeights {
            input_size: self.input_size,
            hidden_size: self.hidden_size,
            recurrent_size: self.recurrent_size,
            gates: self.gates,
            weight_ih,
            weight_hh,
            bias_ih: self.bias_ih.as_ref().map(Parameter::cast),
            bias_hh: self.bias_hh.as_ref().map(Parameter::cast),
            stored: None,
            packed: Packed::default(),
        }
    }
}

/// `x`, `y` and `bias` as `f32`, for the products of stored weights.
///
/// # Panics
/// When `T` is not `f32`: stored weights are `CellWeights<f32>` only (`cast` to `f64` dequantizes them).
fn as_f32<'a, T: Real>(
    x: &'a [T],
    y: &'a mut [T],
    bias: Option<&'a [T]>,
) -> (&'a [f32], &'a mut [f32], Option<&'a [f32]>) {
    let f32_only = "weights stored in fewer bits compute in f32";
    (T::as_f32(x).expect(f32_only), T::as_f32_mut(y).expect(f32_only), bias.map(|b| T::as_f32(b).expect(f32_only)))
}

impl CellWeights<f32> {
    fn row_packed(&self) -> &(RowPanels, RowPanels) {
        made_once(&self.packed.rows, || {
            let width = self.width();
            (
                RowPanels::from_transposed(self.weight_ih.value(), width, self.input_size),
                RowPanels::from_transposed(self.weight_hh.value(), width, self.recurrent_size),
            )
        })
    }

    /// `gx ← W_ih x + b_ih` for each of the `rows` rows of `x` (`rows × I`) into `gx` (`rows × G·H`), through the
    /// one-row kernel's blocks of rows ([`crate::kernels::rowvec::rows_times`]): a row's result is what it is
    /// alone.
    pub(crate) fn input_projection_rows(&self, x: &[f32], rows: usize, gx: &mut [f32]) {
        let bias = self.bias_ih.as_ref().map(Parameter::value);
        if let Some((panels, _)) = self.stored_panels() {
            return panels.product(x, rows, bias, gx, self.width(), self.width());
        }
        rows_times(x, rows, &self.row_packed().0, bias, gx, self.width());
    }

    /// `gh ← W_hh h + b_hh` for each of the `rows` rows of `h` (`rows × H_out`), as
    /// [`Self::input_projection_rows`].
    pub(crate) fn recurrent_projection_rows(&self, h: &[f32], rows: usize, gh: &mut [f32]) {
        let bias = self.bias_hh.as_ref().map(Parameter::value);
        if let Some((_, panels)) = self.stored_panels() {
            return panels.product(h, rows, bias, gh, self.width(), self.width());
        }
        rows_times(h, rows, &self.row_packed().1, bias, gh, self.width());
    }

    /// PyTorch's default initialisation (uniform in `±1/√H`).
    pub(crate) fn init(&mut self, rng: &mut impl Rng) {
        let hidden = self.hidden_size;
        init_uniform(self.params_mut(""), hidden, rng);
    }
}

/// The transpose of a row-major `rows × cols` matrix.
pub(crate) fn transpose<T: Copy>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols).flat_map(|c| (0..rows).map(move |r| m[r * cols + c])).collect()
}

/// `Σ_rows m[row, j]` for a row-major `m` with `width` columns, each column summed from the first row down. A
/// large `m` is summed on two threads, each taking half of the columns (the same sums, bit for bit): after the time
/// loop of a training pass it would otherwise be the only work running (`T·B` rows of `G·H` values).
pub(crate) fn column_sums<T: Real>(m: &[T], width: usize) -> Vec<T> {
    let mut sums = vec![T::zero(); width];
    if m.len() >= PARALLEL_SUM_VALUES && width >= 2 && rayon::current_num_threads() > 1 {
        let (left, right) = sums.split_at_mut(width / 2);
        rayon::join(|| sum_columns(m, width, 0, left), || sum_columns(m, width, width / 2, right));
    } else {
        sum_columns(m, width, 0, &mut sums);
    }
    sums
}

/// Values of a matrix from which [`column_sums`] splits its columns across two threads.
const PARALLEL_SUM_VALUES: usize = 1 << 16;

/// `sums[j] += Σ_rows m[row, first + j]`.
fn sum_columns<T: Real>(m: &[T], width: usize, first: usize, sums: &mut [T]) {
    for row in m.chunks_exact(width) {
        for (s, &v) in sums.iter_mut().zip(&row[first..]) {
            *s += v;
        }
    }
}

/// `out[j] += add[j]`.
fn add_to<T: Real>(out: &mut [T], add: &[T]) {
    out.iter_mut().zip(add).for_each(|(o, &a)| *o += a);
}

/// `out ← x · Wᵀ + b` for the rows of `x`, with `W` row-major `(width, x.cols)`: the product every cell uses for
/// both of its pre-activations.
pub(crate) fn affine_rows<T: Real>(x: MatRef<'_, T>, weight: &[T], width: usize, bias: Option<&[T]>, out: &mut [T]) {
    broadcast_rows(out, bias, width);
    gemm(x, MatRef::new(weight, width, x.cols()).t(), T::one(), MatMut::new(out, x.rows(), width));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_projection_is_x_times_w_transposed_plus_bias() {
        // Input sizes within one block of K and past it, rows enough to split.
        for (input, rows) in [(5, 3), (256, 70), (300, 70)] {
            let (hidden, gates) = (20, 4);
            let mut w = CellWeights::<f32>::zeros(gates, input, hidden, hidden, true);
            for (i, p) in w.params_mut("").into_iter().enumerate() {
                p.data.iter_mut().enumerate().for_each(|(j, v)| *v = ((i * 31 + j * 7) % 19) as f32 / 19.0 - 0.5);
            }
            let x: Vec<f32> = (0..rows * input).map(|i| ((i * 13) % 23) as f32 / 23.0 - 0.5).collect();
            let mut gx = vec![f32::NAN; rows * gates * hidden];
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap()
                .install(|| w.input_projection(&x, rows, &mut gx, true));
            let (wi, bi) = (w.weight_ih(), w.bias_ih.as_ref().unwrap().value());
            for r in 0..rows {
                for o in 0..gates * hidden {
                    let want: f64 = bi[o] as f64
                        + (0..input).map(|k| x[r * input + k] as f64 * wi[o * input + k] as f64).sum::<f64>();
                    let got = gx[r * gates * hidden + o] as f64;
                    assert!((got - want).abs() < 1e-4, "input {input}, row {r}, output {o}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn column_sums_on_two_threads_equal_one_thread() {
        let (rows, width) = (300, 257);
        let m: Vec<f32> = (0..rows * width).map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5).collect();
        assert!(m.len() >= PARALLEL_SUM_VALUES);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| column_sums(&m, width));
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| column_sums(&m, width));
        assert_eq!(one, two);
        for (j, &s) in two.iter().enumerate() {
            let want: f64 = (0..rows).map(|r| m[r * width + j] as f64).sum();
            assert!((s as f64 - want).abs() < 1e-3, "column {j}: {s} vs {want}");
        }
    }
}
