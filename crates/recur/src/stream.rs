//! Streaming inference: a unidirectional [`Recurrent`] layer fed one time step (or one chunk of steps) at a
//! time, its state kept between calls, for one stream or a batch of independent streams.
//!
//! Streaming is a mode of the same model, not another implementation: a step runs each layer's input projection,
//! recurrent projection and fused gate pass — the very cells and weights [`Recurrent::forward`] runs — so a
//! sequence fed step by step gives the full-sequence results (to rounding, ≤ 1e-6). Only the time loop differs:
//! it is the caller's. After construction a [`StreamState::step`] allocates nothing: every buffer lives in the
//! state and is reused.
//!
//! A running anomaly score over sensor readings: a GRU and a linear head predict the next reading, and a reading
//! far from its prediction is suspicious. Midway the stream is parked as bytes and resumed, as a server would do
//! to move it to another machine.
//!
//! ```
//! use rand::SeedableRng;
//! use recur::{Linear, Recurrent, RecurrentConfig, StreamState};
//!
//! // Three sensor channels. The weights are random here; in practice they come from `Recurrent::load`.
//! let gru = Recurrent::with_seed(RecurrentConfig::gru(3, 16), 7)?;
//! let head = Linear::new(16, 3, true, &mut rand::rngs::StdRng::seed_from_u64(7))?;
//!
//! let mut stream = StreamState::new(&gru, 1)?; // one stream, zero initial state
//! let mut prediction = [0.0f32; 3];
//! let mut score = 0.0f32; // exponentially weighted mean of the squared prediction error
//! let mut worst = (0, 0.0f32);
//! for t in 0..200 {
//!     let phase = t as f32 * 0.1;
//!     let spike = if t == 150 { 50.0 } else { 0.0 };
//!     let reading = [phase.sin(), phase.cos(), spike];
//!     let error: f32 = reading.iter().zip(&prediction).map(|(x, p)| (x - p).powi(2)).sum();
//!     score = 0.9 * score + 0.1 * error;
//!     if error > worst.1 {
//!         worst = (t, error);
//!     }
//!     let h = stream.step(&gru, &reading)?; // one time step; no allocation
//!     head.forward_into(h, 1, &mut prediction)?;
//!     if t == 100 {
//!         let parked: Vec<u8> = stream.to_bytes(); // store it anywhere…
//!         stream = StreamState::from_bytes(&gru, &parked)?; // …and resume, exactly where it was
//!     }
//! }
//! assert_eq!(worst.0, 150, "the spike is the most surprising reading");
//! assert!(score.is_finite());
//! # Ok::<(), recur::Error>(())
//! ```

pub mod bytes;
mod layer_step;
mod split;

use crate::driver::{Cell, Stack};
use crate::error::{Error, Result};
use crate::layer::{Cells, Mode, Recurrent};
use crate::tensor::Tensor;
use layer_step::{StepBuffers, StepInputs, layer_step};
use split::SplitStep;
pub use split::StepWorker;

/// The state of `B` independent streams through one unidirectional [`Recurrent`] layer: per layer `l`, the
/// hidden state `h_l` (`B × H_out`) and, for an LSTM, the cell state `c_l` (`B × H`), plus the work buffers of
/// one step.
///
/// Each call to [`StreamState::step`] advances every stream by one time step `t`, layer by layer, exactly as the
/// full-sequence forward does:
///
/// ```text
/// gx = W_ih x_t + b_ih      gh = W_hh h_{t−1} + b_hh      h_t, c_t = gates(gx, gh, h_{t−1}, c_{t−1})
/// ```
///
/// with `x_t` the input for the first layer and the layer below's `h_t` for the others. The state does not hold
/// the model: every call takes it, and checks that its mode and sizes are the ones the state was made for. So
/// one model can serve any number of states, and a state can be cloned, reset, parked as bytes
/// ([`StreamState::to_bytes`]) and resumed, and its streams removed and added, between steps.
#[derive(Clone, Debug)]
pub struct StreamState {
    sizes: Sizes,
    batch: usize,
    /// Per layer, `h_l`, `B × H_out`.
    h: Vec<Vec<f32>>,
    /// Per layer, `c_l`, `B × H` (empty for cells without a cell state).
    c: Vec<Vec<f32>>,
    scratch: Scratch,
}

