//! The one recurrent driver: runs any [`Cell`] over time, layers and directions, forward and backward.
//!
//! All sequences here are time-major, `(T, B, features)`, row-major. For each layer and direction the driver
//! makes one large product for the input projection of every time step, then walks time with one recurrent
//! product and one fused gate pass per step. Backward walks time the other way with one product by `W_hh` per
//! step, then gathers the weight gradients in a few large products. Every buffer is allocated before its time
//! loop.

use crate::cells::{Cell, GateBackward, GatePass, WeightGradInputs};
use num_traits::Zero;

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
    fn time(self, s: usize, steps: usize) -> usize {
        match self {
            Direction::Forward => s,
            Direction::Reverse => steps - 1 - s,
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
pub struct StackTrace<T> {
    steps: usize,
    batch: usize,
    layers: Vec<LayerTrace<T>>,
}

#[derive(Clone, Debug)]
struct LayerTrace<T> {
    /// The layer's input `(T, B, in)`, after dropout.
    input: Vec<T>,
    /// The dropout mask that was applied to the input (already scaled by `1/(1−p)`).
    mask: Option<Vec<T>>,
    directions: Vec<DirectionTrace<T>>,
}

#[derive(Clone, Debug)]
pub(crate) struct DirectionTrace<T> {
    h0: Vec<T>,
    c0: Vec<T>,
    /// `h_t` of every step, `(T, B, H_out)`.
    y: Vec<T>,
    /// `c_t` of every step, `(T, B, H)`.
    c: Vec<T>,
    /// The cell's cache of every step, `(T, B, cache_width)`.
    cache: Vec<T>,
}

impl<T> StackTrace<T> {
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

/// The initial state of one direction of one layer, as row-major `B × size` slices.
#[derive(Clone, Copy)]
pub(crate) struct Initial<'a, T> {
    pub h: &'a [T],
    pub c: &'a [T],
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
        self.run(input, steps, batch, h0, c0, None).0
    }

    /// [`Stack::forward`] that also returns what [`Stack::backward`] needs. `input_masks[l]`, when present, is
    /// multiplied into the input of layer `l` (dropout between layers; `input_masks[0]` is never used).
    pub fn forward_train(
        &self,
        input: &[C::Real],
        steps: usize,
        batch: usize,
        h0: Option<&[C::Real]>,
        c0: Option<&[C::Real]>,
        input_masks: Vec<Option<Vec<C::Real>>>,
    ) -> (StackOutput<C::Real>, StackTrace<C::Real>) {
        let (out, trace) = self.run(input, steps, batch, h0, c0, Some(input_masks));
        (out, trace.expect("a training run keeps its trace"))
    }

    fn run(
        &self,
        input: &[C::Real],
        steps: usize,
        batch: usize,
        h0: Option<&[C::Real]>,
        c0: Option<&[C::Real]>,
        masks: Option<Vec<Option<Vec<C::Real>>>>,
    ) -> (StackOutput<C::Real>, Option<StackTrace<C::Real>>) {
        let keep = masks.is_some();
        let mut masks = masks.unwrap_or_default();
        let zero = C::Real::zero();
        let out_size = self.output_size();
        let state_len = batch * out_size;
        let cell_len = if C::HAS_CELL_STATE { batch * self.hidden_size() } else { 0 };
        let n = self.cells.len();
        let mut h_n = vec![zero; n * state_len];
        let mut c_n = vec![zero; n * cell_len];
        let zeros_h = vec![zero; state_len];
        let zeros_c = vec![zero; cell_len];
        let mut traces = Vec::new();

        let mut layer_output: Option<Vec<C::Real>> = None;
        for layer in 0..self.layers() {
            let unmasked: &[C::Real] = layer_output.as_deref().unwrap_or(input);
            let mask = masks.get_mut(layer).and_then(Option::take).filter(|_| layer > 0);
            let masked: Option<Vec<C::Real>> =
                mask.as_ref().map(|m| unmasked.iter().zip(m).map(|(&v, &m)| v * m).collect());
            let x_ref = masked.as_deref().unwrap_or(unmasked);
            let first = layer * self.directions;
            let initial = |d: usize| Initial {
                h: h0.map_or(&zeros_h[..], |h| &h[(first + d) * state_len..(first + d + 1) * state_len]),
                c: c0.map_or(&zeros_c[..], |c| &c[(first + d) * cell_len..(first + d + 1) * cell_len]),
            };
            let hn = &mut h_n[first * state_len..(first + self.directions) * state_len];
            let cn = &mut c_n[first * cell_len..(first + self.directions) * cell_len];
            let mut runs: Vec<DirectionTrace<C::Real>> = Vec::with_capacity(self.directions);
            if self.directions == 1 {
                let cell = self.cell(layer, 0);
                runs.push(run_direction(cell, x_ref, steps, batch, Direction::Forward, initial(0), keep, hn, cn));
            } else {
                let (hn_f, hn_r) = hn.split_at_mut(state_len);
                let (cn_f, cn_r) = cn.split_at_mut(cell_len);
                let (cf, cr) = (self.cell(layer, 0), self.cell(layer, 1));
                let (f, r) = rayon::join(
                    || run_direction(cf, x_ref, steps, batch, Direction::Forward, initial(0), keep, hn_f, cn_f),
                    || run_direction(cr, x_ref, steps, batch, Direction::Reverse, initial(1), keep, hn_r, cn_r),
                );
                runs.extend([f, r]);
            }
            let output = if self.directions == 1 {
                if keep { runs[0].y.clone() } else { std::mem::take(&mut runs[0].y) }
            } else {
                interleave(&runs[0].y, &runs[1].y, out_size)
            };
            if keep {
                let input = masked.unwrap_or_else(|| unmasked.to_vec());
                traces.push(LayerTrace { input, mask, directions: runs });
            }
            layer_output = Some(output);
        }
        let output = layer_output.expect("a stack has at least one layer");
        let trace = keep.then_some(StackTrace { steps, batch, layers: traces });
        (StackOutput { output, h_n, c_n }, trace)
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
        let (steps, batch) = (trace.steps, trace.batch);
        let zero = C::Real::zero();
        let out_size = self.output_size();
        let state_len = batch * out_size;
        let cell_len = if C::HAS_CELL_STATE { batch * self.hidden_size() } else { 0 };
        let n = self.cells.len();
        let d = self.directions;
        let mut dh0 = vec![zero; n * state_len];
        let mut dc0 = vec![zero; n * cell_len];
        let mut d_above = d_output.to_vec();
        for layer in (0..self.layers()).rev() {
            let lt = &trace.layers[layer];
            let first = layer * d;
            let final_grad = |k: usize| Final {
                h: d_h_n.map(|g| &g[(first + k) * state_len..(first + k + 1) * state_len]),
                c: d_c_n.map(|g| &g[(first + k) * cell_len..(first + k + 1) * cell_len]),
            };
            let mut dx = if d == 1 {
                let (cell, dir) = (&mut self.cells[first], &lt.directions[0]);
                let g =
                    backward_direction(cell, dir, &lt.input, steps, batch, Direction::Forward, d_above, final_grad(0));
                dh0[first * state_len..(first + 1) * state_len].copy_from_slice(&g.h0);
                dc0[first * cell_len..(first + 1) * cell_len].copy_from_slice(&g.c0);
                g.x
            } else {
                let (dy_f, dy_r) = deinterleave(&d_above, out_size);
                let (cf, cr) = self.cells[first..first + 2].split_at_mut(1);
                let (df, dr) = (&lt.directions[0], &lt.directions[1]);
                let x = &lt.input;
                let (gf, gr) = rayon::join(
                    || backward_direction(&mut cf[0], df, x, steps, batch, Direction::Forward, dy_f, final_grad(0)),
                    || backward_direction(&mut cr[0], dr, x, steps, batch, Direction::Reverse, dy_r, final_grad(1)),
                );
                for (k, g) in [&gf, &gr].into_iter().enumerate() {
                    dh0[(first + k) * state_len..(first + k + 1) * state_len].copy_from_slice(&g.h0);
                    dc0[(first + k) * cell_len..(first + k + 1) * cell_len].copy_from_slice(&g.c0);
                }
                let mut x = gf.x;
                x.iter_mut().zip(&gr.x).for_each(|(a, &b)| *a += b);
                x
            };
            if let Some(mask) = &lt.mask {
                dx.iter_mut().zip(mask).for_each(|(g, &m)| *g *= m);
            }
            d_above = dx;
        }
        StackGrads { input: d_above, h0: dh0, c0: dc0 }
    }
}

/// Runs one cell over time in one direction. Returns every `h_t` (`y`, `(T, B, H_out)`) and, when `keep`, the
/// cell states and caches of every step; writes the final state into `h_n`, `c_n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_direction<C: Cell>(
    cell: &C,
    x: &[C::Real],
    steps: usize,
    batch: usize,
    direction: Direction,
    initial: Initial<'_, C::Real>,
    keep: bool,
    h_n: &mut [C::Real],
    c_n: &mut [C::Real],
) -> DirectionTrace<C::Real> {
    let zero = C::Real::zero();
    let weights = cell.weights();
    let width = C::GATES * weights.hidden_size();
    let state_len = batch * cell.output_size();
    let cell_len = c_n.len();
    let cache_len = batch * cell.cache_width();
    // Inference keeps two cell-state slots (previous, next) and one cache slot; training keeps every step's.
    let (c_slots, cache_slots) = if keep { (steps, steps) } else { (2, 1) };

    let mut gx = vec![zero; steps * batch * width];
    weights.input_projection(x, steps * batch, &mut gx);
    let mut gh = vec![zero; batch * width];
    let mut y = vec![zero; steps * state_len];
    let mut c = vec![zero; c_slots * cell_len];
    let mut cache = vec![zero; cache_slots * cache_len];

    for s in 0..steps {
        let t = direction.time(s, steps);
        let prev = (s > 0).then(|| direction.time(s - 1, steps));
        let (h_prev, h_next) = slots(&mut y, initial.h, state_len, t, prev);
        let (c_prev, c_next) = if keep {
            slots(&mut c, initial.c, cell_len, t, prev)
        } else {
            slots(&mut c, initial.c, cell_len, s % 2, (s > 0).then(|| (s - 1) % 2))
        };
        let slot = if keep { t } else { 0 };
        weights.recurrent_projection(h_prev, batch, &mut gh);
        cell.forward_gates(GatePass {
            batch,
            gx: &gx[t * batch * width..(t + 1) * batch * width],
            gh: &gh,
            h_prev,
            c_prev,
            h_next,
            c_next,
            cache: &mut cache[slot * cache_len..(slot + 1) * cache_len],
        });
    }
    let last = direction.time(steps - 1, steps);
    h_n.copy_from_slice(&y[last * state_len..(last + 1) * state_len]);
    let last_c = if keep { last } else { (steps - 1) % 2 };
    c_n.copy_from_slice(&c[last_c * cell_len..(last_c + 1) * cell_len]);
    let (h0, c0) = if keep { (initial.h.to_vec(), initial.c.to_vec()) } else { (Vec::new(), Vec::new()) };
    DirectionTrace { h0, c0, y, c, cache }
}

