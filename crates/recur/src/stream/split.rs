//! One stream step on two cores, the second half on a [`StepWorker`], a thread the caller starts and any number
//! of streams share. A step is cut in two one of two ways ([`Cut`]):
//!
//! - **By units**, for a few streams. Their step is bound by reading the weights (a 2-layer LSTM of 256 units holds
//!   3.7 MB, read once per step from the last-level cache at about 70 GB/s on one Zen 3 core), not by arithmetic.
//!   Units of a layer are independent within a step: unit `u` needs only its own rows of the weights, the full
//!   input and the full `h_{t−1}`. So each core reads the rows of its half of the units, and the two meet once per
//!   layer, where the next layer needs the whole `h_t`.
//! - **By streams**, from [`STREAMS_CUT_MIN`] of them. Their step is bound by arithmetic (the products read the
//!   weights once a block of streams), and streams are independent: each core runs half of them through the whole
//!   layer, on rows that are contiguous, so that nothing is gathered or scattered.
//!
//! A hand-off through a thread pool costs microseconds, as much as a small step. The worker is a thread that spins
//! between requests, so a hand-off costs about one cache-line transfer, and parks after [`SPIN`] without work, so
//! idle streams burn no core. It only serves steps that come back to back (starting within [`SPIN`] of the start or
//! end of the last step any of its streams took): a step that comes later, or finds the worker busy with another
//! thread's stream, runs both halves on the calling thread, and so does one that finds it parked, unless the step
//! is long enough to hide the wake-up ([`WAKE_MIN_BYTES`]). So a short step never waits for a thread to wake or
//! for another stream, and streams stepped now and then (sensors at 100 Hz) leave it parked. A state builds its
//! halves at its first step (which may allocate; later ones do not).

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::layer_step::{StepBuffers, StepInputs, gate_pass, layer_step, products};
use crate::driver::{Cell, Stack};

/// How long the worker spins without a request before it parks, and the longest gap between two steps for
/// which the worker is used.
const SPIN: Duration = Duration::from_micros(250);

/// Weight bytes times streams per step from which a stack's steps are split: below it a step takes a few
/// microseconds (one stream's weights sit in one core's L2, or a few streams share them), which the two meetings
/// per layer would eat.
pub(crate) const SPLIT_MIN_BYTES: usize = 1 << 19;

/// Hidden units below which a layer is not split.
const SPLIT_MIN_UNITS: usize = 32;

/// Whether `stack`, a unidirectional stack of `f32` cells, has units enough to split when a worker is at hand
/// (whether its cells can be split, [`SplitStep::new`] finds out; whether a step is worth splitting,
/// [`SplitStep::worth_it`]).
pub(crate) fn wide_enough<C: Cell<Real = f32>>(stack: &Stack<C>) -> bool {
    stack.cells()[0].weights().hidden_size() >= SPLIT_MIN_UNITS
}

/// The two unit ranges of a layer of `hidden` units: the first a multiple of 8 (a whole number of vectors).
fn halves_of(hidden: usize) -> [Range<usize>; 2] {
    let cut = (hidden / 2).next_multiple_of(8).min(hidden - 1);
    [0..cut, cut..hidden]
}

/// How a step is cut in two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Each layer's hidden units in two halves, for every stream: each core reads half of the weights. For a few
    /// streams, whose step is bound by reading the weights.
    #[default]
    Units,
    /// The streams in two halves, each through the whole layer: each core reads all the weights, but for many
    /// streams a step is bound by arithmetic, and a half's rows are contiguous, so that nothing is gathered.
    Streams,
}

/// Weight bytes times streams from which a step hands its second half to a parked worker and wakes it (it
/// otherwise runs both halves itself): 16 MB, a step of about 50 µs or more on one core, which hides a wake-up.
const WAKE_MIN_BYTES: usize = 1 << 24;

/// Streams in a batch from which a step is cut by streams rather than by units.
const STREAMS_CUT_MIN: usize = 16;

/// One half's work buffers: the products' and gate pass's, and (for [`Cut::Units`]) the half's units of the
/// previous and next `h` and `c` gathered into rows of their own, since a gate pass reads and writes whole rows.
#[derive(Debug, Default)]
pub(crate) struct HalfWork {
    step: StepBuffers,
    h_prev: Vec<f32>,
    c_prev: Vec<f32>,
    h_next: Vec<f32>,
    c_next: Vec<f32>,
}