/// What a state must agree on with the model that advances it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sizes {
    mode: Mode,
    layers: usize,
    input: usize,
    hidden: usize,
    /// `H_out`: the projection size of a projected LSTM, else `hidden`.
    output: usize,
    /// Values per batch row a cell's inference pass keeps ([`Cell::inference_cache_width`]): none, but for a
    /// projected LSTM's `m`, which its gate pass reads back.
    cache: usize,
}

/// The buffers of one step (every stream's pre-activations), shared by the layers (which run one after another)
/// and reused by every step.
#[derive(Clone, Debug, Default)]
struct Scratch {
    step: StepBuffers,
    h_next: Vec<f32>,
    c_next: Vec<f32>,
    two_cores: TwoCores,
}

/// Whether steps can run on two cores ([`split`]), decided at the first step after a worker is given.
#[derive(Debug, Default)]
enum TwoCores {
    /// On the calling thread alone: no worker was given (the default).
    #[default]
    Off,
    /// A worker was given; whether the stack can be split is decided at the next step (a new or cloned state).
    Undecided(StepWorker),
    /// On the calling thread alone: the stack has too few units or cannot be split, though a worker was given.
    Unsplittable(StepWorker),
    /// Split, with the worker, when a step's work is worth it ([`SplitStep::worth_it`]).
    On(Box<SplitStep>),
}

impl TwoCores {
    fn worker(&self) -> Option<&StepWorker> {
        match self {
            TwoCores::Off => None,
            TwoCores::Undecided(w) | TwoCores::Unsplittable(w) => Some(w),
            TwoCores::On(step) => Some(step.worker()),
        }
    }
}

impl Clone for TwoCores {
    /// A clone shares the worker and decides afresh (its halves are its own).
    fn clone(&self) -> Self {
        self.worker().map_or(TwoCores::Off, |w| TwoCores::Undecided(w.clone()))
    }
}

impl Sizes {
    /// The sizes of `model`'s state, or why it cannot stream.
    fn of(model: &Recurrent) -> Result<Self> {
        let config = model.config();
        if config.bidirectional {
            return Err(Error::config(
                "streaming needs a unidirectional model, found bidirectional=true: the reverse direction reads the \
                 sequence from its last step, which a stream has not seen yet",
            ));
        }
        let cache = match model.cells() {
            Cells::Rnn(s) => first_cell(s).inference_cache_width(),
            Cells::Lstm(s) => first_cell(s).inference_cache_width(),
            Cells::Gru(s) => first_cell(s).inference_cache_width(),
        };
        Ok(Sizes {
            mode: config.mode,
            layers: config.num_layers,
            input: config.input_size,
            hidden: config.hidden_size,
            output: config.output_size(),
            cache,
        })
    }

    /// Size of a cell state row: `H` for an LSTM, 0 for cells without a cell state.
    fn cell(&self) -> usize {
        if self.mode == Mode::Lstm { self.hidden } else { 0 }
    }

    /// The header that describes `batch` streams of this kind of model.
    fn header(&self, batch: usize) -> bytes::Header {
        let Sizes { mode, layers, input, hidden, output, .. } = *self;
        bytes::Header { mode, layers, batch, input, hidden, output }
    }

    fn describe(&self) -> String {
        self.header(0).describe()
    }
}

fn first_cell<C: Cell>(stack: &Stack<C>) -> &C {
    stack.cell(0, 0)
}

