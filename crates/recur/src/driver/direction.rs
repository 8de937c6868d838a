//! One cell over time in one direction, forward and backward: the time loop. Rows are in the order of
//! [`Batching`], so the rows running at a step are a prefix of the batch: a step computes only those.

use num_traits::Zero;

use super::batching::{Batching, Step};
use std::ops::Range;

use super::row_groups::{row_groups, run_groups};
use super::split::{ForwardRows, RowWidths, backward_step, forward_step};
use super::{Cell, ExtraGradInputs, GateBackward, WeightGradInputs};
use super::{Direction, DirectionTrace};
use crate::kernels::Real;
use crate::kernels::packed::PackedMatrix;
use crate::scratch;

/// The initial state of one direction of one layer, as row-major `B × size` slices.
#[derive(Clone, Copy)]
pub(crate) struct Initial<'a, T> {
    pub h: &'a [T],
    pub c: &'a [T],
}

/// Where a forward writes each sequence's final state, as row-major `B × size` slices.
pub(crate) struct FinalState<'a, T> {
    pub h: &'a mut [T],
    pub c: &'a mut [T],
}

/// What a forward pass keeps of its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Every step's cell state and cache, for a backward pass (training).
    Trace,
    /// Only what the next step reads (inference).
    Outputs,
}

/// How a direction's rows share the threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// A large batch walks time as one group of rows per thread (see [`row_groups`]): a unidirectional layer, or
    /// a lone cell.
    InGroups,
    /// One group, each large step's rows cut in halves: the two directions of a bidirectional layer, which
    /// already run side by side.
    StepHalves,
}

/// Whether a backward pass makes the gradient of its input (`∂X = ∂G·W_ih`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputGrad {
    /// Made: a layer below, or an input that wants its gradient.
    Wanted,
    /// Skipped, as PyTorch skips it for an input that does not require one.
    Skipped,
}

/// One direction's walk over a time-major sequence: its input, its lengths, which way, how its rows share the
/// threads.
#[derive(Clone, Copy)]
pub(crate) struct Walk<'a, T> {
    /// `(T, B, I)`.
    pub x: &'a [T],
    pub batching: &'a Batching,
    pub direction: Direction,
    pub rows: Rows,
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

/// The sizes one direction's time loop works with.
struct Dims {
    steps: usize,
    batch: usize,
    /// `G·H`, the pre-activations per row.
    width: usize,
    /// `H_out`.
    out: usize,
    /// `H` for cells with a cell state, else 0.
    hidden: usize,
    /// `B·H_out`.
    state_len: usize,
    /// `B·H` (or 0).
    cell_len: usize,
    cache_width: usize,
}

impl Dims {
    fn of<C: Cell>(cell: &C, batching: &Batching) -> Self {
        let (steps, batch) = (batching.active().len(), batching.lengths().len());
        let out = cell.output_size();
        let hidden = if C::HAS_CELL_STATE { cell.weights().hidden_size() } else { 0 };
        Dims {
            steps,
            batch,
            width: C::GATES * cell.weights().hidden_size(),
            out,
            hidden,
            state_len: batch * out,
            cell_len: batch * hidden,
            cache_width: cell.cache_width(),
        }
    }

    /// [`Dims::of`] for a forward pass: without `keep` (no backward follows), the cache is the cell's
    /// [`Cell::inference_cache_width`].
    fn forward<C: Cell>(cell: &C, batching: &Batching, keep: Keep) -> Self {
        let keep = keep == Keep::Trace;
        let dims = Self::of(cell, batching);
        Dims { cache_width: if keep { dims.cache_width } else { cell.inference_cache_width() }, ..dims }
    }
}

/// The state a step reads for its first `active` rows: rows that ran at the previous step continue from its
/// output `prev` (`prev_active` rows of it), rows that start at this step read the initial state. Copies into
/// `buf` only when both kinds are present (the reverse direction of a variable-length batch).
fn previous_rows<'a, T: Copy>(
    prev: Option<&'a [T]>,
    initial: &'a [T],
    prev_active: usize,
    active: usize,
    width: usize,
    buf: &'a mut [T],
) -> &'a [T] {
    match prev {
        Some(p) if active <= prev_active => &p[..active * width],
        Some(p) if prev_active > 0 => {
            buf[..prev_active * width].copy_from_slice(&p[..prev_active * width]);
            buf[prev_active * width..active * width].copy_from_slice(&initial[prev_active * width..active * width]);
            &buf[..active * width]
        }
        _ => &initial[..active * width],
    }
}

