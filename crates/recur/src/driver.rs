//! The one recurrent driver: runs any [`Cell`] over time, layers and directions.
//!
//! All sequences here are time-major, `(T, B, features)`, row-major. For each layer and direction the driver
//! makes one large product for the input projection of every time step, then walks time with one recurrent
//! product and one fused gate pass per step. Every buffer is allocated before the time loop.

use crate::cells::{Cell, GatePass};

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
        if d == 0 {
            Direction::Forward
        } else {
            Direction::Reverse
        }
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
pub struct StackOutput {
    /// `(T, B, D·H_out)`: the last layer's `h_t` of every direction, forward first.
    pub output: Vec<f32>,
    /// `(L·D, B, H_out)`: every layer's and direction's final `h`.
    pub h_n: Vec<f32>,
    /// `(L·D, B, H)`: every final `c` (empty for cells without a cell state).
    pub c_n: Vec<f32>,
}

/// The initial state of one direction of one layer, as row-major `B × size` slices.
#[derive(Clone, Copy)]
struct Initial<'a> {
    h: Option<&'a [f32]>,
    c: Option<&'a [f32]>,
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

    /// Runs the stack over a time-major input `(steps, batch, input_size)`, from the initial states `h0`
    /// `(L·D, B, H_out)` and `c0` `(L·D, B, H)`, zeros where absent.
    ///
    /// # Panics
    /// When a slice's length disagrees with the sizes (the public layer checks user input before calling).
    pub fn forward(
        &self,
        input: &[f32],
        steps: usize,
        batch: usize,
        h0: Option<&[f32]>,
        c0: Option<&[f32]>,
    ) -> StackOutput {
        let out_size = self.output_size();
        let hidden = self.cells[0].weights().hidden_size();
        let state_len = batch * out_size;
        let cell_len = if C::HAS_CELL_STATE { batch * hidden } else { 0 };
        let n = self.cells.len();
        let mut h_n = vec![0.0; n * state_len];
        let mut c_n = vec![0.0; n * cell_len];

        let mut layer_input: Option<Vec<f32>> = None;
        for layer in 0..self.layers() {
            let x = layer_input.as_deref().unwrap_or(input);
            let first = layer * self.directions;
            let initial = |d: usize| Initial {
                h: h0.map(|h| &h[(first + d) * state_len..(first + d + 1) * state_len]),
                c: c0.map(|c| &c[(first + d) * cell_len..(first + d + 1) * cell_len]),
            };
            let hn = &mut h_n[first * state_len..(first + self.directions) * state_len];
            let cn = &mut c_n[first * cell_len..(first + self.directions) * cell_len];
            let output = if self.directions == 1 {
                let mut y = vec![0.0; steps * state_len];
                run_direction(
                    self.cell(layer, 0),
                    x,
                    steps,
                    batch,
                    Direction::Forward,
                    initial(0),
                    &mut y,
                    hn,
                    cn,
                );
                y
            } else {
                let (hn_f, hn_r) = hn.split_at_mut(state_len);
                let (cn_f, cn_r) = cn.split_at_mut(cell_len);
                let mut y_f = vec![0.0; steps * state_len];
                let mut y_r = vec![0.0; steps * state_len];
                let (cf, cr) = (self.cell(layer, 0), self.cell(layer, 1));
                rayon::join(
                    || {
                        run_direction(
                            cf,
                            x,
                            steps,
                            batch,
                            Direction::Forward,
                            initial(0),
                            &mut y_f,
                            hn_f,
                            cn_f,
                        )
                    },
                    || {
                        run_direction(
                            cr,
                            x,
                            steps,
                            batch,
                            Direction::Reverse,
                            initial(1),
                            &mut y_r,
                            hn_r,
                            cn_r,
                        )
                    },
                );
                interleave(&y_f, &y_r, out_size)
            };
            layer_input = Some(output);
        }
        StackOutput {
            output: layer_input.expect("a stack has at least one layer"),
            h_n,
            c_n,
        }
    }
}