impl StreamState {
    /// `batch` streams of `model`, all starting from the zero state (as `forward` without `h_0`, `c_0`).
    ///
    /// A batch may be empty, to be filled with [`StreamState::append`]. Fails for a bidirectional model, whose
    /// reverse direction needs the end of the sequence before its first output.
    pub fn new(model: &Recurrent, batch: usize) -> Result<Self> {
        let sizes = Sizes::of(model)?;
        let layers = sizes.layers;
        let mut state = StreamState {
            sizes,
            batch,
            h: vec![vec![0.0; batch * sizes.output]; layers],
            c: vec![vec![0.0; batch * sizes.cell()]; layers],
            scratch: Scratch::default(),
        };
        state.fit_scratch();
        Ok(state)
    }

    /// `batch` streams of `model` starting from given states, zeros where absent, as `forward`'s `h_0`, `c_0`:
    ///
    /// - `h0`: `(L, B, H_out)`, or `(L, H_out)` when `batch == 1`;
    /// - `c0`: LSTM only, `(L, B, H)`, or `(L, H)` when `batch == 1`.
    pub fn with_initial(model: &Recurrent, batch: usize, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Self> {
        let mut state = Self::new(model, batch)?;
        let sizes = state.sizes;
        if let Some(h0) = h0 {
            check_state_shape("h_0", h0, sizes.layers, batch, sizes.output)?;
            split_layers(h0.data(), &mut state.h);
        }
        match (c0, sizes.mode) {
            (Some(c0), Mode::Lstm) => {
                check_state_shape("c_0", c0, sizes.layers, batch, sizes.hidden)?;
                split_layers(c0.data(), &mut state.c);
            }
            (Some(_), mode) => return Err(Error::config(format!("c_0 was given, but {mode} has no cell state"))),
            (None, _) => {}
        }
        Ok(state)
    }

    /// Number of streams `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Advances every stream by one time step. `x` is the step's input, row-major `B × I` (one row per stream);
    /// returns the last layer's new `h_t`, row-major `B × H_out`, which is also that step's output.
    ///
    /// Allocates nothing. Fails when `x` has another length or `model` is not the kind of model the state was
    /// made for; the state is then unchanged.
    pub fn step(&mut self, model: &Recurrent, x: &[f32]) -> Result<&[f32]> {
        self.check_model(model)?;
        let want = self.batch * self.sizes.input;
        if x.len() != want {
            let expected = format!("[{}, {}] (B × I = {want} values)", self.batch, self.sizes.input);
            return Err(Error::shape("input", expected, &[x.len()]));
        }
        match model.cells() {
            Cells::Rnn(s) => self.advance(s, x),
            Cells::Lstm(s) => self.advance(s, x),
            Cells::Gru(s) => self.advance(s, x),
        }
        Ok(self.output())
    }

    /// [`StreamState::step`] on a tensor: `x` is `(B, I)`, or `(I)` when `B == 1`; the output has the same rank,
    /// `(B, H_out)` or `(H_out)`.
    pub fn step_tensor(&mut self, model: &Recurrent, x: &Tensor) -> Result<Tensor> {
        let (batch, input) = (self.batch, self.sizes.input);
        let shape = match *x.shape() {
            [i] if i == input && batch == 1 => vec![self.sizes.output],
            [b, i] if b == batch && i == input => vec![batch, self.sizes.output],
            _ => {
                return Err(Error::shape(
                    "input",
                    format!("[{batch}, {input}] (B, I){}", or_unbatched(batch, input)),
                    x.shape(),
                ));
            }
        };
        let out = self.step(model, x.data())?;
        Ok(Tensor::from_parts(shape, out.to_vec()))
    }

    /// Advances every stream by a chunk of `T` steps: `x` is time-major `(T, B, I)`, or `(T, I)` when `B == 1`
    /// (a layer's `batch_first` does not apply: a stream's chunk is always time-major). Returns the last layer's
    /// `h_t` at every step, `(T, B, H_out)` or `(T, H_out)`.
    pub fn step_chunk(&mut self, model: &Recurrent, x: &Tensor) -> Result<Tensor> {
        self.check_model(model)?;
        let (batch, input, output) = (self.batch, self.sizes.input, self.sizes.output);
        let (steps, shape) = match *x.shape() {
            [t, i] if i == input && batch == 1 => (t, vec![t, output]),
            [t, b, i] if b == batch && i == input => (t, vec![t, batch, output]),
            _ => {
                let unbatched = if batch == 1 { format!(" or [T, {input}]") } else { String::new() };
                return Err(Error::shape("input", format!("[T, {batch}, {input}] (T, B, I){unbatched}"), x.shape()));
            }
        };
        let mut out = vec![0.0; steps * batch * output];
        let rows = x.data().chunks_exact(batch * input).zip(out.chunks_exact_mut(batch * output));
        for (x_t, y_t) in rows {
            y_t.copy_from_slice(self.step(model, x_t)?);
        }
        Ok(Tensor::from_parts(shape, out))
    }

    /// The last layer's current `h`, row-major `B × H_out`: the output of the latest step (or the initial state
    /// before any).
    pub fn output(&self) -> &[f32] {
        self.h.last().expect("a model has at least one layer")
    }

    /// Every layer's current `h`, `(L, B, H_out)`: PyTorch's `h_n` after the steps taken so far.
    pub fn h_n(&self) -> Tensor {
        Tensor::from_parts(vec![self.sizes.layers, self.batch, self.sizes.output], self.h.concat())
    }

    /// LSTM only: every layer's current cell state, `(L, B, H)`: PyTorch's `c_n` after the steps taken so far.
    pub fn c_n(&self) -> Option<Tensor> {
        (self.sizes.mode == Mode::Lstm)
            .then(|| Tensor::from_parts(vec![self.sizes.layers, self.batch, self.sizes.hidden], self.c.concat()))
    }

    /// Sets every stream back to the zero state.
    pub fn reset(&mut self) {
        self.h.iter_mut().chain(&mut self.c).for_each(|s| s.fill(0.0));
    }

    /// Sets stream `index` back to the zero state (a new sequence in its slot), leaving the others as they are.
    pub fn reset_stream(&mut self, index: usize) -> Result<()> {
        self.check_index(index)?;
        let (output, cell) = (self.sizes.output, self.sizes.cell());
        self.h.iter_mut().for_each(|h| h[index * output..(index + 1) * output].fill(0.0));
        self.c.iter_mut().for_each(|c| c[index * cell..(index + 1) * cell].fill(0.0));
        Ok(())
    }

    /// Values of one stream's state: every layer's `h` (`H_out` each), then, for an LSTM, every layer's `c` (`H`
    /// each). What [`StreamState::read_stream`] and [`StreamState::write_stream`] move.
    pub fn stream_len(&self) -> usize {
        self.sizes.layers * (self.sizes.output + self.sizes.cell())
    }

    /// Copies stream `index`'s state into `into` ([`StreamState::stream_len`] values), allocating nothing: with
    /// [`StreamState::write_stream`] and [`StreamState::set_batch`], a server moves the streams whose inputs have
    /// arrived into one batch, steps it, and keeps each stream's state in its own store between steps.
    pub fn read_stream(&self, index: usize, into: &mut [f32]) -> Result<()> {
        self.check_index(index)?;
        self.check_stream_len(into.len())?;
        let (output, cell) = (self.sizes.output, self.sizes.cell());
        let (h_part, c_part) = into.split_at_mut(self.sizes.layers * output);
        for (to, h) in h_part.chunks_exact_mut(output.max(1)).zip(&self.h) {
            to.copy_from_slice(&h[index * output..(index + 1) * output]);
        }
        for (to, c) in c_part.chunks_exact_mut(cell.max(1)).zip(&self.c) {
            to.copy_from_slice(&c[index * cell..(index + 1) * cell]);
        }
        Ok(())
    }

    /// Sets stream `index`'s state from `from` ([`StreamState::stream_len`] values, laid out as
    /// [`StreamState::read_stream`] writes them), leaving the other streams as they are. Allocates nothing.
    pub fn write_stream(&mut self, index: usize, from: &[f32]) -> Result<()> {
        self.check_index(index)?;
        self.check_stream_len(from.len())?;
        let (output, cell) = (self.sizes.output, self.sizes.cell());
        let (h_part, c_part) = from.split_at(self.sizes.layers * output);
        for (from, h) in h_part.chunks_exact(output.max(1)).zip(&mut self.h) {
            h[index * output..(index + 1) * output].copy_from_slice(from);
        }
        for (from, c) in c_part.chunks_exact(cell.max(1)).zip(&mut self.c) {
            c[index * cell..(index + 1) * cell].copy_from_slice(from);
        }
        Ok(())
    }

    /// Sets the number of streams to `batch`: the streams past it are dropped, new ones start from the zero state.
    /// Allocates only when the batch grows past the largest it has had.
    pub fn set_batch(&mut self, batch: usize) {
        let (output, cell) = (self.sizes.output, self.sizes.cell());
        for h in &mut self.h {
            h.truncate(self.batch.min(batch) * output);
            h.resize(batch * output, 0.0);
        }
        for c in &mut self.c {
            c.truncate(self.batch.min(batch) * cell);
            c.resize(batch * cell, 0.0);
        }
        self.batch = batch;
        self.fit_scratch();
    }

    /// Takes stream `index` out of the batch and returns it as a state of its own (`B = 1`). The streams after it
    /// move down one index; their states are untouched.
    pub fn remove(&mut self, index: usize) -> Result<StreamState> {
        self.check_index(index)?;
        let (output, cell) = (self.sizes.output, self.sizes.cell());
        let take = |rows: &mut Vec<Vec<f32>>, width: usize| -> Vec<Vec<f32>> {
            rows.iter_mut().map(|r| r.drain(index * width..(index + 1) * width).collect()).collect()
        };
        let mut removed = StreamState {
            sizes: self.sizes,
            batch: 1,
            h: take(&mut self.h, output),
            c: take(&mut self.c, cell),
            scratch: Scratch::default(),
        };
        removed.fit_scratch();
        self.batch -= 1;
        self.fit_scratch();
        Ok(removed)
    }

    /// Adds the streams of `other` at the end of the batch (indices `B..B + other.batch()`), with their states:
    /// `StreamState::new(model, 1)` adds a fresh stream, a state from [`StreamState::remove`] or
    /// [`StreamState::from_bytes`] resumes one. Fails when `other` was made for another kind of model.
    pub fn append(&mut self, other: &StreamState) -> Result<()> {
        if other.sizes != self.sizes {
            return Err(Error::config(format!(
                "cannot append streams of {} to streams of {}",
                other.sizes.describe(),
                self.sizes.describe()
            )));
        }
        for (mine, theirs) in self.h.iter_mut().zip(&other.h).chain(self.c.iter_mut().zip(&other.c)) {
            mine.extend_from_slice(theirs);
        }
        self.batch += other.batch;
        self.fit_scratch();
        Ok(())
    }

    /// The state as bytes, to be restored by [`StreamState::from_bytes`] (on this or another machine). The format
    /// is versioned and checksummed; see the [`bytes`] module's documentation for its layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        bytes::encode(&self.sizes.header(self.batch), &self.h, &self.c)
    }