/// Runs one cell over time in one direction. Returns every `h_t` (`y`, `(T, B, H_out)`, zeros past each
/// sequence's end) and, with [`Keep::Trace`], the cell states and caches of every step; writes each sequence's
/// final state (at its own last step, for the forward direction) into `final_state`.
pub(crate) fn run_direction<C: Cell>(
    cell: &C,
    walk: Walk<'_, C::Real>,
    initial: Initial<'_, C::Real>,
    keep: Keep,
    final_state: FinalState<'_, C::Real>,
) -> DirectionTrace<C::Real> {
    let Dims { steps, batch, width, .. } = Dims::of(cell, walk.batching);
    let chunk = input_chunk_steps(steps, batch, width, std::mem::size_of::<C::Real>());
    run_direction_in_chunks(cell, walk, initial, keep, final_state, chunk)
}

/// [`run_direction`] with the input projection made `chunk` steps at a time.
fn run_direction_in_chunks<C: Cell>(
    cell: &C,
    walk: Walk<'_, C::Real>,
    initial: Initial<'_, C::Real>,
    keep: Keep,
    final_state: FinalState<'_, C::Real>,
    chunk: usize,
) -> DirectionTrace<C::Real> {
    let Walk { x, batching, direction, rows: row_split } = walk;
    let FinalState { h: h_n, c: c_n } = final_state;
    let in_groups = row_split == Rows::InGroups;
    let Dims { steps, batch, width, out, hidden, state_len, cell_len, cache_width } =
        Dims::forward(cell, batching, keep);
    let keeps_trace = keep == Keep::Trace;
    // Inference keeps two cell-state slots (previous, next) and one cache slot; training keeps every step's.
    let (c_slots, cache_slots) = if keeps_trace { (steps, steps) } else { (2, 1) };
    // Every step writes each running row of `c` and the cache before anything reads it, so without padding they
    // need no zeros; `y` is the output, zeros past each sequence's end.
    let full = batching.is_full();
    let mut y = scratch::take(steps * state_len);
    let mut c = scratch::take_written(c_slots * cell_len, full);
    let mut cache = scratch::take_written(cache_slots * batch * cache_width, full);

    // A large batch walks time as one group of rows per thread, each group alone (see `row_groups`); otherwise
    // as one group, each large step's rows cut in halves.
    let groups = row_groups(batch, batch * out * width, in_groups);
    let split = groups.len() == 1;
    let split_projection = split && in_groups;
    let ctx = ForwardContext { cell, x, batching, direction, initial, keep, chunk, split, split_projection };
    let jobs: Vec<GroupForward<'_, C::Real>> = per_group_rows(&mut y, steps, batch, out, &groups)
        .into_iter()
        .zip(per_group_rows(&mut c, c_slots, batch, hidden, &groups))
        .zip(per_group_rows(&mut cache, cache_slots, batch, cache_width, &groups))
        .zip(groups.iter().cloned())
        .map(|(((y, c), cache), rows)| GroupForward { rows, y, c, cache })
        .collect();
    run_groups(jobs, |job| ctx.run(job));

    for (row, &length) in batching.lengths().iter().enumerate() {
        let t_last = match direction {
            Direction::Forward => length - 1,
            Direction::Reverse => 0,
        };
        let slot = if keeps_trace { t_last } else { direction.time(t_last, steps) % 2 };
        h_n[row * out..(row + 1) * out].copy_from_slice(&y[t_last * state_len + row * out..][..out]);
        c_n[row * hidden..(row + 1) * hidden].copy_from_slice(&c[slot * cell_len + row * hidden..][..hidden]);
    }
    let (h0, c0) = if keeps_trace { (initial.h.to_vec(), initial.c.to_vec()) } else { (Vec::new(), Vec::new()) };
    DirectionTrace { h0, c0, y, c, cache }
}

