//! The one recurrent driver: runs any [`Cell`] over time, layers and directions, forward and backward.
//!
//! All sequences here are time-major, `(T, B, features)`, row-major. For each layer and direction the driver
//! makes one large product for the input projection of every time step, then walks time with one recurrent
//! product and one fused gate pass per step. Backward walks time the other way with one product by `W_hh` per
//! step, then gathers the weight gradients in a few large products. Every buffer is allocated before its time
//! loop.

mod batching;
mod cell;
mod direction;
mod row_groups;
mod split;
mod weights;

pub use cell::{Cell, ExtraGradInputs, GateBackward, GatePass};
pub use row_groups::{ParallelRuns, parallel_runs};
pub(crate) use split::on_pool;
pub use weights::CellWeights;
pub(crate) use weights::{ForwardPanels, WeightGradInputs, transpose};

use std::borrow::Cow;

use num_traits::Zero;

pub(crate) use batching::Batching;
pub use direction::InputGrad;
pub(crate) use direction::{
    DirectionGrads, Final, FinalState, Initial, Keep, Rows, Walk, backward_direction, run_direction,
};

use crate::kernels::Real;
use crate::scratch;

/// A time-major input `(steps, batch, input_size)`, and the number of valid steps of each sequence (each in
/// `1..=steps`, in any order; `None`: every sequence runs all `steps`), as [`Stack::forward_padded`] reads them.
#[derive(Clone, Copy, Debug)]
pub struct Sequences<'a, T> {
    /// The values, row-major.
    pub data: &'a [T],
    /// `T`.
    pub steps: usize,
    /// `B`.
    pub batch: usize,
    /// Each sequence's length, or `None` when all are `steps` long.
    pub lengths: Option<&'a [usize]>,
}

/// The initial states of a stack, `h_0` `(L·D, B, H_out)` and `c_0` `(L·D, B, H)`, zeros where absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct InitialStates<'a, T> {
    /// `h_0`.
    pub h: Option<&'a [T]>,
    /// `c_0` (cells with a cell state).
    pub c: Option<&'a [T]>,
}

/// What a forward pass is for: inference keeps nothing for a backward; training keeps a trace, and multiplies
/// `input_masks[l]`, when present, into the input of layer `l > 0` (dropout between layers).
enum Pass<T> {
    Inference,
    Training { input_masks: Vec<Option<Vec<T>>> },
}

/// Which way a direction walks time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `t = 0, 1, …, T−1`.
    Forward,
    /// `t = T−1, …, 1, 0` (the second direction of a bidirectional layer).
    Reverse,
}

impl Direction {
    /// The time index of the `s`-th step taken in this direction.
    pub(crate) fn time(self, s: usize, steps: usize) -> usize {
        match self {
            Direction::Forward => s,
            Direction::Reverse => steps - 1 - s,
        }
    }

    /// The time indices of the steps `s` in `range` taken in this direction, as an ascending range.
    pub(crate) fn times(self, range: std::ops::Range<usize>, steps: usize) -> std::ops::Range<usize> {
        match self {
            Direction::Forward => range,
            Direction::Reverse => steps - range.end..steps - range.start,
        }
    }

    /// The direction of index `d` in PyTorch's ordering (forward first).
    pub fn of_index(d: usize) -> Self {
        if d == 0 { Direction::Forward } else { Direction::Reverse }
    }
}

/// A stack of cells: `layers × directions` of them, layer-major, as PyTorch orders its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Stack<C> {
    cells: Vec<C>,
    directions: usize,
}

/// What a stack produces over a whole sequence, all row-major.
#[derive(Debug)]
pub struct StackOutput<T> {
    /// `(T, B, D·H_out)`: the last layer's `h_t` of every direction, forward first.
    pub output: Vec<T>,
    /// `(L·D, B, H_out)`: every layer's and direction's final `h`.
    pub h_n: Vec<T>,
    /// `(L·D, B, H)`: every final `c` (empty for cells without a cell state).
    pub c_n: Vec<T>,
}

