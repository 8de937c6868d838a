//! One time step over its running rows, forward or backward: the recurrent product then the cell's gate pass,
//! split into two halves of rows run on two threads when the step is large enough to pay for the hand-off.
//!
//! Rows of a step are independent (each batch row reads only its own state), so the halves share nothing but
//! the weights. A step of the seed case (`B32 H256` LSTM) takes about 170 µs on one core, and a hand-off to a
//! spinning Rayon worker a few µs; steps below [`PARALLEL_STEP_WORK`] stay on one thread.

use super::{Cell, ForwardPanels, GateBackward, GatePass};
use crate::kernels::Real;
use crate::kernels::packed::PackedMatrix;

/// Multiply-adds of a step's recurrent product (`rows · H_out · G·H`) from which its rows are split in two.
pub(crate) const PARALLEL_STEP_WORK: usize = 1 << 18;

/// Values per row of each buffer of a step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowWidths {
    /// `G·H`: `gx`, `gh` and their gradients.
    pub gates: usize,
    /// `H_out`: `h`.
    pub out: usize,
    /// `H` for cells with a cell state, else 0: `c`.
    pub hidden: usize,
    /// The cell's cache per row.
    pub cache: usize,
    /// The cell's backward scratch per row.
    pub scratch: usize,
    /// Whether a large step may be cut in two halves of rows on two threads.
    pub split: bool,
}

impl RowWidths {
    fn worth_splitting(&self, rows: usize) -> bool {
        self.split && rows >= 2 && rows * self.out * self.gates >= PARALLEL_STEP_WORK && on_busy_pool()
    }
}

/// Whether this thread is one of a Rayon pool's, with another thread beside it: only there is a `join` cheap (the
/// other half goes on this thread's own queue). From any other thread a `join` hands both halves over to the pool
/// and sleeps until they are done, which costs more than a step.
pub(crate) fn on_busy_pool() -> bool {
    rayon::current_thread_index().is_some() && rayon::current_num_threads() > 1
}

/// Runs `work` on one of Rayon's threads, handing it over once if this thread is not one of them, so that the
/// per-step joins inside it are cheap (see [`on_busy_pool`]).
pub(crate) fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() || rayon::current_num_threads() <= 1 {
        work()
    } else {
        rayon::scope(|_| work())
    }
}

/// Splits a row-major slice of `width` values a row after row `rows`.
fn cut<T>(s: &[T], rows: usize, width: usize) -> (&[T], &[T]) {
    s.split_at(rows * width)
}

fn cut_mut<T>(s: &mut [T], rows: usize, width: usize) -> (&mut [T], &mut [T]) {
    s.split_at_mut(rows * width)
}

/// The buffers of one forward step: [`GatePass`] plus the `gh` it is computed into.
pub(crate) struct ForwardRows<'a, T> {
    pub batch: usize,
    pub gx: &'a [T],
    pub gh: &'a mut [T],
    pub h_prev: &'a [T],
    pub c_prev: &'a [T],
    pub h_next: &'a mut [T],
    pub c_next: &'a mut [T],
    pub cache: &'a mut [T],
}

impl<'a, T: Real> ForwardRows<'a, T> {
    fn split(self, at: usize, w: RowWidths) -> (Self, Self) {
        let (gx0, gx1) = cut(self.gx, at, w.gates);
        let (gh0, gh1) = cut_mut(self.gh, at, w.gates);
        let (hp0, hp1) = cut(self.h_prev, at, w.out);
        let (cp0, cp1) = cut(self.c_prev, at, w.hidden);
        let (hn0, hn1) = cut_mut(self.h_next, at, w.out);
        let (cn0, cn1) = cut_mut(self.c_next, at, w.hidden);
        let (ca0, ca1) = cut_mut(self.cache, at, w.cache);
        (
            ForwardRows { batch: at, gx: gx0, gh: gh0, h_prev: hp0, c_prev: cp0, h_next: hn0, c_next: cn0, cache: ca0 },
            ForwardRows {
                batch: self.batch - at,
                gx: gx1,
                gh: gh1,
                h_prev: hp1,
                c_prev: cp1,
                h_next: hn1,
                c_next: cn1,
                cache: ca1,
            },
        )
    }

    fn run<C: Cell<Real = T>>(self, cell: &C, w_hh_t: ForwardPanels<'_, T>) {
        cell.weights().recurrent_projection(w_hh_t, self.h_prev, self.batch, self.gh, cell.recurrent_gates());
        cell.forward_gates(GatePass {
            batch: self.batch,
            gx: self.gx,
            gh: self.gh,
            h_prev: self.h_prev,
            c_prev: self.c_prev,
            h_next: self.h_next,
            c_next: self.c_next,
            cache: self.cache,
        });
    }
}

