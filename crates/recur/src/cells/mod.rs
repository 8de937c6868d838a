//! The three recurrent cells. A cell knows the gate math of one time step, forward and backward, and nothing
//! else: the [`driver`](crate::driver) runs any cell over time, layers and directions.
//!
//! Each cell is also usable on its own, as PyTorch's `nn.RNNCell`, `nn.LSTMCell` and `nn.GRUCell`, with the same
//! parameter names (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).
//!
//! Every cell shares one step structure:
//!
//! ```text
//! gx = W_ih x_t + b_ih          (for all t at once: one product per layer and direction)
//! gh = W_hh h_{t-1} + b_hh      (one product per step)
//! h_t, c_t = gates(gx, gh, h_{t-1}, c_{t-1})   (one fused pass, the cell's own math)
//! ```
//!
//! and its backward mirrors it: the cell turns `∂L/∂h_t` and `∂L/∂c_t` into the gradients of `gx`, `gh` and
//! `c_{t−1}`; the driver does the products.

mod blocks;
mod gru;
mod lstm;
mod rnn;
mod weights;

pub use gru::{GruCell, GruCellConfig};
pub use lstm::{LstmCell, LstmCellConfig};
pub use rnn::{Nonlinearity, RnnCell, RnnCellConfig};
pub use weights::CellWeights;
pub(crate) use weights::{WeightGradInputs, transpose};

use crate::driver::{Batching, Direction, DirectionTrace, Final, Initial, backward_direction, run_direction};
use crate::error::{Error, Result};
use crate::kernels::gemm::{MatMut, MatRef, broadcast_rows, gemm};
use crate::params::{Param, ParamMut, ParamRef};
use crate::real::Real;
use crate::tensor::Tensor;

/// The buffers of one fused forward gate pass over a batch of `batch` rows, all row-major.
#[derive(Debug)]
pub struct GatePass<'a, T> {
    /// Number of batch rows.
    pub batch: usize,
    /// `W_ih x_t + b_ih`, `batch × gates·hidden`.
    pub gx: &'a [T],
    /// `W_hh h_{t-1} + b_hh`, `batch × gates·hidden`.
    pub gh: &'a [T],
    /// `h_{t-1}`, `batch × output_size`.
    pub h_prev: &'a [T],
    /// `c_{t-1}`, `batch × hidden` (empty for cells without a cell state).
    pub c_prev: &'a [T],
    /// Receives `h_t`, `batch × output_size`.
    pub h_next: &'a mut [T],
    /// Receives `c_t`, `batch × hidden` (empty for cells without a cell state).
    pub c_next: &'a mut [T],
    /// Receives what the backward pass will need of this step, `batch × cache_width` (empty in inference for
    /// cells whose [`Cell::inference_cache_width`] is 0).
    pub cache: &'a mut [T],
}

/// The buffers of one backward gate pass: from the gradients of a step's outputs to those of its
/// pre-activations and previous cell state. All row-major over `batch` rows.
#[derive(Debug)]
pub struct GateBackward<'a, T> {
    /// Number of batch rows.
    pub batch: usize,
    /// What the forward pass cached for this step.
    pub cache: &'a [T],
    /// `h_{t−1}`.
    pub h_prev: &'a [T],
    /// `h_t`.
    pub h_next: &'a [T],
    /// `c_{t−1}` (empty without a cell state).
    pub c_prev: &'a [T],
    /// `c_t` (empty without a cell state).
    pub c_next: &'a [T],
    /// `∂L/∂h_t`, everything that flows into `h_t`.
    pub dh: &'a [T],
    /// `∂L/∂c_t` from the next step (empty without a cell state).
    pub dc: &'a [T],
    /// Receives `∂L/∂gx`, `batch × gates·hidden`.
    pub dgx: &'a mut [T],
    /// Receives `∂L/∂gh` when [`Cell::SEPARATE_RECURRENT_GRAD`] (empty otherwise: it equals `dgx`).
    pub dgh: &'a mut [T],
    /// Receives the part of `∂L/∂h_{t−1}` that bypasses `W_hh` (the GRU's `z ⊙ h` path; zeros for the others).
    pub dh_prev: &'a mut [T],
    /// Receives `∂L/∂c_{t−1}` (empty without a cell state).
    pub dc_prev: &'a mut [T],
    /// Scratch of `batch × scratch_width` values.
    pub scratch: &'a mut [T],
    /// What [`Cell::prepare_backward`] wrote, once per backward pass.
    pub prepared: &'a [T],
}