/// Everything a training forward pass keeps for the backward pass.
#[derive(Clone, Debug)]
pub struct StackTrace<T: Real> {
    batching: Batching,
    layers: Vec<LayerTrace<T>>,
}

#[derive(Clone, Debug)]
struct LayerTrace<T: Real> {
    /// The layer's input `(T, B, in)`, after dropout.
    input: Vec<T>,
    /// The dropout mask that was applied to the input (already scaled by `1/(1−p)`).
    mask: Option<Vec<T>>,
    directions: Vec<DirectionTrace<T>>,
}

#[derive(Clone, Debug)]
pub(crate) struct DirectionTrace<T: Real> {
    h0: Vec<T>,
    c0: Vec<T>,
    /// `h_t` of every step, `(T, B, H_out)`.
    y: Vec<T>,
    /// `c_t` of every step, `(T, B, H)`.
    c: Vec<T>,
    /// The cell's cache of every step, `(T, B, cache_width)`.
    cache: Vec<T>,
}

/// A trace's buffers go back to the scratch pool ([`scratch::give`]): the next training pass, of the same shapes,
/// takes them already mapped, where new ones cost a page fault a page (a `B32 H256` LSTM trace is 24 MB).
impl<T: Real> Drop for LayerTrace<T> {
    fn drop(&mut self) {
        scratch::give(std::mem::take(&mut self.input));
    }
}

impl<T: Real> Drop for DirectionTrace<T> {
    fn drop(&mut self) {
        [&mut self.y, &mut self.c, &mut self.cache].into_iter().for_each(|v| scratch::give(std::mem::take(v)));
    }
}