/// The gradients that reach a direction's final state from outside (`None`: zero).
#[derive(Clone, Copy)]
pub(crate) struct Final<'a, T> {
    pub h: Option<&'a [T]>,
    pub c: Option<&'a [T]>,
}

/// Gradients of one direction's input and initial state.
pub(crate) struct DirectionGrads<T> {
    pub x: Vec<T>,
    pub h0: Vec<T>,
    pub c0: Vec<T>,
}

/// Backpropagation through time for one cell in one direction. `dy` holds `∂L/∂h_t` from above for every step
/// and is turned, in place, into the total `∂L/∂h_t` (from above and from the next step).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_direction<C: Cell>(
    cell: &mut C,
    trace: &DirectionTrace<C::Real>,
    x: &[C::Real],
    steps: usize,
    batch: usize,
    direction: Direction,
    mut dy: Vec<C::Real>,
    final_grad: Final<'_, C::Real>,
) -> DirectionGrads<C::Real> {
    let zero = C::Real::zero();
    let weights = cell.weights();
    let width = C::GATES * weights.hidden_size();
    let state_len = batch * cell.output_size();
    let cell_len = trace.c0.len();
    let cache_len = batch * cell.cache_width();
    let rows = steps * batch;

    let mut dgx = vec![zero; rows * width];
    let mut dgh = vec![zero; if C::SEPARATE_RECURRENT_GRAD { rows * width } else { 0 }];
    let mut dh = final_grad.h.map_or_else(|| vec![zero; state_len], <[_]>::to_vec);
    let mut dc = final_grad.c.map_or_else(|| vec![zero; cell_len], <[_]>::to_vec);
    let mut dh_prev = vec![zero; state_len];
    let mut dc_prev = vec![zero; cell_len];
    let mut scratch = vec![zero; batch * cell.scratch_width()];
    let mut prepared = vec![zero; cell.prepared_len()];
    cell.prepare_backward(&mut prepared);
    let w_hh_t = cell.weights().transposed_weight_hh();

    for s in (0..steps).rev() {
        let t = direction.time(s, steps);
        let prev = (s > 0).then(|| direction.time(s - 1, steps));
        let dy_t = &mut dy[slot(state_len, t)];
        dy_t.iter_mut().zip(&dh).for_each(|(a, &b)| *a += b);
        let h_prev = prev.map_or(&trace.h0[..], |p| &trace.y[slot(state_len, p)]);
        let c_prev = prev.map_or(&trace.c0[..], |p| &trace.c[slot(cell_len, p)]);
        let gates = slot(batch * width, t);
        cell.backward_gates(GateBackward {
            batch,
            cache: &trace.cache[slot(cache_len, t)],
            h_prev,
            h_next: &trace.y[slot(state_len, t)],
            c_prev,
            c_next: &trace.c[slot(cell_len, t)],
            dh: dy_t,
            dc: &dc,
            dgx: &mut dgx[gates.clone()],
            dgh: if C::SEPARATE_RECURRENT_GRAD { &mut dgh[gates.clone()] } else { &mut [] },
            dh_prev: &mut dh_prev,
            dc_prev: &mut dc_prev,
            scratch: &mut scratch,
            prepared: &prepared,
        });
        let dg_recurrent = if C::SEPARATE_RECURRENT_GRAD { &dgh[gates] } else { &dgx[gates] };
        cell.weights().recurrent_backward(&w_hh_t, dg_recurrent, batch, &mut dh_prev);
        std::mem::swap(&mut dh, &mut dh_prev);
        std::mem::swap(&mut dc, &mut dc_prev);
    }

    let in_size = cell.weights().input_size();
    let mut dx = vec![zero; rows * in_size];
    cell.weights().input_backward(&dgx, rows, &mut dx);
    let last = steps - 1;
    let h_prev = match direction {
        // Step t ≥ 1 read h_{t−1} = y[t−1]; step 0 read h_0.
        Direction::Forward => [(batch..rows, &trace.y[..last * state_len]), (0..batch, &trace.h0[..])],
        // Step t ≤ T−2 read y[t+1]; step T−1 read h_0.
        Direction::Reverse => [(0..last * batch, &trace.y[state_len..]), (last * batch..rows, &trace.h0[..])],
    };
    let dgh_all = if C::SEPARATE_RECURRENT_GRAD { &dgh } else { &dgx };
    cell.weights_mut().accumulate_grads(WeightGradInputs { x, dgx: &dgx, dgh: dgh_all, h_prev });
    cell.accumulate_extra_grads(&dy, &trace.cache);
    DirectionGrads { x: dx, h0: dh, c0: dc }
}