/// What every row group of a direction's forward reads.
struct ForwardContext<'a, C: Cell> {
    cell: &'a C,
    x: &'a [C::Real],
    batching: &'a Batching,
    direction: Direction,
    initial: Initial<'a, C::Real>,
    keep: Keep,
    chunk: usize,
    /// Whether a large step's rows may be cut in halves on two threads (one group for the whole batch).
    split: bool,
    /// Whether a chunk's input projection may be cut in halves on two threads (one group for the whole batch,
    /// and no other direction beside it).
    split_projection: bool,
}

/// One row group's share of a direction's forward: its rows of every slot of `h`, `c` and the cache (a slice a
/// slot: every step's for `h`; every step's for `c` and the cache in training, two and one in inference).
struct GroupForward<'a, T> {
    rows: Range<usize>,
    y: Vec<&'a mut [T]>,
    c: Vec<&'a mut [T]>,
    cache: Vec<&'a mut [T]>,
}

impl<C: Cell> ForwardContext<'_, C> {
    /// The time loop for the rows of `job`.
    fn run(&self, job: GroupForward<'_, C::Real>) {
        let zero = C::Real::zero();
        let (cell, batching, direction, chunk) = (self.cell, self.batching, self.direction, self.chunk);
        let Dims { steps, batch, width, out, hidden, cache_width, .. } = Dims::forward(cell, batching, self.keep);
        let weights = cell.weights();
        let GroupForward { rows, mut y, mut c, mut cache } = job;
        let (r0, g) = (rows.start, rows.len());
        let within = |active: usize| active.clamp(r0, rows.end) - r0;
        let initial_h = &self.initial.h[r0 * out..(r0 + g) * out];
        let initial_c = &self.initial.c[r0 * hidden..(r0 + g) * hidden];

        // The input projection runs a chunk of steps at a time into a buffer that stays in cache, rather than for
        // the whole sequence at once (whose `T·B·G·H` values can reach 100 MB, written and read back from memory).
        // A group of part of the batch gathers its rows of the chunk's input first, for one product.
        let in_size = weights.input_size();
        // Every value of both is written before it is read.
        let mut gx = scratch::take_unzeroed(chunk * g * width);
        let mut x_rows = if g < batch { scratch::take_unzeroed(chunk * g * in_size) } else { Vec::new() };
        let mut gx_first = 0;
        let mut gh = vec![zero; g * width];
        let (mut h_buf, mut c_buf) = (vec![zero; g * out], vec![zero; g * hidden]);
        let w_hh_t = weights.packed_forward();
        let row_widths = RowWidths { gates: width, out, hidden, cache: cache_width, scratch: 0, split: self.split };

        for s in 0..steps {
            if s % chunk == 0 {
                let times = direction.times(s..(s + chunk).min(steps), steps);
                let x_chunk = &self.x[times.start * batch * in_size..times.end * batch * in_size];
                let x_chunk = if g < batch {
                    for (to, from) in x_rows.chunks_exact_mut(g * in_size).zip(x_chunk.chunks_exact(batch * in_size)) {
                        to.copy_from_slice(&from[r0 * in_size..(r0 + g) * in_size]);
                    }
                    &x_rows[..times.len() * g * in_size]
                } else {
                    x_chunk
                };
                weights.input_projection(
                    x_chunk,
                    times.len() * g,
                    &mut gx[..times.len() * g * width],
                    self.split_projection,
                );
                gx_first = times.start;
            }
            let Some(Step { t, prev, active, prev_active }) = batching.step(direction, s) else { continue };
            let (a, a_prev) = (within(active), within(prev_active));
            if a == 0 {
                continue;
            }
            let (y_prev, y_cur) = slot_pair(&mut y, initial_h, t, prev);
            let h_prev = previous_rows(prev.map(|_| y_prev), initial_h, a_prev, a, out, &mut h_buf);
            let (c_prev_slot, c_cur) = if self.keep == Keep::Trace {
                slot_pair(&mut c, initial_c, t, prev)
            } else {
                slot_pair(&mut c, initial_c, s % 2, (s > 0).then(|| (s - 1) % 2))
            };
            let c_prev = previous_rows(prev.map(|_| c_prev_slot), initial_c, a_prev, a, hidden, &mut c_buf);
            let slot = if self.keep == Keep::Trace { t } else { 0 };
            let step_rows = ForwardRows {
                batch: a,
                gx: &gx[(t - gx_first) * g * width..((t - gx_first) * g + a) * width],
                gh: &mut gh[..a * width],
                h_prev,
                c_prev,
                h_next: &mut y_cur[..a * out],
                c_next: &mut c_cur[..a * hidden],
                cache: &mut cache[slot][..a * cache_width],
            };
            forward_step(cell, w_hh_t, step_rows, row_widths);
        }
        scratch::give(gx);
        scratch::give(x_rows);
    }
}