/// The gate math of one recurrent time step, forward and backward.
///
/// Options of a cell (a nonlinearity, a projection) are fields of the implementing type, so that the driver
/// never needs to know about them.
pub trait Cell: Clone + Send + Sync {
    /// The scalar type, `f32` or `f64`.
    type Real: Real;
    /// Number of gate blocks stacked in the rows of `weight_ih` and `weight_hh`: 1 (RNN), 4 (LSTM), 3 (GRU).
    const GATES: usize;
    /// Whether the state carries a cell state `c` besides `h`.
    const HAS_CELL_STATE: bool;
    /// Whether `∂L/∂gh` differs from `∂L/∂gx` (true for the GRU, whose reset gate multiplies `gh`).
    const SEPARATE_RECURRENT_GRAD: bool = false;

    /// The input and recurrent weights.
    fn weights(&self) -> &CellWeights<Self::Real>;
    /// The input and recurrent weights, mutably.
    fn weights_mut(&mut self) -> &mut CellWeights<Self::Real>;

    /// Size of `h`, the output fed back into the next step (the projection size for a projected LSTM).
    fn output_size(&self) -> usize {
        self.weights().hidden_size()
    }

    /// Values per batch row that [`Cell::forward_gates`] writes into `cache`.
    fn cache_width(&self) -> usize;

    /// Values per batch row that [`Cell::forward_gates`] needs in `cache` when no backward follows: 0 where the
    /// gate pass can go without (it then gets an empty `cache` and keeps nothing, which saves writing a row's
    /// gates at every step of an inference pass).
    fn inference_cache_width(&self) -> usize {
        self.cache_width()
    }

    /// Values per batch row of scratch that [`Cell::backward_gates`] needs.
    fn scratch_width(&self) -> usize {
        0
    }

    /// Values that [`Cell::prepare_backward`] writes once before a backward time loop.
    fn prepared_len(&self) -> usize {
        0
    }

    /// Lays out, once per backward pass, weights the backward gate pass reads in another order (the LSTM
    /// projection, transposed), so that the time loop allocates nothing.
    fn prepare_backward(&self, prepared: &mut [Self::Real]) {
        let _ = prepared;
    }

    /// The cell of the hidden units `units` alone (weights from [`CellWeights::unit_slice`]): fed the full
    /// input and the full previous `h`, its recurrent product gives those units' pre-activations, and its gate
    /// pass, fed those units' slices of `h_{t−1}` and `c_{t−1}`, their next state. So two cells of complementary
    /// units advance one step on two cores. `None` where the units are not independent (a projected LSTM, whose
    /// `h` mixes every unit).
    fn unit_slice(&self, units: std::ops::Range<usize>) -> Option<Self>;

    /// One fused pass over the gates: from the two pre-activations and the previous state to the next state.
    fn forward_gates(&self, pass: GatePass<'_, Self::Real>);

    /// The backward of [`Cell::forward_gates`].
    fn backward_gates(&self, pass: GateBackward<'_, Self::Real>);

    /// Accumulates the gradients of parameters beyond [`CellWeights`] (the LSTM projection) from the total
    /// `∂L/∂h_t` of every row, `dh` (`rows × output_size`), and the cache of every row.
    fn accumulate_extra_grads(&mut self, dh: &[Self::Real], cache: &[Self::Real]) {
        let _ = (dh, cache);
    }

    /// The parameters under their PyTorch names, each followed by `suffix` (`""` for a lone cell, `"_l0"` or
    /// `"_l1_reverse"` inside a layer).
    fn params(&self, suffix: &str) -> Vec<ParamRef<'_, Self::Real>> {
        self.weights().params(suffix)
    }

    /// The parameters under their PyTorch names, mutably.
    fn params_mut(&mut self, suffix: &str) -> Vec<ParamMut<'_, Self::Real>> {
        self.weights_mut().params_mut(suffix)
    }

    /// The parameters with their gradients (allocated on first use).
    fn params_with_grads(&mut self, suffix: &str) -> Vec<Param<'_, Self::Real>> {
        self.weights_mut().params_with_grads(suffix)
    }
}

/// What a lone cell's training step ([`LstmCell::forward_train`] and its siblings) keeps for its backward.
#[derive(Clone, Debug)]
pub struct CellCache {
    trace: DirectionTrace<f32>,
    batching: Batching,
    x: Vec<f32>,
    batch: usize,
    unbatched: bool,
    /// `(input, hidden, output, cache width)` of the cell that made it, to refuse a cache from another cell.
    sizes: (usize, usize, usize, usize),
}

/// Gradients of a lone cell's inputs, shaped as the tensors they belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct CellGrads {
    /// `∂L/∂input`.
    pub input: Tensor,
    /// `∂L/∂h` (the gradient at the zero state when no state was given).
    pub h0: Tensor,
    /// LSTM only: `∂L/∂c`.
    pub c0: Option<Tensor>,
}

fn sizes<C: Cell>(cell: &C) -> (usize, usize, usize, usize) {
    let w = cell.weights();
    (w.input_size(), w.hidden_size(), cell.output_size(), cell.cache_width())
}

