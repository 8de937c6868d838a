//! One layer's step for a batch of streams: the two products of every stream at once, then the gate pass.

use std::ops::Range;

use crate::driver::{Cell, GatePass};

/// What a layer's step reads for `batch` streams, row-major, a row per stream: the layer's input (`B × I_l`) and
/// the previous `h` (`B × H_out`) and `c` (`B × H`, empty for cells without one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepInputs<'a> {
    pub batch: usize,
    pub input: &'a [f32],
    pub h_prev: &'a [f32],
    pub c_prev: &'a [f32],
}

impl<'a> StepInputs<'a> {
    /// The rows `rows` of every input: those streams alone.
    pub(crate) fn rows(self, rows: Range<usize>) -> StepInputs<'a> {
        let at = |v: &[f32]| {
            let width = v.len() / self.batch.max(1);
            rows.start * width..rows.end * width
        };
        StepInputs {
            batch: rows.len(),
            input: &self.input[at(self.input)],
            h_prev: &self.h_prev[at(self.h_prev)],
            c_prev: &self.c_prev[at(self.c_prev)],
        }
    }
}

/// Values a pre-activation buffer holds beyond its rows, so that its rows can start anywhere within a page (see
/// [`StepBuffers::place`]).
const PAGE_VALUES: usize = 4096 / size_of::<f32>();

/// The work buffers of a layer's step, for every stream of the batch: the pre-activations `gx`, `gh` (`B × G·H`,
/// from `x_at` and `h_at` in their buffers) and what the gate pass keeps (`B ×`
/// [`Cell::inference_cache_width`]). Reserved ahead of the steps, so that a step allocates nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepBuffers {
    gx: Vec<f32>,
    gh: Vec<f32>,
    x_at: usize,
    h_at: usize,
    len: usize,
    cache: Vec<f32>,
}

impl StepBuffers {
    /// Makes room for `batch` streams of a layer `width = G·H` pre-activations wide that keeps `cache` values a
    /// stream.
    pub(crate) fn reserve(&mut self, batch: usize, width: usize, cache: usize) {
        let gates = batch * width + PAGE_VALUES;
        for (v, n) in [(&mut self.gx, gates), (&mut self.gh, gates), (&mut self.cache, batch * cache)] {
            v.reserve(n.saturating_sub(v.len()));
        }
    }

    /// Sizes the pre-activations for `len` values and places them against `output`, the first row the gate pass
    /// writes: each starts 2176 bytes (half a page and two cache lines) past `output`'s place within a 4 KB page.
    ///
    /// A CPU takes a load for one of the stores before it when their addresses agree in their low 12 bits (4K
    /// aliasing), and waits. Large buffers are whole pages from the system, all at one offset within a page; with
    /// rows whose lengths are multiples of 256 bytes, a gate pass would then load its pre-activations from the
    /// offsets it has just stored its outputs at, row after row (measured three times slower). Placed this way,
    /// the two stay at least 128 bytes apart within a page.
    fn place(&mut self, len: usize, output: *const f32) {
        let start = |buffer: &Vec<f32>| {
            let past = (buffer.as_ptr() as usize).wrapping_sub(output as usize) % 4096;
            (2176 + 4096 - past) % 4096 / size_of::<f32>()
        };
        for v in [&mut self.gx, &mut self.gh] {
            v.resize(len + PAGE_VALUES, 0.0);
        }
        (self.x_at, self.h_at, self.len) = (start(&self.gx), start(&self.gh), len);
    }
}

/// One step of `cell`'s layer for every stream of `inputs`, into `h_next` and `c_next` (shaped as `h_prev` and
/// `c_prev`):
///
/// ```text
/// gx = X W_ihᵀ + b_ih      gh = H W_hhᵀ + b_hh      h', c' = gates(gx, gh, h, c)
/// ```
///
/// Each product reads the weights once a block of streams ([`crate::kernels::rowvec::rows_times`]) and gives a
/// stream's row the arithmetic it gets alone (the general product kernels choose their method, and so their
/// rounding, by the number of rows; these do not), so a stream's numbers never depend on how many others share
/// its batch.
pub(crate) fn layer_step<C: Cell<Real = f32>>(
    cell: &C,
    inputs: StepInputs<'_>,
    next: (&mut [f32], &mut [f32]),
    buffers: &mut StepBuffers,
) {
    if inputs.batch == 0 {
        return;
    }
    products(cell, inputs, next.0.as_ptr(), buffers);
    gate_pass(cell, inputs, next, buffers);
}

/// The products of [`layer_step`] into `buffers`: `gx` and `gh` of every stream, placed against `output`, the
/// first row the gate pass will write.
pub(crate) fn products<C: Cell<Real = f32>>(
    cell: &C,
    inputs: StepInputs<'_>,
    output: *const f32,
    buffers: &mut StepBuffers,
) {
    let StepInputs { batch, input, h_prev, .. } = inputs;
    let weights = cell.weights();
    buffers.place(batch * weights.width(), output);
    let (x_at, h_at, len) = (buffers.x_at, buffers.h_at, buffers.len);
    weights.input_projection_rows(input, batch, &mut buffers.gx[x_at..x_at + len]);
    weights.recurrent_projection_rows(h_prev, batch, &mut buffers.gh[h_at..h_at + len]);
}

/// The gate pass of [`layer_step`], from the products in `buffers`, with the `h` and `c` of `inputs` (whose
/// input and, for the products, `h` may be others': a half of a layer's units gates its own units of `h`).
pub(crate) fn gate_pass<C: Cell<Real = f32>>(
    cell: &C,
    inputs: StepInputs<'_>,
    (h_next, c_next): (&mut [f32], &mut [f32]),
    buffers: &mut StepBuffers,
) {
    let StepInputs { batch, h_prev, c_prev, .. } = inputs;
    if batch == 0 {
        return;
    }
    let weights = cell.weights();
    let (width, cache) = (weights.width(), cell.inference_cache_width());
    let (output, cell_size) = (h_prev.len() / batch, c_prev.len() / batch);
    buffers.cache.resize(batch * cache, 0.0);
    let (gx, gh) = (&buffers.gx[buffers.x_at..], &buffers.gh[buffers.h_at..]);
    // A projected LSTM's gate pass ends in a product (`h = m W_hrᵀ`) through the general kernel: a stream at a
    // time, so that its rounding is a lone stream's.
    let rows = if output == weights.hidden_size() { batch } else { 1 };
    for first in (0..batch).step_by(rows) {
        let at = |width: usize| first * width..(first + rows) * width;
        cell.forward_gates(GatePass {
            batch: rows,
            gx: &gx[at(width)],
            gh: &gh[at(width)],
            h_prev: &h_prev[at(output)],
            c_prev: &c_prev[at(cell_size)],
            h_next: &mut h_next[at(output)],
            c_next: &mut c_next[at(cell_size)],
            cache: &mut buffers.cache[at(cache)],
        });
    }
}