/// `gh ← h_{t−1} W_hhᵀ + b_hh`, then the cell's gate pass, for the rows of `step`.
pub(crate) fn forward_step<C: Cell>(
    cell: &C,
    w_hh_t: ForwardPanels<'_, C::Real>,
    step: ForwardRows<'_, C::Real>,
    w: RowWidths,
) {
    if w.worth_splitting(step.batch) {
        let half = step.batch / 2;
        let (first, second) = step.split(half, w);
        super::row_groups::count_step_halves();
        rayon::join(|| first.run(cell, w_hh_t), || second.run(cell, w_hh_t));
    } else {
        step.run(cell, w_hh_t);
    }
}

/// Splits the buffers of a backward gate pass after row `at`.
fn split_backward<'a, T>(
    pass: GateBackward<'a, T>,
    at: usize,
    w: RowWidths,
    separate: bool,
) -> (GateBackward<'a, T>, GateBackward<'a, T>) {
    let (ca0, ca1) = cut(pass.cache, at, w.cache);
    let (hp0, hp1) = cut(pass.h_prev, at, w.out);
    let (hn0, hn1) = cut(pass.h_next, at, w.out);
    let (cp0, cp1) = cut(pass.c_prev, at, w.hidden);
    let (cn0, cn1) = cut(pass.c_next, at, w.hidden);
    let (dh0, dh1) = cut(pass.dh, at, w.out);
    let (dc0, dc1) = cut(pass.dc, at, w.hidden);
    let (dgx0, dgx1) = cut_mut(pass.dgx, at, w.gates);
    let (dgh0, dgh1) = cut_mut(pass.dgh, if separate { at } else { 0 }, w.gates);
    let (dhp0, dhp1) = cut_mut(pass.dh_prev, at, w.out);
    let (dcp0, dcp1) = cut_mut(pass.dc_prev, at, w.hidden);
    let (sc0, sc1) = cut_mut(pass.scratch, at, w.scratch);
    let first = GateBackward {
        batch: at,
        cache: ca0,
        h_prev: hp0,
        h_next: hn0,
        c_prev: cp0,
        c_next: cn0,
        dh: dh0,
        dc: dc0,
        dgx: dgx0,
        dgh: dgh0,
        dh_prev: dhp0,
        dc_prev: dcp0,
        scratch: sc0,
        prepared: pass.prepared,
    };
    let second = GateBackward {
        batch: pass.batch - at,
        cache: ca1,
        h_prev: hp1,
        h_next: hn1,
        c_prev: cp1,
        c_next: cn1,
        dh: dh1,
        dc: dc1,
        dgx: dgx1,
        dgh: dgh1,
        dh_prev: dhp1,
        dc_prev: dcp1,
        scratch: sc1,
        prepared: pass.prepared,
    };
    (first, second)
}

/// The cell's backward gate pass, then `dh_{t−1} += ∂L/∂gh · W_hh`, for the rows of `pass`.
fn backward_rows<C: Cell>(cell: &C, w_hh: &PackedMatrix<C::Real>, pass: GateBackward<'_, C::Real>) {
    let GateBackward {
        batch,
        cache,
        h_prev,
        h_next,
        c_prev,
        c_next,
        dh,
        dc,
        dgx,
        dgh,
        dh_prev,
        dc_prev,
        scratch,
        prepared,
    } = pass;
    // The gate pass fills `dgx`, `dgh` and its part of `dh_prev`; the product then reads the first two and adds to
    // the third, so the pass gets them reborrowed.
    cell.backward_gates(GateBackward {
        batch,
        cache,
        h_prev,
        h_next,
        c_prev,
        c_next,
        dh,
        dc,
        dgx: &mut *dgx,
        dgh: &mut *dgh,
        dh_prev: &mut *dh_prev,
        dc_prev,
        scratch,
        prepared,
    });
    let dg_recurrent = if C::SEPARATE_RECURRENT_GRAD { &*dgh } else { &*dgx };
    cell.weights().recurrent_backward(w_hh, dg_recurrent, batch, dh_prev, cell.recurrent_gates());
}

/// The backward of one step for the rows of `pass`, split in two halves on two threads when worth it.
pub(crate) fn backward_step<C: Cell>(
    cell: &C,
    w_hh: &PackedMatrix<C::Real>,
    pass: GateBackward<'_, C::Real>,
    w: RowWidths,
) {
    if w.worth_splitting(pass.batch) {
        let half = pass.batch / 2;
        let (first, second) = split_backward(pass, half, w, C::SEPARATE_RECURRENT_GRAD);
        super::row_groups::count_step_halves();
        rayon::join(|| backward_rows(cell, w_hh, first), || backward_rows(cell, w_hh, second));
    } else {
        backward_rows(cell, w_hh, pass);
    }
}