    /// Restores a state saved by [`StreamState::to_bytes`] for `model`. Fails with [`Error::Decode`] when the
    /// bytes are not a stream state, are of an unknown version, are corrupt or truncated, or were saved for a
    /// model of another mode or sizes.
    pub fn from_bytes(model: &Recurrent, bytes: &[u8]) -> Result<StreamState> {
        let sizes = Sizes::of(model)?;
        let decoded = bytes::decode(bytes)?;
        let expected = sizes.header(decoded.header.batch);
        if !decoded.header.same_model(&expected) {
            let (saved, model) = (decoded.header.describe(), expected.describe());
            return Err(bytes::decode_error(format!("saved for {saved}, but the model is {model}")));
        }
        let mut state =
            StreamState { sizes, batch: expected.batch, h: decoded.h, c: decoded.c, scratch: Scratch::default() };
        state.fit_scratch();
        Ok(state)
    }

    /// One step of every layer, from `x` (`B × I`, already checked): [`layer_step`] for each. The layers share the
    /// scratch buffers: a layer's new state is swapped in, and its old one becomes the next layer's scratch.
    fn advance<C: Cell<Real = f32> + 'static>(&mut self, stack: &Stack<C>, x: &[f32]) {
        // An empty batch has nothing to split (and nothing to compute).
        if self.batch > 0 && self.split_ready(stack) {
            return self.advance_split(x);
        }
        let (batch, input_size, output) = (self.batch, self.sizes.input, self.sizes.output);
        let s = &mut self.scratch;
        for (layer, c) in self.c.iter_mut().enumerate() {
            let (below, here) = self.h.split_at_mut(layer);
            let input = below.last().map_or(&x[..batch * input_size], |h| &h[..batch * output]);
            let h = &mut here[0];
            let inputs = StepInputs { batch, input, h_prev: h, c_prev: c };
            layer_step(stack.cell(layer, 0), inputs, (&mut s.h_next, &mut s.c_next), &mut s.step);
            std::mem::swap(h, &mut s.h_next);
            std::mem::swap(c, &mut s.c_next);
        }
    }

    /// Whether this step runs on two cores: decides at the first step whether the stack can be split, rebuilds
    /// the halves when the model's weights changed since they were built, and splits a step whose work is worth
    /// it.
    fn split_ready<C: Cell<Real = f32> + 'static>(&mut self, stack: &Stack<C>) -> bool {
        let two_cores = &mut self.scratch.two_cores;
        if let TwoCores::Undecided(worker) = two_cores {
            let worker = worker.clone();
            *two_cores = match split::wide_enough(stack).then(|| SplitStep::new(stack, worker.clone())).flatten() {
                Some(step) => TwoCores::On(Box::new(step)),
                None => TwoCores::Unsplittable(worker),
            };
            self.fit_scratch();
        }
        let batch = self.batch;
        match &mut self.scratch.two_cores {
            TwoCores::On(step) => step.worth_it(batch) && (step.is_current(stack) || step.rebuild(stack)),
            _ => false,
        }
    }

    /// [`Self::advance`] with each layer's units split between this thread and the worker.
    fn advance_split(&mut self, x: &[f32]) {
        let (input_size, output) = (self.sizes.input, self.sizes.output);
        let batch = self.batch;
        let s = &mut self.scratch;
        let TwoCores::On(step) = &mut s.two_cores else { return };
        step.begin_step();
        for (layer, c) in self.c.iter_mut().enumerate() {
            let (below, here) = self.h.split_at_mut(layer);
            let input = below.last().map_or(&x[..batch * input_size], |h| &h[..batch * output]);
            let h = &mut here[0];
            step.layer_step(layer, batch, input, (h, c), (&mut s.h_next, &mut s.c_next));
            std::mem::swap(h, &mut s.h_next);
            std::mem::swap(c, &mut s.c_next);
        }
        step.end_step();
    }

    /// Whether steps of the current batch run split in two, on two cores when they come back to back (known
    /// after the first step with a worker; see [`StreamState::set_worker`]).
    pub fn on_two_cores(&self) -> bool {
        matches!(&self.scratch.two_cores, TwoCores::On(step) if step.worth_it(self.batch))
    }

    /// Lets this state's steps use `worker`, a second thread that runs half of each step, or (`None`)
    /// keeps them on the calling thread alone, which is the default: a state never starts a thread.
    ///
    /// With a worker, a step large enough to pay (from 512 KB of weights times streams in the batch, and 32 hidden
    /// units, a projected LSTM excepted) runs its layers in two halves, the calling thread's and the worker's, when
    /// steps come back to back (within 0.25 ms of the end of the worker's last step): each half of the units for a
    /// few streams, each half of the streams from 16. A step that comes later, or finds the worker busy with a
    /// stream stepped on another thread, or parked (unless the step is long enough to hide its waking), runs on the
    /// calling thread alone. The numbers are the same either way. One worker can serve any number of states (see
    /// [`StepWorker`]).
    pub fn set_worker(&mut self, worker: Option<&StepWorker>) {
        self.scratch.two_cores = worker.map_or(TwoCores::Off, |w| TwoCores::Undecided(w.clone()));
    }

    /// Sizes the scratch buffers for the current batch (allocating only when the batch grew).
    fn fit_scratch(&mut self) {
        let (b, s) = (self.batch, self.sizes);
        let width = s.mode.gates() * s.hidden;
        let scratch = &mut self.scratch;
        scratch.step.reserve(b, width, s.cache);
        scratch.h_next.resize(b * s.output, 0.0);
        scratch.c_next.resize(b * s.cell(), 0.0);
        if let TwoCores::On(step) = &mut scratch.two_cores {
            step.reserve(b, s.input.max(s.output), s.hidden, s.mode.gates());
        }
    }

    fn check_model(&self, model: &Recurrent) -> Result<()> {
        let theirs = Sizes::of(model)?;
        if theirs != self.sizes {
            return Err(Error::config(format!(
                "the stream state was made for {}, but the model is {}",
                self.sizes.describe(),
                theirs.describe()
            )));
        }
        Ok(())
    }

    fn check_stream_len(&self, len: usize) -> Result<()> {
        let want = self.stream_len();
        if len != want {
            let layout = format!("{want} values (L·H_out for h, then L·H for an LSTM's c)");
            return Err(Error::shape("stream state", layout, &[len]));
        }
        Ok(())
    }

    fn check_index(&self, index: usize) -> Result<()> {
        if index >= self.batch {
            return Err(Error::Index {
                what: "stream index".into(),
                index: index.to_string(),
                valid: format!("0..{} for a batch of {}", self.batch, self.batch),
            });
        }
        Ok(())
    }
}

/// Checks an initial state `(L, B, size)`, also accepting `(L, size)` for a single stream.
fn check_state_shape(what: &str, t: &Tensor, layers: usize, batch: usize, size: usize) -> Result<()> {
    let ok = match *t.shape() {
        [l, b, s] => (l, b, s) == (layers, batch, size),
        [l, s] => (l, s) == (layers, size) && batch == 1,
        _ => false,
    };
    if !ok {
        let expected = format!("[{layers}, {batch}, {size}] (L, B, H){}", or_unbatched_state(batch, layers, size));
        return Err(Error::shape(what, expected, t.shape()));
    }
    Ok(())
}

fn or_unbatched(batch: usize, input: usize) -> String {
    if batch == 1 { format!(" or [{input}]") } else { String::new() }
}

fn or_unbatched_state(batch: usize, layers: usize, size: usize) -> String {
    if batch == 1 { format!(" or [{layers}, {size}]") } else { String::new() }
}

/// Copies a layer-major `(L, B, size)` array into one buffer per layer.
fn split_layers(data: &[f32], layers: &mut [Vec<f32>]) {
    let mut rest = data;
    for layer in layers {
        let (mine, after) = rest.split_at(layer.len());
        layer.copy_from_slice(mine);
        rest = after;
    }
}