/// Grows `v`'s capacity to at least `n` values, so that filling it up to `n` allocates nothing.
fn room_for(v: &mut Vec<f32>, n: usize) {
    v.reserve(n.saturating_sub(v.len()));
}

impl HalfWork {
    /// Makes room for `batch` streams of a layer of at most `hidden` units and `gates` gates.
    fn reserve(&mut self, batch: usize, hidden: usize, gates: usize) {
        // No cell keeps more than `gates + 1` values a unit.
        self.step.reserve(batch, gates * hidden, (gates + 1) * hidden);
        for v in [&mut self.h_prev, &mut self.c_prev, &mut self.h_next, &mut self.c_next] {
            room_for(v, batch * hidden);
        }
    }
}

/// What the two threads run: half `half` of layer `layer`, cut as `cut`. Cut by units, `inputs` and `next` are
/// every stream's and the half writes its units of the next `h` and `c` (`B × H` each, `c` empty for cells without
/// one) and nothing else; cut by streams, they are the half's streams alone.
pub(crate) trait HalfStep: Send + Sync {
    fn run(
        &self,
        half: (usize, Cut),
        layer: usize,
        inputs: StepInputs<'_>,
        next: (&mut [f32], &mut [f32]),
        work: &mut HalfWork,
    );
}

/// Every layer of a stack whole, and as two cells of complementary units.
struct Halves<C> {
    whole: Vec<C>,
    layers: Vec<[C; 2]>,
    units: [Range<usize>; 2],
}

impl<C: Cell<Real = f32>> HalfStep for Halves<C> {
    fn run(
        &self,
        (half, cut): (usize, Cut),
        layer: usize,
        inputs: StepInputs<'_>,
        next: (&mut [f32], &mut [f32]),
        work: &mut HalfWork,
    ) {
        match cut {
            Cut::Streams => layer_step(&self.whole[layer], inputs, next, &mut work.step),
            Cut::Units => self.units_step(half, layer, inputs, next, work),
        }
    }
}

impl<C: Cell<Real = f32>> Halves<C> {
    /// Half `half` of layer `layer`'s units, for every stream: the products from the full input and `h`, the gate
    /// pass on the half's units gathered, its results scattered back.
    fn units_step(
        &self,
        half: usize,
        layer: usize,
        inputs: StepInputs<'_>,
        (h_next, c_next): (&mut [f32], &mut [f32]),
        work: &mut HalfWork,
    ) {
        let (cell, units) = (&self.layers[layer][half], self.units[half].clone());
        let StepInputs { batch, h_prev, c_prev, .. } = inputs;
        let full = h_prev.len() / batch;
        let cell_units = if C::HAS_CELL_STATE { units.clone() } else { 0..0 };
        gather(h_prev, full, units.clone(), &mut work.h_prev);
        gather(c_prev, full, cell_units.clone(), &mut work.c_prev);
        work.h_next.resize(work.h_prev.len(), 0.0);
        work.c_next.resize(work.c_prev.len(), 0.0);
        products(cell, inputs, work.h_next.as_ptr(), &mut work.step);
        let gathered = StepInputs { batch, input: &[], h_prev: &work.h_prev, c_prev: &work.c_prev };
        gate_pass(cell, gathered, (&mut work.h_next, &mut work.c_next), &mut work.step);
        scatter(&work.h_next, h_next, full, units);
        scatter(&work.c_next, c_next, full, cell_units);
    }
}

/// `to ← from[:, units]`: the `units` columns of every row of `from` (`full` values a row), row after row.
fn gather(from: &[f32], full: usize, units: Range<usize>, to: &mut Vec<f32>) {
    to.clear();
    if !units.is_empty() {
        from.chunks_exact(full).for_each(|row| to.extend_from_slice(&row[units.clone()]));
    }
}

/// `to[:, units] ← from`, for rows of `units.len()` values in `from` and of `full` in `to`.
fn scatter(from: &[f32], to: &mut [f32], full: usize, units: Range<usize>) {
    if !units.is_empty() {
        for (from, to) in from.chunks_exact(units.len()).zip(to.chunks_exact_mut(full)) {
            to[units.clone()].copy_from_slice(from);
        }
    }
}