/// Slot `prev` of `slots` (or `start` when there is none) to read, and slot `current` to write.
fn slot_pair<'a, T>(
    slots: &'a mut [&mut [T]],
    start: &'a [T],
    current: usize,
    prev: Option<usize>,
) -> (&'a [T], &'a mut [T]) {
    match prev {
        None => (start, &mut *slots[current]),
        Some(p) if p < current => {
            let (before, after) = slots.split_at_mut(current);
            (&*before[p], &mut *after[0])
        }
        Some(p) => {
            let (before, after) = slots.split_at_mut(p);
            (&*after[0], &mut *before[current])
        }
    }
}

/// Steps per chunk of the input projection: enough rows for the product to run at full speed (at least
/// [`CHUNK_MIN_ROWS`]), otherwise as many as fit in [`CHUNK_BYTES`].
fn input_chunk_steps(steps: usize, batch: usize, width: usize, value_size: usize) -> usize {
    let step_bytes = (batch * width * value_size).max(1);
    let by_size = CHUNK_BYTES / step_bytes;
    let by_rows = CHUNK_MIN_ROWS.div_ceil(batch.max(1));
    by_size.max(by_rows).clamp(1, steps.max(1))
}

/// Bytes of input pre-activations per chunk: well inside the last-level cache.
const CHUNK_BYTES: usize = 2 << 20;
/// Rows below which the input projection's product loses speed.
const CHUNK_MIN_ROWS: usize = 256;

/// Backpropagation through time for one cell in one direction (the input's gradient only with [`InputGrad::Wanted`];
/// else `DirectionGrads::x` is empty). `dy` holds `∂L/∂h_t` from above for every step;
/// it is zeroed past each sequence's end (PyTorch ignores gradients at padded positions, whose outputs are
/// constant zeros) and turned, in place, into the total `∂L/∂h_t` (from above and from the next step).
/// `walk.rows` as in [`run_direction`].
pub(crate) fn backward_direction<C: Cell>(
    cell: &mut C,
    walk: Walk<'_, C::Real>,
    trace: &DirectionTrace<C::Real>,
    mut dy: Vec<C::Real>,
    final_grad: Final<'_, C::Real>,
    input_grad: InputGrad,
) -> DirectionGrads<C::Real> {
    let Walk { x, batching, direction, rows: row_split } = walk;
    let (in_groups, want_dx) = (row_split == Rows::InGroups, input_grad == InputGrad::Wanted);
    let zero = C::Real::zero();
    let Dims { steps, batch, width, out, hidden, state_len, cell_len, .. } = Dims::of(&*cell, batching);
    let active = batching.active();
    let rows = steps * batch;

    // Every step's gate pass writes the gradients of its running rows; the weight gradients' products read every
    // row, so only padding needs zeros.
    let full = batching.is_full();
    let mut dgx = scratch::take_written(rows * width, full);
    let mut dgh = scratch::take_written(if C::SEPARATE_RECURRENT_GRAD { rows * width } else { 0 }, full);
    let (mut dh0, mut dc0) = (vec![zero; state_len], vec![zero; cell_len]);
    let mut prepared = vec![zero; cell.prepared_len()];
    cell.prepare_backward(&mut prepared);
    let w_hh = cell.weights().packed_backward();
    for (t, &a) in active.iter().enumerate() {
        dy[t * state_len + a * out..(t + 1) * state_len].fill(zero);
    }

    // A large batch walks time as one group of rows per thread, each group alone (see `row_groups`); otherwise
    // as one group, each large step's rows cut in halves.
    let groups = row_groups(batch, batch * out * width, in_groups);
    let split = groups.len() == 1;
    let dgx_rows = per_group_rows(&mut dgx, steps, batch, width, &groups);
    // Empty for cells whose two pre-activations share a gradient: every group then gets no slices.
    let dgh_rows = per_group_rows(&mut dgh, steps, batch, width, &groups);
    let dy_rows = per_group_rows(&mut dy, steps, batch, out, &groups);
    let dh0_parts = split_lengths(&mut dh0, groups.iter().map(|g| g.len() * out));
    let dc0_parts = split_lengths(&mut dc0, groups.iter().map(|g| g.len() * hidden));
    let ctx =
        BackwardContext { cell: &*cell, w_hh, trace, batching, direction, final_grad, prepared: &prepared, split };
    let jobs: Vec<_> = groups
        .iter()
        .cloned()
        .zip(dgx_rows)
        .zip(dgh_rows)
        .zip(dy_rows)
        .zip(dh0_parts.into_iter().zip(dc0_parts))
        .map(|((((rows, dgx), dgh), dy), (dh0, dc0))| GroupBackward { rows, dgx, dgh, dy, dh0, dc0 })
        .collect();
    run_groups(jobs, |job| ctx.run(job));

    let in_size = cell.weights().input_size();
    // The product overwrites every value of `dx`.
    let mut dx = scratch::take_unzeroed(if want_dx { rows * in_size } else { 0 });
    if want_dx {
        cell.weights().input_backward(&dgx, rows, &mut dx);
    }
    let h_prev_all = previous_states(trace, batching, direction, out);
    let dgh_all = if C::SEPARATE_RECURRENT_GRAD { &dgh } else { &dgx };
    cell.weights_mut().accumulate_grads(WeightGradInputs { x, dgx: &dgx, dgh: dgh_all, h_prev: &h_prev_all });
    cell.accumulate_extra_grads(ExtraGradInputs { dh: &dy, cache: &trace.cache, dgx: &dgx });
    [dgx, dgh, h_prev_all, dy].into_iter().for_each(scratch::give);
    DirectionGrads { x: dx, h0: dh0, c0: dc0 }
}