/// Runs one step of a lone cell on tensors, as PyTorch's `nn.*Cell.forward` does: input `(B, I)` or unbatched
/// `(I)`, states `(B, H)` or `(H)`, zeros when absent. Returns `h_1`, for cells with a cell state `c_1`, and
/// what the backward needs. The step is the driver's, run for one time step.
pub(crate) fn step_tensors<C: Cell<Real = f32>>(
    cell: &C,
    input: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
) -> Result<(Tensor, Option<Tensor>, CellCache)> {
    let (in_size, hidden, out_size, _) = sizes(cell);
    let (batch, unbatched) = match input.shape() {
        [i] if *i == in_size => (1, true),
        [b, i] if *i == in_size => (*b, false),
        found => {
            return Err(Error::shape("input", format!("[B, {in_size}] or [{in_size}]"), found));
        }
    };
    let state_shape = |size: usize| {
        if unbatched { vec![size] } else { vec![batch, size] }
    };
    let check = |name: &str, t: Option<&Tensor>, size: usize| -> Result<Vec<f32>> {
        let want = state_shape(size);
        match t {
            None => Ok(vec![0.0; batch * size]),
            Some(t) if t.shape() == want.as_slice() => Ok(t.data().to_vec()),
            Some(t) => Err(Error::shape(name, format!("{want:?}"), t.shape())),
        }
    };
    let h_prev = check("h_0", h0, out_size)?;
    let c_prev = if C::HAS_CELL_STATE { check("c_0", c0, hidden)? } else { Vec::new() };
    let mut h = vec![0.0; batch * out_size];
    let mut c = vec![0.0; c_prev.len()];
    let initial = Initial { h: &h_prev, c: &c_prev };
    let batching = Batching::new(1, batch, None);
    let trace = run_direction(cell, input.data(), &batching, Direction::Forward, initial, true, &mut h, &mut c, true);
    let cache = CellCache { trace, batching, x: input.data().to_vec(), batch, unbatched, sizes: sizes(cell) };
    let h = Tensor::from_parts(state_shape(out_size), h);
    let c = C::HAS_CELL_STATE.then(|| Tensor::from_parts(state_shape(hidden), c));
    Ok((h, c, cache))
}

/// The backward of [`step_tensors`]: accumulates the cell's parameter gradients and returns those of its inputs.
pub(crate) fn step_backward_tensors<C: Cell<Real = f32>>(
    cell: &mut C,
    cache: &CellCache,
    grad_h: &Tensor,
    grad_c: Option<&Tensor>,
) -> Result<CellGrads> {
    if cache.sizes != sizes(cell) {
        return Err(Error::config("backward: the cache comes from a cell of another configuration"));
    }
    let (in_size, hidden, out_size, _) = cache.sizes;
    let shape = |size: usize| {
        if cache.unbatched { vec![size] } else { vec![cache.batch, size] }
    };
    if grad_h.shape() != shape(out_size).as_slice() {
        return Err(Error::shape("grad_h", format!("{:?}", shape(out_size)), grad_h.shape()));
    }
    match (C::HAS_CELL_STATE, grad_c) {
        (true, Some(g)) if g.shape() != shape(hidden).as_slice() => {
            return Err(Error::shape("grad_c", format!("{:?}", shape(hidden)), g.shape()));
        }
        (false, Some(_)) => {
            return Err(Error::config("grad_c was given, but the cell has no cell state"));
        }
        _ => {}
    }
    let final_grad = Final { h: None, c: grad_c.map(Tensor::data) };
    let dy = grad_h.data().to_vec();
    let g = backward_direction(
        cell,
        &cache.trace,
        &cache.x,
        &cache.batching,
        Direction::Forward,
        dy,
        final_grad,
        true,
        true,
    );
    Ok(CellGrads {
        input: Tensor::from_parts(shape(in_size), g.x),
        h0: Tensor::from_parts(shape(out_size), g.h0),
        c0: C::HAS_CELL_STATE.then(|| Tensor::from_parts(shape(hidden), g.c0)),
    })
}

/// `out ← x · Wᵀ + b` for the rows of `x`, with `W` row-major `(width, x.cols)`: the product every cell uses for
/// both of its pre-activations.
pub(crate) fn affine_rows<T: Real>(x: MatRef<'_, T>, weight: &[T], width: usize, bias: Option<&[T]>, out: &mut [T]) {
    broadcast_rows(out, bias, width);
    gemm(x, MatRef::new(weight, width, x.cols()).t(), T::one(), MatMut::new(out, x.rows(), width));
}

/// Rejects zero sizes, which PyTorch also rejects and which would leave a cell without weights.
pub(crate) fn check_sizes(input_size: usize, hidden_size: usize) -> Result<()> {
    if input_size == 0 || hidden_size == 0 {
        return Err(Error::config(format!(
            "input_size and hidden_size must be positive, found input_size={input_size}, hidden_size={hidden_size}"
        )));
    }
    Ok(())
}