/// What the worker reads for a request: the job, the layer, how it is cut, copies of the step's inputs (its own
/// streams' when cut by streams), the outputs it writes its half into, and its work buffers.
#[derive(Default)]
struct Slot {
    /// The halves of the state served last (kept until another state's replace them, or the worker ends).
    job: Option<Arc<dyn HalfStep>>,
    layer: usize,
    cut: Cut,
    batch: usize,
    input: Vec<f32>,
    h_prev: Vec<f32>,
    c_prev: Vec<f32>,
    h_next: Vec<f32>,
    c_next: Vec<f32>,
    work: HalfWork,
}

impl Slot {
    /// Makes room for `batch` streams of layers with inputs of at most `input` values, `hidden` units and `gates`
    /// gates.
    fn reserve(&mut self, batch: usize, input: usize, hidden: usize, gates: usize) {
        self.work.reserve(batch, hidden, gates);
        room_for(&mut self.input, batch * input);
        for v in [&mut self.h_prev, &mut self.c_prev, &mut self.h_next, &mut self.c_next] {
            room_for(v, batch * hidden);
        }
    }

    /// Copies a step's inputs in and sizes the outputs (allocating only when the sizes grew).
    fn fill(&mut self, layer: usize, cut: Cut, inputs: StepInputs<'_>) {
        (self.layer, self.cut) = (layer, cut);
        self.batch = inputs.batch;
        for (buf, from) in
            [(&mut self.input, inputs.input), (&mut self.h_prev, inputs.h_prev), (&mut self.c_prev, inputs.c_prev)]
        {
            buf.clear();
            buf.extend_from_slice(from);
        }
        self.h_next.resize(inputs.h_prev.len(), 0.0);
        self.c_next.resize(inputs.c_prev.len(), 0.0);
    }

    /// Runs the second half over the copies.
    fn run(&mut self) {
        let Slot { job, layer, cut, batch, input, h_prev, c_prev, h_next, c_next, work } = self;
        if let Some(job) = job {
            let inputs = StepInputs { batch: *batch, input, h_prev, c_prev };
            job.run((1, *cut), *layer, inputs, (h_next, c_next), work);
        }
    }

    /// Copies the second half of the outputs to `h_next`, `c_next` (`B × H` each): its units of every stream, or
    /// its streams (the last rows) whole.
    fn drain_into(&self, (h_next, c_next): (&mut [f32], &mut [f32]), units: &Range<usize>) {
        if self.cut == Cut::Streams {
            for (to, from) in [(h_next, &self.h_next), (c_next, &self.c_next)] {
                let at = to.len() - from.len();
                to[at..].copy_from_slice(from);
            }
            return;
        }
        for (to, from) in [(h_next, &self.h_next), (c_next, &self.c_next)] {
            // `c` is empty for cells without a cell state.
            if from.is_empty() {
                continue;
            }
            let full = from.len() / self.batch;
            for (to, from) in to.chunks_exact_mut(full).zip(from.chunks_exact(full)) {
                to[units.clone()].copy_from_slice(&from[units.clone()]);
            }
        }
    }
}

/// What the worker and the threads that step its streams share.
struct Shared {
    /// Number of the latest request.
    request: AtomicU64,
    /// Number of the latest request the worker finished.
    done: AtomicU64,
    /// Whether the worker is parked (or about to be): requests then run on the caller.
    parked: AtomicBool,
    /// Set when the worker must end, or has ended by a panic.
    stop: AtomicBool,
    /// What only the stepping threads write, on a cache line of its own: the worker's writes to `done` and
    /// `parked` then do not take it away from them.
    callers: Callers,
    slot: Mutex<Slot>,
    /// The halves built so far, by the layout ids of the weights they were cut from: every state of one model
    /// shares one copy (held by the states; gone when the last of them goes).
    halves: Mutex<Vec<BuiltHalves>>,
}

/// Halves a state built, under the layout ids of the weights they were cut from.
type BuiltHalves = (Vec<u64>, Weak<dyn HalfStep>);

/// The stepping threads' side of [`Shared`].
#[repr(align(128))]
struct Callers {
    /// Held by the thread whose step the worker serves, for the whole step.
    claimed: AtomicBool,
    /// When the latest step of any of its streams started or ended, in nanoseconds after `epoch` (0: never): a
    /// step of many streams may take longer than [`SPIN`].
    last_step: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A panic inside a job leaves the buffers as they are, which the next fill overwrites: nothing to recover.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the start or the end of a step; whether it came within [`SPIN`] of the start or end before it.
    fn step_event(&self) -> bool {
        let callers = &self.callers;
        let now = (callers.epoch.elapsed().as_nanos() as u64).max(1);
        let last = callers.last_step.swap(now, Ordering::Relaxed);
        last != 0 && now.saturating_sub(last) < SPIN.as_nanos() as u64
    }