impl<T: Real> StackTrace<T> {
    /// Number of values kept for the backward pass (times the size of `T` is its memory).
    pub fn num_values(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                l.input.len()
                    + l.mask.as_ref().map_or(0, Vec::len)
                    + l.directions
                        .iter()
                        .map(|d| d.h0.len() + d.c0.len() + d.y.len() + d.c.len() + d.cache.len())
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Gradients of a stack's inputs, all row-major.
#[derive(Debug)]
pub struct StackGrads<T> {
    /// `∂L/∂input`, `(T, B, I)`.
    pub input: Vec<T>,
    /// `∂L/∂h_0`, `(L·D, B, H_out)`.
    pub h0: Vec<T>,
    /// `∂L/∂c_0`, `(L·D, B, H)` (empty for cells without a cell state).
    pub c0: Vec<T>,
}

impl<C: Cell> Stack<C> {
    /// A stack from its cells, layer-major and direction-minor.
    ///
    /// # Panics
    /// When `cells.len()` is not a positive multiple of `directions` (a caller bug).
    pub fn new(cells: Vec<C>, directions: usize) -> Self {
        assert!(directions == 1 || directions == 2, "one or two directions");
        assert!(
            !cells.is_empty() && cells.len().is_multiple_of(directions),
            "cells must fill every layer and direction"
        );
        Stack { cells, directions }
    }

    /// Number of directions (1 or 2).
    pub fn directions(&self) -> usize {
        self.directions
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.cells.len() / self.directions
    }

    /// The cells, layer-major.
    pub fn cells(&self) -> &[C] {
        &self.cells
    }

    /// Bytes of every cell's `weight_ih` and `weight_hh` as they are held (in fewer bits when stored so).
    pub fn weight_bytes(&self) -> usize {
        self.cells.iter().map(|c| c.weights().weight_bytes()).sum()
    }

    /// The cells, mutably.
    pub fn cells_mut(&mut self) -> &mut [C] {
        &mut self.cells
    }

    /// The cell of one layer and direction.
    pub fn cell(&self, layer: usize, direction: usize) -> &C {
        &self.cells[layer * self.directions + direction]
    }

    /// Size of `h` (the projected size for a projected LSTM).
    pub fn output_size(&self) -> usize {
        self.cells[0].output_size()
    }

    /// The same stack in another precision (the cells built by `cast`).
    pub fn map<D: Cell>(&self, cast: impl Fn(&C) -> D) -> Stack<D> {
        Stack { cells: self.cells.iter().map(cast).collect(), directions: self.directions }
    }

    fn hidden_size(&self) -> usize {
        self.cells[0].weights().hidden_size()
    }

    /// Runs the stack over a time-major input `(steps, batch, input_size)`, from the initial states `h0`
    /// `(L·D, B, H_out)` and `c0` `(L·D, B, H)`, zeros where absent. Keeps nothing for backward.
    ///
    /// # Panics
    /// When a slice's length disagrees with the sizes (the public layer checks user input before calling).
    pub fn forward(
        &self,
        input: &[C::Real],
        steps: usize,
        batch: usize,
        h0: Option<&[C::Real]>,
        c0: Option<&[C::Real]>,
    ) -> StackOutput<C::Real> {
        self.run(input, &Batching::new(steps, batch, None), InitialStates { h: h0, c: c0 }, Pass::Inference).0
    }

    /// [`Stack::forward`] over a padded batch whose sequence `b` has `lengths[b]` valid steps (each in
    /// `1..=steps`, in any order): PyTorch's `pack_padded_sequence(enforce_sorted=False)` → layer →
    /// `pad_packed_sequence`. Outputs past a sequence's end are zero; its final state is the one at its own last
    /// step; the reverse direction starts there. Only the sequences still running are computed at each step.
    pub fn forward_padded(
        &self,
        input: &[C::Real],
        steps: usize,
        lengths: &[usize],
        h0: Option<&[C::Real]>,
        c0: Option<&[C::Real]>,
    ) -> StackOutput<C::Real> {
        let batching = Batching::new(steps, lengths.len(), Some(lengths));
        self.run(input, &batching, InitialStates { h: h0, c: c0 }, Pass::Inference).0
    }

    /// [`Stack::forward`] that also returns what [`Stack::backward`] needs. `input_masks[l]`, when present, is
    /// multiplied into the input of layer `l` (dropout between layers; `input_masks[0]` is never used).
    pub fn forward_train(
        &self,
        input: Sequences<'_, C::Real>,
        initial: InitialStates<'_, C::Real>,
        input_masks: Vec<Option<Vec<C::Real>>>,
    ) -> (StackOutput<C::Real>, StackTrace<C::Real>) {
        let Sequences { data, steps, batch, lengths } = input;
        let batching = Batching::new(steps, batch, lengths);
        let (out, trace) = self.run(data, &batching, initial, Pass::Training { input_masks });
        (out, trace.expect("a training run keeps its trace"))
    }

    fn run(
        &self,
        input: &[C::Real],
        batching: &Batching,
        initial: InitialStates<'_, C::Real>,
        pass: Pass<C::Real>,
    ) -> (StackOutput<C::Real>, Option<StackTrace<C::Real>>) {
        on_pool(|| self.run_on_pool(input, batching, initial, pass))
    }

    /// The forward pass, layer by layer, on Rayon's pool (see [`on_pool`]): sorts the batch by length, runs each
    /// layer's directions over the layer below's output, and keeps each layer's trace in training.
    fn run_on_pool(
        &self,
        input: &[C::Real],
        batching: &Batching,
        initial: InitialStates<'_, C::Real>,
        pass: Pass<C::Real>,
    ) -> (StackOutput<C::Real>, Option<StackTrace<C::Real>>) {
        let (keep, mut masks) = match pass {
            Pass::Inference => (Keep::Outputs, Vec::new()),
            Pass::Training { input_masks } => (Keep::Trace, input_masks),
        };
        let zero = C::Real::zero();
        let batch = batching.lengths().len();
        let out_size = self.output_size();
        let hidden = if C::HAS_CELL_STATE { self.hidden_size() } else { 0 };
        let (state_len, cell_len) = (batch * out_size, batch * hidden);
        let n = self.cells.len();
        let mut h_n = vec![zero; n * state_len];
        let mut c_n = vec![zero; n * cell_len];
        let zeros_h = vec![zero; state_len];
        let zeros_c = vec![zero; cell_len];
        let in_width = self.cells[0].weights().input_size();
        let input = batching.sort(input, in_width);
        let h0 = initial.h.map(|h| batching.sort(h, out_size));
        let c0 = initial.c.map(|c| batching.sort(c, hidden));
        let mut traces = Vec::new();

        let mut layer_output: Option<Vec<C::Real>> = None;
        for layer in 0..self.layers() {
            // The previous layer's output, owned here from now on: the trace keeps it, or the pool takes it back.
            let previous = layer_output.take();
            let unmasked: &[C::Real] = previous.as_deref().unwrap_or(&input);
            let mask = masks.get_mut(layer).and_then(Option::take).filter(|_| layer > 0);
            let mask = mask.map(|m| batching.sort(&m, self.directions * out_size).into_owned());
            let masked: Option<Vec<C::Real>> =
                mask.as_ref().map(|m| unmasked.iter().zip(m).map(|(&v, &m)| v * m).collect());
            let first = layer * self.directions;
            let initial = |d: usize| Initial {
                h: h0.as_deref().map_or(&zeros_h[..], |h| &h[(first + d) * state_len..(first + d + 1) * state_len]),
                c: c0.as_deref().map_or(&zeros_c[..], |c| &c[(first + d) * cell_len..(first + d + 1) * cell_len]),
            };
            let final_state = FinalState {
                h: &mut h_n[first * state_len..(first + self.directions) * state_len],
                c: &mut c_n[first * cell_len..(first + self.directions) * cell_len],
            };
            let x = masked.as_deref().unwrap_or(unmasked);
            let mut runs = self.run_layer(layer, x, batching, &initial, keep, final_state);
            let output = if self.directions == 1 {
                if keep == Keep::Trace { scratch::copy_of(&runs[0].y) } else { std::mem::take(&mut runs[0].y) }
            } else {
                interleave(&runs[0].y, &runs[1].y, out_size)
            };
            if keep == Keep::Trace {
                // The trace keeps the input the layer read: the masked copy, else the previous layer's output
                // itself, else a copy of the stack's input.
                let input = match (masked, previous) {
                    (Some(masked), previous) => {
                        previous.into_iter().for_each(scratch::give);
                        masked
                    }
                    (None, Some(previous)) => previous,
                    (None, None) => scratch::copy_of(&input),
                };
                traces.push(LayerTrace { input, mask, directions: runs });
            } else {
                // Dropped, the runs give their buffers back to the pool.
                drop(runs);
                previous.into_iter().for_each(scratch::give);
            }
            layer_output = Some(output);
        }
        let output = layer_output.expect("a stack has at least one layer");
        let output = batching.unsort(output, self.directions * out_size);
        let (h_n, c_n) = (batching.unsort(h_n, out_size), batching.unsort(c_n, hidden));
        let trace = (keep == Keep::Trace).then(|| StackTrace { batching: batching.clone(), layers: traces });
        (StackOutput { output, h_n, c_n }, trace)
    }

    /// Runs layer `layer`'s directions over its input `x` (time-major, sorted by length), from `initial(d)` for
    /// direction `d`, writing their final states into `final_state` (direction after direction): one direction
    /// walking time in row groups, or two side by side, each cutting its large steps in halves.
    fn run_layer<'a>(
        &self,
        layer: usize,
        x: &[C::Real],
        batching: &Batching,
        initial: &(dyn Fn(usize) -> Initial<'a, C::Real> + Sync),
        keep: Keep,
        final_state: FinalState<'_, C::Real>,
    ) -> Vec<DirectionTrace<C::Real>> {
        if self.directions == 1 {
            let walk = Walk { x, batching, direction: Direction::Forward, rows: Rows::InGroups };
            return vec![run_direction(self.cell(layer, 0), walk, initial(0), keep, final_state)];
        }
        let walk = |direction| Walk { x, batching, direction, rows: Rows::StepHalves };
        let FinalState { h, c } = final_state;
        let (h_f, h_r) = h.split_at_mut(h.len() / 2);
        let (c_f, c_r) = c.split_at_mut(c.len() / 2);
        let (cf, cr) = (self.cell(layer, 0), self.cell(layer, 1));
        let (f, r) = rayon::join(
            || run_direction(cf, walk(Direction::Forward), initial(0), keep, FinalState { h: h_f, c: c_f }),
            || run_direction(cr, walk(Direction::Reverse), initial(1), keep, FinalState { h: h_r, c: c_r }),
        );
        vec![f, r]
    }

    /// Backpropagation through time: from the gradients of the outputs (`d_output` `(T, B, D·H_out)`, and
    /// optionally `d_h_n`, `d_c_n`) to the gradients of the input and initial states, accumulating every
    /// parameter's gradient into the cells.
    ///
    /// # Panics
    /// When the slices disagree with the trace (a caller bug; the public layer checks user input).
    pub fn backward(
        &mut self,
        trace: &StackTrace<C::Real>,
        d_output: &[C::Real],
        d_h_n: Option<&[C::Real]>,
        d_c_n: Option<&[C::Real]>,
    ) -> StackGrads<C::Real> {
        self.backward_choosing(trace, d_output, d_h_n, d_c_n, InputGrad::Wanted)
    }

    /// [`Stack::backward`] without the gradient of the input (`StackGrads::input` is empty), as PyTorch skips it
    /// for an input that does not require one: the first layer's `∂X = ∂G·W_ih` product is not made.
    pub fn backward_without_input(
        &mut self,
        trace: &StackTrace<C::Real>,
        d_output: &[C::Real],
        d_h_n: Option<&[C::Real]>,
        d_c_n: Option<&[C::Real]>,
    ) -> StackGrads<C::Real> {
        self.backward_choosing(trace, d_output, d_h_n, d_c_n, InputGrad::Skipped)
    }

    /// [`Stack::backward`] with the input's gradient only when `input_grad` wants it.
    pub(crate) fn backward_choosing(
        &mut self,
        trace: &StackTrace<C::Real>,
        d_output: &[C::Real],
        d_h_n: Option<&[C::Real]>,
        d_c_n: Option<&[C::Real]>,
        input_grad: InputGrad,
    ) -> StackGrads<C::Real> {
        on_pool(|| self.backward_on_pool(trace, d_output, d_h_n, d_c_n, input_grad))
    }

    fn backward_on_pool(
        &mut self,
        trace: &StackTrace<C::Real>,
        d_output: &[C::Real],
        d_h_n: Option<&[C::Real]>,
        d_c_n: Option<&[C::Real]>,
        input_grad: InputGrad,
    ) -> StackGrads<C::Real> {
        let batching = &trace.batching;
        let batch = batching.lengths().len();
        let zero = C::Real::zero();
        let out_size = self.output_size();
        let hidden = if C::HAS_CELL_STATE { self.hidden_size() } else { 0 };
        let (state_len, cell_len) = (batch * out_size, batch * hidden);
        let n = self.cells.len();
        let d = self.directions;
        let mut dh0 = vec![zero; n * state_len];
        let mut dc0 = vec![zero; n * cell_len];
        let mut d_above = match batching.sort(d_output, d * out_size) {
            Cow::Borrowed(d_output) => scratch::copy_of(d_output),
            Cow::Owned(sorted) => sorted,
        };
        let d_h_n = d_h_n.map(|g| batching.sort(g, out_size));
        let d_c_n = d_c_n.map(|g| batching.sort(g, hidden));
        let (d_h_n, d_c_n) = (d_h_n.as_deref(), d_c_n.as_deref());
        for layer in (0..self.layers()).rev() {
            let lt = &trace.layers[layer];
            let first = layer * d;
            let final_grad = |k: usize| Final {
                h: d_h_n.map(|g| &g[(first + k) * state_len..(first + k + 1) * state_len]),
                c: d_c_n.map(|g| &g[(first + k) * cell_len..(first + k + 1) * cell_len]),
            };
            // A layer above the first always passes its input's gradient down.
            let layer_input_grad = if layer > 0 { InputGrad::Wanted } else { input_grad };
            let grads = self.backward_layer(layer, lt, batching, d_above, &final_grad, layer_input_grad);
            for (k, g) in grads.iter().enumerate() {
                dh0[(first + k) * state_len..(first + k + 1) * state_len].copy_from_slice(&g.h0);
                dc0[(first + k) * cell_len..(first + k + 1) * cell_len].copy_from_slice(&g.c0);
            }
            let mut grads = grads.into_iter();
            let mut dx = grads.next().expect("a layer has a direction").x;
            // Both directions read the same input: their gradients add up.
            for g in grads {
                dx.iter_mut().zip(&g.x).for_each(|(a, &b)| *a += b);
                scratch::give(g.x);
            }
            if let Some(mask) = &lt.mask {
                dx.iter_mut().zip(mask).for_each(|(g, &m)| *g *= m);
            }
            d_above = dx;
        }
        let in_width = self.cells[0].weights().input_size();
        StackGrads {
            input: match input_grad {
                InputGrad::Wanted => batching.unsort(d_above, in_width),
                InputGrad::Skipped => Vec::new(),
            },
            h0: batching.unsort(dh0, out_size),
            c0: batching.unsort(dc0, hidden),
        }
    }

    /// The backward of layer `layer`'s directions from `d_above`, the gradient of its output (`(T, B, D·H_out)`,
    /// sorted by length) and `final_grad(d)`, that of direction `d`'s final state: one direction walking time in
    /// row groups, or two side by side, each cutting its large steps in halves. Returns each direction's
    /// gradients, forward first.
    fn backward_layer<'a>(
        &mut self,
        layer: usize,
        trace: &LayerTrace<C::Real>,
        batching: &Batching,
        d_above: Vec<C::Real>,
        final_grad: &(dyn Fn(usize) -> Final<'a, C::Real> + Sync),
        input_grad: InputGrad,
    ) -> Vec<DirectionGrads<C::Real>> {
        let first = layer * self.directions;
        let rows = if self.directions == 1 { Rows::InGroups } else { Rows::StepHalves };
        let run = |cell: &mut C, k: usize, dy: Vec<C::Real>| {
            let walk = Walk { x: &trace.input, batching, direction: Direction::of_index(k), rows };
            backward_direction(cell, walk, &trace.directions[k], dy, final_grad(k), input_grad)
        };
        if self.directions == 1 {
            return vec![run(&mut self.cells[first], 0, d_above)];
        }
        let (dy_f, dy_r) = deinterleave(&d_above, self.output_size());
        scratch::give(d_above);
        let (cf, cr) = self.cells[first..first + 2].split_at_mut(1);
        let (gf, gr) = rayon::join(|| run(&mut cf[0], 0, dy_f), || run(&mut cr[0], 1, dy_r));
        vec![gf, gr]
    }
}

/// Joins two `(T, B, H)` outputs into `(T, B, 2H)`, forward first, as PyTorch lays out bidirectional outputs.
fn interleave<T: Real>(forward: &[T], reverse: &[T], width: usize) -> Vec<T> {
    let mut out = scratch::take_empty(2 * forward.len());
    for (f, r) in forward.chunks_exact(width).zip(reverse.chunks_exact(width)) {
        out.extend_from_slice(f);
        out.extend_from_slice(r);
    }
    out
}

/// The inverse of [`interleave`].
fn deinterleave<T: Real>(both: &[T], width: usize) -> (Vec<T>, Vec<T>) {
    let mut forward = scratch::take_empty(both.len() / 2);
    let mut reverse = scratch::take_empty(both.len() / 2);
    for pair in both.chunks_exact(2 * width) {
        forward.extend_from_slice(&pair[..width]);
        reverse.extend_from_slice(&pair[width..]);
    }
    (forward, reverse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_buffers_holding_nan_change_no_result_of_a_training_pass() {
        use crate::{Mode, Recurrent, RecurrentConfig, Tensor, Trainable};
        use rand::SeedableRng;
        let (steps, batch, input) = (20, 8, 24);
        let x =
            Tensor::new([steps, batch, input], (0..steps * batch * input).map(|i| (i as f32 * 0.7).sin()).collect())
                .unwrap();
        for mode in [Mode::Lstm, Mode::Gru, Mode::RnnTanh] {
            for bidirectional in [false, true] {
                for lengths in [None, Some(&[20, 3, 17, 20, 9, 1, 20, 12][..])] {
                    // Buffers of these sizes pass the pool's threshold (64 KB) and come back from one pass for
                    // the next.
                    let config = RecurrentConfig::new(mode, input, 64).num_layers(2).bidirectional(bidirectional);
                    let mut layer = Recurrent::with_seed(config, 5).unwrap();
                    let mut pass = || {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
                        let (out, cache) = match lengths {
                            None => layer.forward_train(&x, None, None, &mut rng),
                            Some(l) => layer.forward_train_with_lengths(&x, l, None, None, &mut rng),
                        }
                        .unwrap();
                        let grads = layer.backward(&cache, &out.output, None, None).unwrap();
                        let params: Vec<f32> = layer.parameters().iter().flat_map(|p| p.grad.to_vec()).collect();
                        layer.zero_grad();
                        [out.output.data(), out.h_n.data(), grads.input.data(), grads.h0.data(), &params].concat()
                    };
                    let fresh = pass();
                    scratch::poison_kept_buffers();
                    let again = pass();
                    let at = format!("{mode:?} bidirectional={bidirectional} lengths={lengths:?}");
                    assert!(fresh.iter().all(|v| v.is_finite()), "{at}");
                    assert!(fresh.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "{at}");
                }
            }
        }
    }

    #[test]
    fn kept_buffers_holding_nan_change_no_result_of_an_inference_pass() {
        use crate::{Mode, Recurrent, RecurrentConfig, Tensor};
        // An inference pass keeps two slots of `c` and one of the cache: at B64 H128 both pass the pool's
        // threshold (64 KB).
        let (steps, batch, input) = (5, 64, 8);
        let x =
            Tensor::new([steps, batch, input], (0..steps * batch * input).map(|i| (i as f32 * 0.3).cos()).collect())
                .unwrap();
        let lengths: Vec<usize> = (0..batch).map(|b| 1 + b % steps).collect();
        for mode in [Mode::Lstm, Mode::Gru] {
            let layer = Recurrent::with_seed(RecurrentConfig::new(mode, input, 128), 9).unwrap();
            let pass = || {
                let full = layer.forward(&x, None, None).unwrap();
                let padded = layer.forward_with_lengths(&x, &lengths, None, None).unwrap();
                [full.output.data(), full.h_n.data(), padded.output.data(), padded.h_n.data()].concat()
            };
            let fresh = pass();
            scratch::poison_kept_buffers();
            let again = pass();
            assert!(fresh.iter().all(|v| v.is_finite()), "{mode:?}");
            assert!(fresh.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "{mode:?}");
        }
    }

    #[test]
    fn interleave_puts_forward_first_and_deinterleave_undoes_it() {
        let both = interleave(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2);
        assert_eq!(both, vec![1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);
        assert_eq!(deinterleave(&both, 2), (vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]));
    }

    #[test]
    fn reverse_direction_walks_backwards() {
        let order: Vec<usize> = (0..4).map(|s| Direction::Reverse.time(s, 4)).collect();
        assert_eq!(order, vec![3, 2, 1, 0]);
    }
}