/// Runs one cell over time in one direction, writing `h_t` of every step into `y` `(T, B, H_out)` and the final
/// state into `h_n`, `c_n`.
#[allow(clippy::too_many_arguments)]
fn run_direction<C: Cell>(
    cell: &C,
    x: &[f32],
    steps: usize,
    batch: usize,
    direction: Direction,
    initial: Initial<'_>,
    y: &mut [f32],
    h_n: &mut [f32],
    c_n: &mut [f32],
) {
    let weights = cell.weights();
    let width = C::GATES * weights.hidden_size();
    let state_len = batch * cell.output_size();

    let mut gx = vec![0.0; steps * batch * width];
    weights.input_projection(x, steps * batch, &mut gx);
    let mut gh = vec![0.0; batch * width];
    let mut cache = vec![0.0; batch * cell.cache_width()];
    let h_start = initial
        .h
        .map_or_else(|| vec![0.0; state_len], <[f32]>::to_vec);
    let mut c_prev = initial
        .c
        .map_or_else(|| vec![0.0; c_n.len()], <[f32]>::to_vec);
    let mut c_next = vec![0.0; c_n.len()];

    for s in 0..steps {
        let t = direction.time(s, steps);
        let (h_prev, h_next) = previous_and_current(y, &h_start, state_len, t, s, direction);
        weights.recurrent_projection(h_prev, batch, &mut gh);
        cell.forward_gates(GatePass {
            batch,
            gx: &gx[t * batch * width..(t + 1) * batch * width],
            gh: &gh,
            h_prev,
            c_prev: &c_prev,
            h_next,
            c_next: &mut c_next,
            cache: &mut cache,
        });
        std::mem::swap(&mut c_prev, &mut c_next);
    }
    let last = direction.time(steps - 1, steps);
    h_n.copy_from_slice(&y[last * state_len..(last + 1) * state_len]);
    c_n.copy_from_slice(&c_prev);
}

/// Splits `y` into the state the `s`-th step reads (the previous step's output, or the initial state) and the
/// slot it writes, without copying.
fn previous_and_current<'a>(
    y: &'a mut [f32],
    h_start: &'a [f32],
    len: usize,
    t: usize,
    s: usize,
    direction: Direction,
) -> (&'a [f32], &'a mut [f32]) {
    if s == 0 {
        return (h_start, &mut y[t * len..(t + 1) * len]);
    }
    match direction {
        Direction::Forward => {
            let (before, after) = y.split_at_mut(t * len);
            (&before[(t - 1) * len..], &mut after[..len])
        }
        Direction::Reverse => {
            let (before, after) = y.split_at_mut((t + 1) * len);
            (&after[..len], &mut before[t * len..])
        }
    }
}

/// Joins two `(T, B, H)` outputs into `(T, B, 2H)`, forward first, as PyTorch lays out bidirectional outputs.
fn interleave(forward: &[f32], reverse: &[f32], width: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * forward.len());
    for (f, r) in forward.chunks_exact(width).zip(reverse.chunks_exact(width)) {
        out.extend_from_slice(f);
        out.extend_from_slice(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_puts_forward_first() {
        assert_eq!(
            interleave(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], 2),
            vec![1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]
        );
    }

    #[test]
    fn reverse_direction_walks_backwards() {
        let order: Vec<usize> = (0..4).map(|s| Direction::Reverse.time(s, 4)).collect();
        assert_eq!(order, vec![3, 2, 1, 0]);
    }

    #[test]
    fn previous_and_current_point_at_neighbours() {
        let mut y: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let start = [9.0, 9.0];
        let (p, c) = previous_and_current(&mut y, &start, 2, 1, 1, Direction::Forward);
        assert_eq!((p.to_vec(), c.to_vec()), (vec![0.0, 1.0], vec![2.0, 3.0]));
        let (p, c) = previous_and_current(&mut y, &start, 2, 1, 1, Direction::Reverse);
        assert_eq!((p.to_vec(), c.to_vec()), (vec![4.0, 5.0], vec![2.0, 3.0]));
        let (p, _) = previous_and_current(&mut y, &start, 2, 2, 0, Direction::Reverse);
        assert_eq!(p.to_vec(), vec![9.0, 9.0]);
    }
}