    /// The halves of `stack`'s current weights: those another state of the same weights built, or new ones.
    fn shared_halves<C: Cell<Real = f32> + 'static>(
        &self,
        stack: &Stack<C>,
        units: [Range<usize>; 2],
    ) -> Option<Arc<dyn HalfStep>> {
        let ids = layout_ids(stack);
        let mut built = self.halves.lock().unwrap_or_else(PoisonError::into_inner);
        built.retain(|(_, halves)| halves.strong_count() > 0);
        if let Some(halves) = built.iter().find(|(of, _)| *of == ids).and_then(|(_, h)| h.upgrade()) {
            return Some(halves);
        }
        let new = halves(stack, units)?;
        built.push((ids, Arc::downgrade(&new)));
        Some(new)
    }

    /// Takes the worker for one step, unless another thread holds it.
    fn claim(&self) -> bool {
        self.callers.claimed.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    fn release(&self) {
        self.callers.claimed.store(false, Ordering::Release);
    }
}

/// A thread that runs the second half of large stream steps, for any number of [`StreamState`]s that the caller
/// gives it ([`StreamState::set_worker`]).
///
/// A step of a large stack (a few hundred kilobytes of weights or more) reads more weights than one core's cache
/// holds; split between the calling thread and the worker, each core reads half, and back-to-back steps of a
/// two-layer I128 H256 LSTM take about half the time. A step of many streams is bound by arithmetic; each core
/// steps half of the streams, which also about halves it. The worker spins between requests and parks after 0.25 ms
/// without one. One worker serves one step at a time: a state stepped on another thread while the worker is busy
/// runs both halves itself, with the same numbers. So one worker per core that steps streams is the most that
/// pays; a server with thousands of streams starts one, not one per stream. The states of one model that share a
/// worker share one copy of its weights and of its weights cut in halves, too.
///
/// Clones share the thread; it ends when the last clone (and every state holding one) is dropped.
///
/// [`StreamState`]: super::StreamState
/// [`StreamState::set_worker`]: super::StreamState::set_worker
#[derive(Clone)]
pub struct StepWorker {
    thread: Arc<WorkerThread>,
}

/// The worker's thread, stopped and joined when the last [`StepWorker`] goes.
struct WorkerThread {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl StepWorker {
    /// Starts the worker thread (named `recur-step-worker`); fails only when the system cannot start a thread.
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            request: AtomicU64::new(0),
            done: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            callers: Callers { claimed: AtomicBool::new(false), last_step: AtomicU64::new(0), epoch: Instant::now() },
            slot: Mutex::new(Slot::default()),
            halves: Mutex::new(Vec::new()),
        });
        let for_worker = shared.clone();
        let handle = thread::Builder::new().name("recur-step-worker".into()).spawn(move || serve(&for_worker))?;
        Ok(StepWorker { thread: Arc::new(WorkerThread { shared, handle: Some(handle) }) })
    }

    fn shared(&self) -> &Shared {
        &self.thread.shared
    }

    fn unpark(&self) {
        if let Some(handle) = &self.thread.handle {
            handle.thread().unpark();
        }
    }
}

impl std::fmt::Debug for StepWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Handles: this one, its clones, and those the states it serves hold.
        f.debug_struct("StepWorker").field("handles", &Arc::strong_count(&self.thread)).finish()
    }
}

/// A stack's steps split in two, and the worker that runs the second halves.
pub(crate) struct SplitStep {
    worker: StepWorker,
    job: Arc<dyn HalfStep>,
    /// [`crate::driver::CellWeights::layout_id`] of every layer the halves were built from.
    ids: Vec<u64>,
    /// Bytes of the weights of the whole stack.
    bytes: usize,
    units: [Range<usize>; 2],
    /// This thread's work buffers.
    work: HalfWork,
    /// Whether the current step came within [`SPIN`] of the worker's step before it.
    back_to_back: bool,
    /// Whether the current step holds the worker.
    claimed: bool,
}

impl std::fmt::Debug for SplitStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitStep").field("units", &self.units).field("layers", &self.ids.len()).finish()
    }
}