/// What every row group of a direction's backward reads.
struct BackwardContext<'a, C: Cell> {
    cell: &'a C,
    w_hh: &'a PackedMatrix<C::Real>,
    trace: &'a DirectionTrace<C::Real>,
    batching: &'a Batching,
    direction: Direction,
    final_grad: Final<'a, C::Real>,
    prepared: &'a [C::Real],
    /// Whether a large step's rows may be cut in halves on two threads (one group for the whole batch).
    split: bool,
}

/// One row group's share of a direction's backward: its rows of every step of `∂gx`, `∂gh` and `∂y` (a slice a
/// step, in time order), and its rows of `∂h_0`, `∂c_0`.
struct GroupBackward<'a, T> {
    rows: Range<usize>,
    dgx: Vec<&'a mut [T]>,
    dgh: Vec<&'a mut [T]>,
    dy: Vec<&'a mut [T]>,
    dh0: &'a mut [T],
    dc0: &'a mut [T],
}

impl<C: Cell> BackwardContext<'_, C> {
    /// The time loop of the backward pass for the rows of `job`.
    fn run(&self, job: GroupBackward<'_, C::Real>) {
        let zero = C::Real::zero();
        let cell = self.cell;
        let Dims { steps, batch, width, out, hidden, state_len, cell_len, cache_width } = Dims::of(cell, self.batching);
        let GroupBackward { rows, mut dgx, mut dgh, mut dy, dh0, dc0 } = job;
        let (r0, g) = (rows.start, rows.len());
        // The group's count of the rows running at a step (the running rows are a prefix of the batch).
        let within = |active: usize| active.clamp(r0, rows.end) - r0;
        let trace = self.trace;
        let group = |slice: Option<&[C::Real]>, width: usize| slice.map(|s| s[r0 * width..(r0 + g) * width].to_vec());
        let mut dh = group(self.final_grad.h, out).unwrap_or_else(|| vec![zero; g * out]);
        let mut dc = group(self.final_grad.c, hidden).unwrap_or_else(|| vec![zero; g * hidden]);
        let (mut dh_prev, mut dc_prev) = (vec![zero; g * out], vec![zero; g * hidden]);
        let (mut h_buf, mut c_buf) = (vec![zero; g * out], vec![zero; g * hidden]);
        let scratch_width = cell.scratch_width();
        let mut scratch = vec![zero; g * scratch_width];
        let (h0, c0) = (&trace.h0[r0 * out..(r0 + g) * out], &trace.c0[r0 * hidden..(r0 + g) * hidden]);
        let row_widths =
            RowWidths { gates: width, out, hidden, cache: cache_width, scratch: scratch_width, split: self.split };
        for s in (0..steps).rev() {
            let Some(Step { t, prev, active, prev_active }) = self.batching.step(self.direction, s) else { continue };
            let (a, a_prev) = (within(active), within(prev_active));
            if a == 0 {
                continue;
            }
            let dy_t = &mut dy[t][..a * out];
            dy_t.iter_mut().zip(&dh).for_each(|(d, &h)| *d += h);
            let y_prev = prev.map(|p| &trace.y[p * state_len + r0 * out..p * state_len + (r0 + g) * out]);
            let h_prev = previous_rows(y_prev, h0, a_prev, a, out, &mut h_buf);
            let c_prev_slot = prev.map(|p| &trace.c[p * cell_len + r0 * hidden..p * cell_len + (r0 + g) * hidden]);
            let c_prev = previous_rows(c_prev_slot, c0, a_prev, a, hidden, &mut c_buf);
            let cache_at = (t * batch + r0) * cache_width;
            let pass = GateBackward {
                batch: a,
                cache: &trace.cache[cache_at..cache_at + a * cache_width],
                h_prev,
                h_next: &trace.y[t * state_len + r0 * out..][..a * out],
                c_prev,
                c_next: &trace.c[t * cell_len + r0 * hidden..][..a * hidden],
                dh: dy_t,
                dc: &dc[..a * hidden],
                dgx: &mut dgx[t][..a * width],
                dgh: if C::SEPARATE_RECURRENT_GRAD { &mut dgh[t][..a * width] } else { &mut [] },
                dh_prev: &mut dh_prev[..a * out],
                dc_prev: &mut dc_prev[..a * hidden],
                scratch: &mut scratch[..a * scratch_width],
                prepared: self.prepared,
            };
            backward_step(cell, self.w_hh, pass, row_widths);
            // Rows that ran at the previous step pass their gradient on; rows that started here read the initial
            // state, so theirs is the initial state's.
            let continuing = a.min(a_prev);
            dh[..continuing * out].copy_from_slice(&dh_prev[..continuing * out]);
            dc[..continuing * hidden].copy_from_slice(&dc_prev[..continuing * hidden]);
            if a > a_prev {
                dh0[a_prev * out..a * out].copy_from_slice(&dh_prev[a_prev * out..a * out]);
                dc0[a_prev * hidden..a * hidden].copy_from_slice(&dc_prev[a_prev * hidden..a * hidden]);
            }
        }
    }
}

