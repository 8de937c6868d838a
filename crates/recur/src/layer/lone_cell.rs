//! The tensor API of a lone cell, as PyTorch's `nn.RNNCell`, `nn.LSTMCell` and `nn.GRUCell`: one step on
//! tensors, forward and backward, run by the driver for one time step. It sits at the layer level because it
//! runs the driver; the cells themselves hold only their gate math.

use crate::cells::{GruCell, LstmCell, RnnCell};
use crate::driver::{
    Batching, Cell, Direction, DirectionTrace, Final, FinalState, Initial, InputGrad, Keep, Rows, Walk,
    backward_direction, run_direction,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

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
fn step_tensors<C: Cell<Real = f32>>(
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
    let walk = Walk { x: input.data(), batching: &batching, direction: Direction::Forward, rows: Rows::InGroups };
    let trace = run_direction(cell, walk, initial, Keep::Trace, FinalState { h: &mut h, c: &mut c });
    let cache = CellCache { trace, batching, x: input.data().to_vec(), batch, unbatched, sizes: sizes(cell) };
    let h = Tensor::from_parts(state_shape(out_size), h);
    let c = C::HAS_CELL_STATE.then(|| Tensor::from_parts(state_shape(hidden), c));
    Ok((h, c, cache))
}

/// The backward of [`step_tensors`]: accumulates the cell's parameter gradients and returns those of its inputs.
fn step_backward_tensors<C: Cell<Real = f32>>(
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
    let walk = Walk { x: &cache.x, batching: &cache.batching, direction: Direction::Forward, rows: Rows::InGroups };
    let g = backward_direction(cell, walk, &cache.trace, dy, final_grad, InputGrad::Wanted);
    Ok(CellGrads {
        input: Tensor::from_parts(shape(in_size), g.x),
        h0: Tensor::from_parts(shape(out_size), g.h0),
        c0: C::HAS_CELL_STATE.then(|| Tensor::from_parts(shape(hidden), g.c0)),
    })
}

/// The tensor API of a cell whose state is `h` alone (the RNN's and the GRU's).
macro_rules! h_only_cell_api {
    ($cell:ty) => {
        impl $cell {
            /// One step: input `(B, I)` or `(I)`, `h` of the same batch shape (zeros when `None`); returns `h'`.
            pub fn forward(&self, input: &Tensor, h: Option<&Tensor>) -> Result<Tensor> {
                Ok(step_tensors(self, input, h, None)?.0)
            }

            /// [`Self::forward`] that also keeps what [`Self::backward`] needs.
            pub fn forward_train(&self, input: &Tensor, h: Option<&Tensor>) -> Result<(Tensor, CellCache)> {
                let (h, _, cache) = step_tensors(self, input, h, None)?;
                Ok((h, cache))
            }

            /// Backward of one step from `∂L/∂h'`: accumulates the parameter gradients and returns those of the
            /// input and of `h`.
            pub fn backward(&mut self, cache: &CellCache, grad_h: &Tensor) -> Result<CellGrads> {
                step_backward_tensors(self, cache, grad_h, None)
            }
        }
    };
}

h_only_cell_api!(RnnCell);
h_only_cell_api!(GruCell);

impl LstmCell {
    /// One step: input `(B, I)` or `(I)`, state `(h, c)` of the same batch shape (zeros when `None`); returns
    /// `(h', c')`.
    pub fn forward(&self, input: &Tensor, state: Option<(&Tensor, &Tensor)>) -> Result<(Tensor, Tensor)> {
        Ok(self.forward_train(input, state)?.0)
    }

    /// [`Self::forward`] that also keeps what [`Self::backward`] needs.
    pub fn forward_train(
        &self,
        input: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<((Tensor, Tensor), CellCache)> {
        let (h, c, cache) = step_tensors(self, input, state.map(|s| s.0), state.map(|s| s.1))?;
        Ok(((h, c.expect("an LSTM cell has a cell state")), cache))
    }

    /// Backward of one step from `∂L/∂h'` and `∂L/∂c'` (zero when `None`): accumulates the parameter gradients
    /// and returns those of the input, `h` and `c`.
    pub fn backward(&mut self, cache: &CellCache, grad_h: &Tensor, grad_c: Option<&Tensor>) -> Result<CellGrads> {
        step_backward_tensors(self, cache, grad_h, grad_c)
    }
}