fn layout_ids<C: Cell>(stack: &Stack<C>) -> Vec<u64> {
    stack.cells().iter().map(|c| c.weights().layout_id()).collect()
}

impl SplitStep {
    /// The halves of `stack`, run by `worker`, or `None` when its cells cannot be split (see
    /// [`wide_enough`]).
    pub(crate) fn new<C: Cell<Real = f32> + 'static>(stack: &Stack<C>, worker: StepWorker) -> Option<Self> {
        let hidden = stack.cells()[0].weights().hidden_size();
        let units = halves_of(hidden);
        let job = worker.shared().shared_halves(stack, units.clone())?;
        let work = HalfWork::default();
        let (ids, bytes) = (layout_ids(stack), stack.weight_bytes());
        Some(SplitStep { worker, job, ids, bytes, units, work, back_to_back: false, claimed: false })
    }

    /// Whether a step of `batch` streams is worth splitting: from [`SPLIT_MIN_BYTES`] of weights times streams.
    pub(crate) fn worth_it(&self, batch: usize) -> bool {
        self.bytes.saturating_mul(batch) >= SPLIT_MIN_BYTES
    }

    /// The worker that runs the second halves.
    pub(crate) fn worker(&self) -> &StepWorker {
        &self.worker
    }

    /// Marks the start of a step (before its first layer): whether it comes back to back decides whether the
    /// worker serves it.
    pub(crate) fn begin_step(&mut self) {
        let shared = self.worker.shared();
        self.back_to_back = shared.step_event();
        // Held for the whole step: one atomic exchange a step, not one a layer.
        self.claimed = self.back_to_back && shared.claim();
    }

    /// Marks the end of a step (after its last layer): the worker is free for another thread's stream.
    pub(crate) fn end_step(&mut self) {
        let shared = self.worker.shared();
        shared.step_event();
        if std::mem::take(&mut self.claimed) {
            shared.release();
        }
    }

    /// Makes room in both halves' buffers for `batch` streams of a stack with layer inputs of at most `input`
    /// values and `hidden` units of `gates` gates, so that the steps after it allocate nothing.
    pub(crate) fn reserve(&mut self, batch: usize, input: usize, hidden: usize, gates: usize) {
        self.work.reserve(batch, hidden, gates);
        self.worker.shared().slot().reserve(batch, input, hidden, gates);
    }

    /// Whether the halves were built from `stack`'s current weights.
    pub(crate) fn is_current<C: Cell>(&self, stack: &Stack<C>) -> bool {
        self.ids.len() == stack.cells().len()
            && stack.cells().iter().zip(&self.ids).all(|(c, &id)| c.weights().layout_id() == id)
    }

    /// Rebuilds the halves from `stack`'s current weights (the model changed since they were built).
    pub(crate) fn rebuild<C: Cell<Real = f32> + 'static>(&mut self, stack: &Stack<C>) -> bool {
        let Some(job) = self.worker.shared().shared_halves(stack, self.units.clone()) else { return false };
        self.job = job;
        (self.ids, self.bytes) = (layout_ids(stack), stack.weight_bytes());
        true
    }

    /// One step of layer `layer` for every stream: from its input (`B × I_l`) and previous `h`, `c` (`B × H`;
    /// `c` empty without a cell state) to the next `h`, `c`. This thread runs the first half from the borrowed
    /// slices; the worker runs the second from copies, or this thread does when there is no worker for the step.
    pub(crate) fn layer_step(
        &mut self,
        layer: usize,
        batch: usize,
        input: &[f32],
        (h_prev, c_prev): (&[f32], &[f32]),
        (h_next, c_next): (&mut [f32], &mut [f32]),
    ) {
        let inputs = StepInputs { batch, input, h_prev, c_prev };
        let cut = if batch >= STREAMS_CUT_MIN { Cut::Streams } else { Cut::Units };
        // Cut by streams, the first half takes whole blocks of rows of the product kernels.
        let first = (batch / 2).next_multiple_of(4).min(batch);
        let (mine, theirs) = match cut {
            Cut::Units => (inputs, inputs),
            Cut::Streams => (inputs.rows(0..first), inputs.rows(first..batch)),
        };
        let shared = self.worker.shared();
        // A parked worker is woken for a step long enough to hide the wait, and otherwise left parked.
        let awake = self.bytes.saturating_mul(batch) >= WAKE_MIN_BYTES || !shared.parked.load(Ordering::SeqCst);
        let on_worker = self.claimed && awake && !shared.stop.load(Ordering::Acquire);
        let mut request = 0;
        if on_worker {
            let mut slot = shared.slot();
            slot.fill(layer, cut, theirs);
            // The worker runs this state's halves. Handed over only when another state's were there, so that
            // back-to-back steps of one stream touch no reference count the worker reads beside the halves.
            if !slot.job.as_ref().is_some_and(|job| Arc::ptr_eq(job, &self.job)) {
                slot.job = Some(self.job.clone());
            }
            drop(slot);
            request = shared.request.load(Ordering::Relaxed) + 1;
            shared.request.store(request, Ordering::SeqCst);
        }
        // Wakes a parked worker for the next back-to-back request, and one that parked after `parked` was read
        // for this one (cheap when it is not parked: no system call).
        if self.back_to_back {
            self.worker.unpark();
        }
        // Without a worker for this step (asleep, busy with another thread's stream, or the step is not back to
        // back), this thread runs the second half too.
        let halves: &[usize] = if on_worker { &[0] } else { &[0, 1] };
        for &half in halves {
            let inputs = if half == 0 { mine } else { theirs };
            let next = match cut {
                // Both halves write into every stream's rows, each its own units.
                Cut::Units => (&mut *h_next, &mut *c_next),
                Cut::Streams => {
                    let rows = if half == 0 { 0..first } else { first..batch };
                    (&mut h_next[rows_of(&rows, h_prev, batch)], &mut c_next[rows_of(&rows, c_prev, batch)])
                }
            };
            self.job.run((half, cut), layer, inputs, next, &mut self.work);
        }
        if on_worker {
            wait_for(shared, request);
            shared.slot().drain_into((h_next, c_next), &self.units[1]);
        }
    }
}

