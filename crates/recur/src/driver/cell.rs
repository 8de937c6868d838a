//! The [`Cell`] trait the driver runs, and the buffers of one gate pass it hands a cell: a cell knows the gate
//! math of one step, forward and backward; the driver owns everything around it (products, time, layers,
//! directions, threads, buffers).

use super::weights::CellWeights;
use crate::kernels::Real;
use crate::params::{Param, ParamMut, ParamRef};

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

/// What [`Cell::accumulate_extra_grads`] reads: every row of a direction's pass (`T·B` rows in time order, zeros
/// at padded positions), all row-major.
#[derive(Debug)]
pub struct ExtraGradInputs<'a, T> {
    /// The total `∂L/∂h_t` of every row, `rows × output_size`.
    pub dh: &'a [T],
    /// What the forward cached for every row, `rows × cache_width`.
    pub cache: &'a [T],
    /// `∂L/∂gx` of every row, as the backward gate passes wrote it, `rows × gates·hidden`.
    pub dgx: &'a [T],
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

    /// Gate blocks of `gh`, from the first, that [`Cell::forward_gates`] reads: the per-step recurrent product
    /// covers these alone, and the gate pass must leave the gradient of the others zero. Fewer than
    /// [`Cell::GATES`] where a cell applies a gate's block of `weight_hh` to something else than `h_{t−1}` itself
    /// (the GRU's `W_hn (r ⊙ h)` without `linear_before_reset`), in the last gates.
    fn recurrent_gates(&self) -> usize {
        Self::GATES
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

    /// The cell of the hidden units `units` alone (weights from `CellWeights::unit_slice`): fed the full
    /// input and the full previous `h`, its recurrent product gives those units' pre-activations, and its gate
    /// pass, fed those units' slices of `h_{t−1}` and `c_{t−1}`, their next state. So two cells of complementary
    /// units advance one step on two cores. `None` where the units are not independent (a projected LSTM, whose
    /// `h` mixes every unit).
    fn unit_slice(&self, units: std::ops::Range<usize>) -> Option<Self>;

    /// One fused pass over the gates: from the two pre-activations and the previous state to the next state.
    fn forward_gates(&self, pass: GatePass<'_, Self::Real>);

    /// The backward of [`Cell::forward_gates`].
    fn backward_gates(&self, pass: GateBackward<'_, Self::Real>);

    /// Accumulates, after the backward time loop, the gradients the driver's products do not cover: of
    /// parameters beyond `CellWeights` (the LSTM's projection and peepholes) and of recurrent weights a cell
    /// applies to something else than `h_{t−1}` (the GRU's `W_hn (r ⊙ h)` without `linear_before_reset`).
    fn accumulate_extra_grads(&mut self, inputs: ExtraGradInputs<'_, Self::Real>) {
        let _ = inputs;
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