/// Every group's rows of each of the `steps` consecutive `batch × width` blocks of `buf`, one mutable slice a
/// block and group: `out[g][t]` is group `g`'s rows of block `t`.
fn per_group_rows<'a, T>(
    buf: &'a mut [T],
    steps: usize,
    batch: usize,
    width: usize,
    groups: &[Range<usize>],
) -> Vec<Vec<&'a mut [T]>> {
    let mut out: Vec<Vec<&'a mut [T]>> = groups.iter().map(|_| Vec::with_capacity(steps)).collect();
    if batch * width == 0 {
        out.iter_mut().for_each(|g| g.extend((0..steps).map(|_| <&mut [T]>::default())));
        return out;
    }
    for block in buf.chunks_exact_mut(batch * width) {
        for (part, rows) in split_lengths(block, groups.iter().map(|r| r.len() * width)).into_iter().zip(&mut out) {
            rows.push(part);
        }
    }
    out
}

/// `buf` cut into consecutive pieces of the given lengths (which add up to at most its length).
fn split_lengths<T>(mut buf: &mut [T], lengths: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for len in lengths {
        let (piece, rest) = std::mem::take(&mut buf).split_at_mut(len);
        out.push(piece);
        buf = rest;
    }
    out
}

/// `h_{t−1}` as every step read it, `(T, B, H_out)` (zeros for rows that did not run), so that
/// `∂W_hh = Σ_t ∂gh_tᵀ h_{t−1}` is one product after the time loop.
fn previous_states<T: Real>(
    trace: &DirectionTrace<T>,
    batching: &Batching,
    direction: Direction,
    out: usize,
) -> Vec<T> {
    let (steps, batch) = (batching.active().len(), batching.lengths().len());
    let state_len = batch * out;
    let mut all = scratch::take_written(steps * state_len, batching.is_full());
    for s in 0..steps {
        let Some(Step { t, prev, active: a, prev_active: a_prev }) = batching.step(direction, s) else { continue };
        let dst = &mut all[t * state_len..t * state_len + a * out];
        let continuing = a.min(a_prev);
        if let Some(p) = prev {
            dst[..continuing * out].copy_from_slice(&trace.y[p * state_len..p * state_len + continuing * out]);
        }
        if a > a_prev {
            dst[a_prev * out..].copy_from_slice(&trace.h0[a_prev * out..a * out]);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_pairs_point_at_neighbours() {
        let mut y: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let start = [9.0, 9.0];
        let mut slots: Vec<&mut [f32]> = y.chunks_exact_mut(2).collect();
        let (p, c) = slot_pair(&mut slots, &start, 1, Some(0));
        assert_eq!((p.to_vec(), c.to_vec()), (vec![0.0, 1.0], vec![2.0, 3.0]));
        let (p, c) = slot_pair(&mut slots, &start, 1, Some(2));
        assert_eq!((p.to_vec(), c.to_vec()), (vec![4.0, 5.0], vec![2.0, 3.0]));
        let (p, _) = slot_pair(&mut slots, &start, 2, None);
        assert_eq!(p.to_vec(), vec![9.0, 9.0]);
    }

    #[test]
    fn per_group_rows_cut_every_block_into_the_groups_rows() {
        let mut buf: Vec<u32> = (0..12).collect();
        let parts = per_group_rows(&mut buf, 2, 3, 2, &[0..1, 1..3]);
        assert_eq!(parts[0], vec![&mut [0, 1][..], &mut [6, 7][..]]);
        assert_eq!(parts[1], vec![&mut [2, 3, 4, 5][..], &mut [8, 9, 10, 11][..]]);
    }
    use crate::cells::{LstmCell, LstmCellConfig};
    use rand::SeedableRng;

    #[test]
    fn chunks_of_the_input_projection_change_nothing() {
        let (steps, batch, input) = (7, 3, 4);
        let cell = LstmCell::new(LstmCellConfig::new(input, 5), &mut rand::rngs::StdRng::seed_from_u64(3)).unwrap();
        let x: Vec<f32> = (0..steps * batch * input).map(|i| (i as f32 * 0.31).sin()).collect();
        let (h0, c0) = (vec![0.1f32; batch * 5], vec![-0.2f32; batch * 5]);
        let initial = Initial { h: &h0, c: &c0 };
        for lengths in [None, Some(&[7usize, 2, 5][..])] {
            let batching = Batching::new(steps, batch, lengths);
            for direction in [Direction::Forward, Direction::Reverse] {
                let run = |chunk| {
                    let (mut h_n, mut c_n) = (vec![0.0; batch * 5], vec![0.0; batch * 5]);
                    let walk = Walk { x: &x, batching: &batching, direction, rows: Rows::InGroups };
                    let final_state = FinalState { h: &mut h_n, c: &mut c_n };
                    let trace = run_direction_in_chunks(&cell, walk, initial, Keep::Trace, final_state, chunk);
                    (trace.y.clone(), trace.c.clone(), h_n, c_n)
                };
                // The gemm crate may round differently for another number of rows: equal up to the last bits.
                let flat = |(y, c, h, cn): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)| [y, c, h, cn].concat();
                let whole = flat(run(steps));
                for chunk in [1, 2, 3, 6] {
                    let got = flat(run(chunk));
                    assert_eq!(got.len(), whole.len());
                    for (i, (a, b)) in got.iter().zip(&whole).enumerate() {
                        assert!((a - b).abs() <= 1e-6, "chunk {chunk}, {direction:?}, {lengths:?} [{i}]: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn chunks_hold_enough_rows_or_fit_the_budget() {
        // B32, G·H = 1024, f32: 128 KB a step, so 16 steps fit 2 MB.
        assert_eq!(input_chunk_steps(50, 32, 1024, 4), 16);
        // B1: 256 rows are wanted before the budget binds.
        assert_eq!(input_chunk_steps(1000, 1, 1 << 20, 4), 256);
        assert_eq!(input_chunk_steps(5, 1, 16, 4), 5);
        assert_eq!(input_chunk_steps(0, 0, 0, 4), 1);
    }
}