/// The values of `rows` in `v`, a row-major array of `batch` rows.
fn rows_of(rows: &Range<usize>, v: &[f32], batch: usize) -> Range<usize> {
    let width = v.len() / batch;
    rows.start * width..rows.end * width
}

/// Waits until the worker has done request `request`, or runs it on this thread if the worker died in a job (a
/// bug).
fn wait_for(shared: &Shared, request: u64) {
    while shared.done.load(Ordering::Acquire) != request {
        if shared.stop.load(Ordering::Acquire) {
            shared.slot().run();
            break;
        }
        std::hint::spin_loop();
    }
}

/// The halves of every layer of `stack`, or `None` when a cell cannot be split.
fn halves<C: Cell<Real = f32> + 'static>(stack: &Stack<C>, units: [Range<usize>; 2]) -> Option<Arc<dyn HalfStep>> {
    let layers = stack
        .cells()
        .iter()
        .map(|c| Some([c.unit_slice(units[0].clone())?, c.unit_slice(units[1].clone())?]))
        .collect::<Option<Vec<_>>>()?;
    Some(Arc::new(Halves { whole: stack.cells().to_vec(), layers, units }))
}

/// The worker: waits for a request (spinning, then parked), runs the second half, says it is done.
fn serve(shared: &Shared) {
    let mut seen = 0;
    loop {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let request = shared.request.load(Ordering::SeqCst);
            if request != seen {
                seen = request;
                break;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 10) && idle_since.elapsed() > SPIN {
                shared.parked.store(true, Ordering::SeqCst);
                // A request made before `parked` was seen is picked up here, before parking; every later one
                // unparks this thread, and so does the end.
                if shared.request.load(Ordering::SeqCst) == seen && !shared.stop.load(Ordering::Acquire) {
                    thread::park();
                }
                shared.parked.store(false, Ordering::SeqCst);
                idle_since = Instant::now();
            }
            std::hint::spin_loop();
        }
        let ran = catch_unwind(AssertUnwindSafe(|| shared.slot().run()));
        if ran.is_err() {
            shared.stop.store(true, Ordering::Release);
            return;
        }
        shared.done.store(seen, Ordering::Release);
    }
}

impl Drop for SplitStep {
    /// A step that ended by a panic between its first and last layer still gives the worker back.
    fn drop(&mut self) {
        self.end_step();
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(worker) = self.handle.take() {
            worker.thread().unpark();
            // The worker only ends by seeing `stop`; a panic in it was caught, so joining cannot fail.
            let _ = worker.join();
        }
    }
}