/// The range of slot `k` of `len` values.
fn slot(len: usize, k: usize) -> std::ops::Range<usize> {
    k * len..(k + 1) * len
}

/// Splits `buf` into the slot a step reads (slot `prev`, or `start` for the first step) and the slot `current`
/// it writes, without copying.
fn slots<'a, T>(
    buf: &'a mut [T],
    start: &'a [T],
    len: usize,
    current: usize,
    prev: Option<usize>,
) -> (&'a [T], &'a mut [T]) {
    match prev {
        None => (start, &mut buf[current * len..(current + 1) * len]),
        Some(p) if p < current => {
            let (before, after) = buf.split_at_mut(current * len);
            (&before[p * len..(p + 1) * len], &mut after[..len])
        }
        Some(p) => {
            let (before, after) = buf.split_at_mut(p * len);
            (&after[..len], &mut before[current * len..(current + 1) * len])
        }
    }
}

/// Joins two `(T, B, H)` outputs into `(T, B, 2H)`, forward first, as PyTorch lays out bidirectional outputs.
fn interleave<T: Copy>(forward: &[T], reverse: &[T], width: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(2 * forward.len());
    for (f, r) in forward.chunks_exact(width).zip(reverse.chunks_exact(width)) {
        out.extend_from_slice(f);
        out.extend_from_slice(r);
    }
    out
}

/// The inverse of [`interleave`].
fn deinterleave<T: Copy>(both: &[T], width: usize) -> (Vec<T>, Vec<T>) {
    let mut forward = Vec::with_capacity(both.len() / 2);
    let mut reverse = Vec::with_capacity(both.len() / 2);
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

    #[test]
    fn slots_point_at_neighbours() {
        let mut y: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let start = [9.0, 9.0];
        let (p, c) = slots(&mut y, &start, 2, 1, Some(0));
        assert_eq!((p.to_vec(), c.to_vec()), (vec![0.0, 1.0], vec![2.0, 3.0]));
        let (p, c) = slots(&mut y, &start, 2, 1, Some(2));
        assert_eq!((p.to_vec(), c.to_vec()), (vec![4.0, 5.0], vec![2.0, 3.0]));
        let (p, _) = slots(&mut y, &start, 2, 2, None);
        assert_eq!(p.to_vec(), vec![9.0, 9.0]);
    }
}
