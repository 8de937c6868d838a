//! Multi-layer, optionally bidirectional recurrent layers with PyTorch's `nn.RNN`, `nn.LSTM` and `nn.GRU`
//! semantics: shapes, parameter names, state ordering.

mod config;
mod lone_cell;
mod stored;

pub use config::{Mode, RecurrentConfig};
pub use lone_cell::{CellCache, CellGrads};

use rand::Rng;

use crate::cells::{
    GRU_ACTIVATIONS, GruCell, GruCellConfig, LSTM_ACTIVATIONS, LstmCell, LstmCellConfig, Nonlinearity, RnnCell,
    RnnCellConfig,
};
use crate::driver::Cell;
use crate::driver::{InitialStates, InputGrad, Sequences, Stack, StackOutput, StackTrace};
use crate::error::{Error, Result};
use crate::params::{Module, Param, ParamMut, ParamRef, Trainable};
use crate::scratch;
use crate::tensor::{Tensor, swap_leading_axes};

/// The cells of a layer, of the kind its mode names.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cells {
    Rnn(Stack<RnnCell>),
    Lstm(Stack<LstmCell>),
    Gru(Stack<GruCell>),
}

/// A recurrent layer: PyTorch's `nn.RNN`, `nn.LSTM` or `nn.GRU`, chosen by [`RecurrentConfig::mode`].
///
/// **Threads.** The whole-sequence passes (`forward*`, `backward*`) may use Rayon's global pool, or the pool
/// they are called inside (`ThreadPool::install`): a large batch walks time as one group of rows per thread,
/// the two directions of a bidirectional layer run side by side, and large products split their rows. The
/// results are bit for bit those of one thread; a pool of one thread keeps everything on the calling thread.
/// Streaming ([`crate::StreamState`]) runs on the calling thread unless it is given a [`crate::StepWorker`].
///
/// ```
/// use recur::{Recurrent, RecurrentConfig, Tensor};
///
/// let lstm = Recurrent::with_seed(RecurrentConfig::lstm(3, 8).num_layers(2), 0).unwrap();
/// let x = Tensor::zeros([5, 4, 3]); // (T, B, I)
/// let out = lstm.forward(&x, None, None).unwrap();
/// assert_eq!(out.output.shape(), &[5, 4, 8]);
/// assert_eq!(out.h_n.shape(), &[2, 4, 8]);
/// assert_eq!(out.c_n.unwrap().shape(), &[2, 4, 8]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Recurrent {
    config: RecurrentConfig,
    cells: Cells,
}

/// The results of [`Recurrent::forward`], shaped as PyTorch shapes them.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentOutput {
    /// `(T, B, D·H_out)`, `(B, T, D·H_out)` when batch-first, or `(T, D·H_out)` for unbatched input: the last
    /// layer's `h_t` at every step, forward direction first.
    pub output: Tensor,
    /// `(L·D, B, H_out)` or `(L·D, H_out)`: the final `h` of every layer and direction, layer-major. The reverse
    /// direction's final state is the one after reading the first time step.
    pub h_n: Tensor,
    /// LSTM only: `(L·D, B, H)` or `(L·D, H)`, the final cell states.
    pub c_n: Option<Tensor>,
}

/// Batch geometry of one call, after the input's shape has been checked.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    steps: usize,
    batch: usize,
    unbatched: bool,
}

impl Recurrent {
    /// A layer with PyTorch's default initialisation, every parameter uniform in `±1/√hidden_size`, drawn from
    /// `rng`; then, when [`RecurrentConfig::forget_bias`] is set, the forget slice `[H, 2H)` of every `bias_ih`
    /// takes that value (the random draws are the same as without it).
    pub fn new(config: RecurrentConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut layer = Self::zeros(config)?;
        let hidden = layer.config.hidden_size;
        crate::params::init_uniform(layer.named_params_mut(), hidden, rng);
        if let Some(value) = layer.config.forget_bias {
            // PyTorch's LSTM gate order is (i, f, g, o), so the forget gate is the second block of rows.
            for p in layer.named_params_mut().into_iter().filter(|p| p.name.starts_with("bias_ih_l")) {
                p.data[hidden..2 * hidden].fill(value);
            }
        }
        Ok(layer)
    }

    /// [`Recurrent::new`] with a seeded standard RNG.
    pub fn with_seed(config: RecurrentConfig, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        Self::new(config, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// A layer with all parameters zero, to be filled by [`Module::load_state_dict`].
    pub fn zeros(config: RecurrentConfig) -> Result<Self> {
        config.validate()?;
        let d = config.directions();
        let inputs: Vec<usize> =
            (0..config.num_layers).flat_map(|l| std::iter::repeat_n(config.layer_input_size(l), d)).collect();
        let (hidden_size, bias, clip) = (config.hidden_size, config.bias, config.clip);
        let activations = |direction: usize| config.direction_activations(direction);
        let cells = match config.mode {
            Mode::Lstm => Cells::Lstm(build_stack(&inputs, d, |input_size, direction| {
                LstmCell::zeros(LstmCellConfig {
                    bias,
                    proj_size: config.proj_size,
                    activations: activations(direction).map_or(LSTM_ACTIVATIONS, |a| [a[0], a[1], a[2]]),
                    clip,
                    peepholes: config.peepholes,
                    input_forget: config.input_forget,
                    ..LstmCellConfig::new(input_size, hidden_size)
                })
            })?),
            Mode::Gru => Cells::Gru(build_stack(&inputs, d, |input_size, direction| {
                GruCell::zeros(GruCellConfig {
                    bias,
                    activations: activations(direction).map_or(GRU_ACTIVATIONS, |a| [a[0], a[1]]),
                    clip,
                    linear_before_reset: config.linear_before_reset,
                    ..GruCellConfig::new(input_size, hidden_size)
                })
            })?),
            Mode::RnnTanh | Mode::RnnRelu => {
                let nonlinearity = if config.mode == Mode::RnnRelu { Nonlinearity::Relu } else { Nonlinearity::Tanh };
                Cells::Rnn(build_stack(&inputs, d, |input_size, direction| {
                    RnnCell::zeros(RnnCellConfig {
                        bias,
                        nonlinearity,
                        activation: activations(direction).map(|a| a[0]),
                        clip,
                        ..RnnCellConfig::new(input_size, hidden_size)
                    })
                })?)
            }
        };
        Ok(Recurrent { config, cells })
    }

    /// The configuration.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// The stacks of cells, for the modes that run them outside the full-sequence driver (streaming).
    pub(crate) fn cells(&self) -> &Cells {
        &self.cells
    }

    /// Changes the dropout probability between layers used by [`Recurrent::forward_train`] (0 turns it off, as
    /// PyTorch's `eval()` does for the gradients of a model in evaluation mode).
    pub fn set_dropout(&mut self, p: f32) -> Result<()> {
        RecurrentConfig { dropout: p, ..self.config.clone() }.validate()?;
        self.config.dropout = p;
        Ok(())
    }

    /// Runs the layer over a whole sequence, as PyTorch's `forward(input, hx)`.
    ///
    /// - `input`: `(T, B, I)`, or `(B, T, I)` when `batch_first`, or unbatched `(T, I)`.
    /// - `h0`: `(L·D, B, H_out)` (unbatched: `(L·D, H_out)`); zeros when `None`.
    /// - `c0`: LSTM only, `(L·D, B, H)` (unbatched: `(L·D, H)`); zeros when `None`.
    ///
    /// Every shape is checked: a mismatch is an [`Error::Shape`] naming the tensor, the expected shape and the
    /// one found. Dropout is not applied (this is inference, PyTorch's eval mode).
    pub fn forward(&self, input: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<RecurrentOutput> {
        let (geometry, x) = self.prepare(input, h0, c0)?;
        let (h0, c0) = (h0.map(Tensor::data), c0.map(Tensor::data));
        let (steps, batch) = (geometry.steps, geometry.batch);
        let out = match &self.cells {
            Cells::Rnn(s) => s.forward(&x, steps, batch, h0, c0),
            Cells::Lstm(s) => s.forward(&x, steps, batch, h0, c0),
            Cells::Gru(s) => s.forward(&x, steps, batch, h0, c0),
        };
        scratch::give(x);
        Ok(self.finish(out, &geometry))
    }

    /// [`Recurrent::forward`] over a padded batch in which sequence `b` has `lengths[b]` valid steps, in any
    /// order: exactly PyTorch's `pack_padded_sequence(input, lengths, enforce_sorted=False)` → layer →
    /// `pad_packed_sequence(..., total_length=T)`.
    ///
    /// Outputs past a sequence's length are zero; `h_n` and `c_n` are each sequence's state at its own last
    /// valid step; the reverse direction of a bidirectional layer starts at each sequence's own last valid step.
    /// Internally the batch is sorted by length and shrinks as sequences end, so no work goes to padding in the
    /// time loop. Each length must lie in `1..=T`.
    pub fn forward_with_lengths(
        &self,
        input: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RecurrentOutput> {
        let (geometry, x) = self.prepare(input, h0, c0)?;
        check_lengths(lengths, &geometry)?;
        let (h0, c0) = (h0.map(Tensor::data), c0.map(Tensor::data));
        let steps = geometry.steps;
        let out = match &self.cells {
            Cells::Rnn(s) => s.forward_padded(&x, steps, lengths, h0, c0),
            Cells::Lstm(s) => s.forward_padded(&x, steps, lengths, h0, c0),
            Cells::Gru(s) => s.forward_padded(&x, steps, lengths, h0, c0),
        };
        scratch::give(x);
        Ok(self.finish(out, &geometry))
    }

    /// [`Recurrent::forward`] in training mode: applies dropout between layers (masks drawn from `rng`) and
    /// keeps what [`Recurrent::backward`] needs.
    pub fn forward_train(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        rng: &mut impl Rng,
    ) -> Result<(RecurrentOutput, RecurrentCache)> {
        self.train_run(input, None, h0, c0, rng)
    }

    /// [`Recurrent::forward_with_lengths`] in training mode; [`Recurrent::backward`] then gives zero gradients
    /// at padded positions, whatever the upstream gradient holds there (as PyTorch does).
    pub fn forward_train_with_lengths(
        &self,
        input: &Tensor,
        lengths: &[usize],
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        rng: &mut impl Rng,
    ) -> Result<(RecurrentOutput, RecurrentCache)> {
        self.train_run(input, Some(lengths), h0, c0, rng)
    }

    fn train_run(
        &self,
        input: &Tensor,
        lengths: Option<&[usize]>,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        rng: &mut impl Rng,
    ) -> Result<(RecurrentOutput, RecurrentCache)> {
        self.check_trainable()?;
        let (geometry, x) = self.prepare(input, h0, c0)?;
        if let Some(lengths) = lengths {
            check_lengths(lengths, &geometry)?;
        }
        let (h0, c0) = (h0.map(Tensor::data), c0.map(Tensor::data));
        let (steps, batch) = (geometry.steps, geometry.batch);
        let width = self.config.directions() * self.config.output_size();
        let p = self.config.dropout;
        let masks: Vec<Option<Vec<f32>>> = (0..self.config.num_layers)
            .map(|layer| (layer > 0 && p > 0.0).then(|| dropout_mask(steps * batch * width, p, rng)))
            .collect();
        let input = Sequences { data: &x, steps, batch, lengths };
        let initial = InitialStates { h: h0, c: c0 };
        let (out, trace) = match &self.cells {
            Cells::Rnn(s) => s.forward_train(input, initial, masks),
            Cells::Lstm(s) => s.forward_train(input, initial, masks),
            Cells::Gru(s) => s.forward_train(input, initial, masks),
        };
        let cache = RecurrentCache { config: self.config.clone(), geometry, trace };
        Ok((self.finish(out, &cache.geometry), cache))
    }

    /// Backpropagation through time, as PyTorch's autograd computes it for the sum
    /// `Σ output ⊙ grad_output + Σ h_n ⊙ grad_h_n + Σ c_n ⊙ grad_c_n`.
    ///
    /// Gradients of every parameter are **accumulated** into the layer (until [`Trainable::zero_grad`]); the
    /// gradients of the input and initial states are returned, in the shapes of the tensors they belong to.
    /// `grad_h_n` and `grad_c_n` default to zero.
    pub fn backward(
        &mut self,
        cache: &RecurrentCache,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
    ) -> Result<RecurrentGrads> {
        self.backward_inner(cache, grad_output, grad_h_n, grad_c_n, InputGrad::Wanted)
    }

    /// [`Recurrent::backward`] for an input that needs no gradient (PyTorch's `requires_grad=False`: raw
    /// features, not an embedding): the same parameter and initial-state gradients, without the first layer's
    /// `∂X = ∂G·W_ih` product; [`RecurrentGrads::input`] is an empty tensor (shape `[0]`).
    pub fn backward_without_input_grad(
        &mut self,
        cache: &RecurrentCache,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
    ) -> Result<RecurrentGrads> {
        self.backward_inner(cache, grad_output, grad_h_n, grad_c_n, InputGrad::Skipped)
    }

    fn backward_inner(
        &mut self,
        cache: &RecurrentCache,
        grad_output: &Tensor,
        grad_h_n: Option<&Tensor>,
        grad_c_n: Option<&Tensor>,
        input_grad: InputGrad,
    ) -> Result<RecurrentGrads> {
        if cache.config != self.config {
            return Err(Error::config("backward: the cache comes from a layer with another configuration"));
        }
        self.check_trainable()?;
        let Geometry { steps, batch, unbatched } = cache.geometry;
        let (width, states) = (self.config.directions() * self.config.output_size(), self.states());
        let time_major = self.config.batch_first && !unbatched;
        let output_shape = self.output_shape(&cache.geometry);
        if grad_output.shape() != output_shape.as_slice() {
            return Err(Error::shape(
                "grad_output",
                format!("{output_shape:?} (the output's shape)"),
                grad_output.shape(),
            ));
        }
        let h_shape = self.state_shape(&cache.geometry, self.config.output_size());
        let c_shape = self.state_shape(&cache.geometry, self.config.hidden_size);
        check_optional("grad_h_n", grad_h_n, &h_shape)?;
        match (self.config.mode, grad_c_n) {
            (Mode::Lstm, g) => check_optional("grad_c_n", g, &c_shape)?,
            (mode, Some(_)) => {
                return Err(Error::config(format!("grad_c_n was given, but {mode} has no cell state")));
            }
            (_, None) => {}
        }
        let d_output = if time_major {
            swap_leading_axes(grad_output.data(), batch, steps, width)
        } else {
            grad_output.data().to_vec()
        };
        let (d_h, d_c) = (grad_h_n.map(Tensor::data), grad_c_n.map(Tensor::data));
        let grads = match &mut self.cells {
            Cells::Rnn(s) => s.backward_choosing(&cache.trace, &d_output, d_h, d_c, input_grad),
            Cells::Lstm(s) => s.backward_choosing(&cache.trace, &d_output, d_h, d_c, input_grad),
            Cells::Gru(s) => s.backward_choosing(&cache.trace, &d_output, d_h, d_c, input_grad),
        };
        let input_size = self.config.input_size;
        let input = if time_major && input_grad == InputGrad::Wanted {
            swap_leading_axes(&grads.input, steps, batch, input_size)
        } else {
            grads.input
        };
        let input_shape = match (input_grad, unbatched, time_major) {
            (InputGrad::Skipped, _, _) => vec![0],
            (InputGrad::Wanted, true, _) => vec![steps, input_size],
            (InputGrad::Wanted, false, true) => vec![batch, steps, input_size],
            (InputGrad::Wanted, false, false) => vec![steps, batch, input_size],
        };
        debug_assert_eq!(h_shape.iter().product::<usize>(), states * batch * self.config.output_size());
        Ok(RecurrentGrads {
            input: Tensor::from_parts(input_shape, input),
            h0: Tensor::from_parts(h_shape, grads.h0),
            c0: (self.config.mode == Mode::Lstm).then(|| Tensor::from_parts(c_shape, grads.c0)),
        })
    }

    /// Checks the inputs and returns the geometry and the time-major input.
    fn prepare(&self, input: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<(Geometry, Vec<f32>)> {
        let geometry = self.check_input(input)?;
        self.check_state("h_0", h0, self.config.output_size(), &geometry)?;
        match (self.config.mode, c0) {
            (Mode::Lstm, c0) => {
                self.check_state("c_0", c0, self.config.hidden_size, &geometry)?;
            }
            (mode, Some(_)) => {
                return Err(Error::config(format!("c_0 was given, but {mode} has no cell state")));
            }
            (_, None) => {}
        }
        let x = if self.config.batch_first && !geometry.unbatched {
            swap_leading_axes(input.data(), geometry.batch, geometry.steps, self.config.input_size)
        } else {
            input.data().to_vec()
        };
        Ok((geometry, x))
    }

    /// Shapes the stack's time-major results as PyTorch does.
    fn finish(&self, out: StackOutput<f32>, geometry: &Geometry) -> RecurrentOutput {
        let Geometry { steps, batch, unbatched } = *geometry;
        let width = self.config.directions() * self.config.output_size();
        let output = if self.config.batch_first && !unbatched {
            let output = swap_leading_axes(&out.output, steps, batch, width);
            scratch::give(out.output);
            output
        } else {
            out.output
        };
        RecurrentOutput {
            output: Tensor::from_parts(self.output_shape(geometry), output),
            h_n: Tensor::from_parts(self.state_shape(geometry, self.config.output_size()), out.h_n),
            c_n: (self.config.mode == Mode::Lstm)
                .then(|| Tensor::from_parts(self.state_shape(geometry, self.config.hidden_size), out.c_n)),
        }
    }

    fn states(&self) -> usize {
        self.config.num_layers * self.config.directions()
    }

    fn output_shape(&self, g: &Geometry) -> Vec<usize> {
        let width = self.config.directions() * self.config.output_size();
        match (g.unbatched, self.config.batch_first) {
            (true, _) => vec![g.steps, width],
            (false, true) => vec![g.batch, g.steps, width],
            (false, false) => vec![g.steps, g.batch, width],
        }
    }

    fn state_shape(&self, g: &Geometry, size: usize) -> Vec<usize> {
        if g.unbatched { vec![self.states(), size] } else { vec![self.states(), g.batch, size] }
    }

    fn check_input(&self, input: &Tensor) -> Result<Geometry> {
        let i = self.config.input_size;
        let expected = if self.config.batch_first { "[B, T, I]" } else { "[T, B, I]" };
        let describe = || format!("{expected} or unbatched [T, I] with I = {i}");
        let (steps, batch, unbatched) = match *input.shape() {
            [t, f] if f == i => (t, 1, true),
            [a, b, f] if f == i => {
                if self.config.batch_first {
                    (b, a, false)
                } else {
                    (a, b, false)
                }
            }
            _ => return Err(Error::shape("input", describe(), input.shape())),
        };
        if steps == 0 || batch == 0 {
            return Err(Error::shape("input", format!("{} with T ≥ 1 and B ≥ 1", describe()), input.shape()));
        }
        Ok(Geometry { steps, batch, unbatched })
    }

    fn check_state<'a>(
        &self,
        what: &str,
        state: Option<&'a Tensor>,
        size: usize,
        geometry: &Geometry,
    ) -> Result<Option<&'a [f32]>> {
        let Some(state) = state else { return Ok(None) };
        let states = self.config.num_layers * self.config.directions();
        let expected = if geometry.unbatched { vec![states, size] } else { vec![states, geometry.batch, size] };
        if state.shape() != expected.as_slice() {
            return Err(Error::shape(what, format!("{expected:?} (L·D, B, H)"), state.shape()));
        }
        Ok(Some(state.data()))
    }
}

/// One cell per entry of `inputs` (the input size of each layer and direction), stacked.
/// The cells of a stack, layer by layer and direction by direction, each made by `make(input_size, direction)`.
fn build_stack<C: Cell>(
    inputs: &[usize],
    directions: usize,
    make: impl Fn(usize, usize) -> Result<C>,
) -> Result<Stack<C>> {
    let cells = inputs.iter().enumerate().map(|(k, &i)| make(i, k % directions)).collect::<Result<_>>()?;
    Ok(Stack::new(cells, directions))
}

/// What [`Recurrent::forward_train`] keeps for [`Recurrent::backward`]: every step's states and gate
/// activations. Its size is about `T·B·(G·H + H_out + H)` values per layer and direction.
#[derive(Clone, Debug)]
pub struct RecurrentCache {
    config: RecurrentConfig,
    geometry: Geometry,
    trace: StackTrace<f32>,
}

impl RecurrentCache {
    /// Number of `f32` values kept for the backward pass: per layer and direction about `T·B·(H_out + H + c)`
    /// where `c` is the cell's cache width (RNN 0, LSTM 5H, GRU 4H), plus each layer's input `T·B·I_l`.
    pub fn num_values(&self) -> usize {
        self.trace.num_values()
    }
}

/// The gradients [`Recurrent::backward`] returns, shaped as the tensors they belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentGrads {
    /// `∂L/∂input`.
    pub input: Tensor,
    /// `∂L/∂h_0` (the gradient at the zero state when no `h_0` was given).
    pub h0: Tensor,
    /// LSTM only: `∂L/∂c_0`.
    pub c0: Option<Tensor>,
}

/// An inverted-dropout mask: each value is 0 with probability `p`, else `1/(1−p)`.
fn dropout_mask(len: usize, p: f32, rng: &mut impl Rng) -> Vec<f32> {
    if p >= 1.0 {
        return vec![0.0; len];
    }
    let scale = 1.0 / (1.0 - p);
    (0..len).map(|_| if rng.random::<f32>() < p { 0.0 } else { scale }).collect()
}

/// Checks one length per batch element, each in `1..=T`.
fn check_lengths(lengths: &[usize], geometry: &Geometry) -> Result<()> {
    if lengths.len() != geometry.batch {
        return Err(Error::shape(
            "lengths",
            format!("[{}] (one length per batch element)", geometry.batch),
            &[lengths.len()],
        ));
    }
    if let Some((b, &n)) = lengths.iter().enumerate().find(|&(_, &n)| n == 0 || n > geometry.steps) {
        return Err(Error::Index {
            what: format!("lengths[{b}] ="),
            index: n.to_string(),
            valid: format!("1..={}, the padded number of steps", geometry.steps),
        });
    }
    Ok(())
}

fn check_optional(what: &str, t: Option<&Tensor>, shape: &[usize]) -> Result<()> {
    match t {
        Some(t) if t.shape() != shape => Err(Error::shape(what, format!("{shape:?}"), t.shape())),
        _ => Ok(()),
    }
}

/// PyTorch's suffix of the parameters of one layer and direction: `_l0`, `_l1_reverse`, …
fn suffix(layer: usize, direction: usize) -> String {
    format!("_l{layer}{}", if direction == 1 { "_reverse" } else { "" })
}

fn stack_params<C: Cell<Real = f32>>(stack: &Stack<C>) -> Vec<ParamRef<'_>> {
    let d = stack.directions();
    stack.cells().iter().enumerate().flat_map(|(k, cell)| cell.params(&suffix(k / d, k % d))).collect()
}

fn stack_params_mut<C: Cell<Real = f32>>(stack: &mut Stack<C>) -> Vec<ParamMut<'_>> {
    let d = stack.directions();
    stack.cells_mut().iter_mut().enumerate().flat_map(|(k, cell)| cell.params_mut(&suffix(k / d, k % d))).collect()
}

impl Module for Recurrent {
    fn named_params(&self) -> Vec<ParamRef<'_>> {
        match &self.cells {
            Cells::Rnn(s) => stack_params(s),
            Cells::Lstm(s) => stack_params(s),
            Cells::Gru(s) => stack_params(s),
        }
    }

    fn named_params_mut(&mut self) -> Vec<ParamMut<'_>> {
        match &mut self.cells {
            Cells::Rnn(s) => stack_params_mut(s),
            Cells::Lstm(s) => stack_params_mut(s),
            Cells::Gru(s) => stack_params_mut(s),
        }
    }
}

fn stack_params_with_grads<C: Cell<Real = f32>>(stack: &mut Stack<C>) -> Vec<Param<'_>> {
    let d = stack.directions();
    stack
        .cells_mut()
        .iter_mut()
        .enumerate()
        .flat_map(|(k, cell)| cell.params_with_grads(&suffix(k / d, k % d)))
        .collect()
}

impl Trainable for Recurrent {
    fn parameters(&mut self) -> Vec<Param<'_>> {
        match &mut self.cells {
            Cells::Rnn(s) => stack_params_with_grads(s),
            Cells::Lstm(s) => stack_params_with_grads(s),
            Cells::Gru(s) => stack_params_with_grads(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn params(layer: &Recurrent) -> HashMap<String, Vec<f32>> {
        layer.named_params().into_iter().map(|p| (p.name, p.data.to_vec())).collect()
    }

    #[test]
    fn backward_without_the_input_grad_gives_the_same_parameter_grads() {
        for config in [
            RecurrentConfig::lstm(3, 4).num_layers(2).bidirectional(true).batch_first(true),
            RecurrentConfig::gru(3, 4).num_layers(2),
            RecurrentConfig::rnn(3, 4),
        ] {
            let input = Tensor::new([2, 5, 3], (0..30).map(|i| (i as f32 * 0.7).sin()).collect()).unwrap();
            let grads_of = |input_grad: bool| {
                let mut layer = Recurrent::with_seed(config.clone(), 4).unwrap();
                let (out, cache) = layer.forward_train(&input, None, None, &mut rand::rng()).unwrap();
                let d = Tensor::new(out.output.shape().to_vec(), vec![0.5; out.output.len()]).unwrap();
                let g = if input_grad {
                    layer.backward(&cache, &d, Some(&out.h_n), None).unwrap()
                } else {
                    layer.backward_without_input_grad(&cache, &d, Some(&out.h_n), None).unwrap()
                };
                let grads: Vec<Vec<f32>> = layer.parameters().iter().map(|p| p.grad.to_vec()).collect();
                (g, grads)
            };
            let ((all, with), (some, without)) = (grads_of(true), grads_of(false));
            assert_eq!(with, without, "{config:?}: parameter gradients");
            assert_eq!(all.h0.data(), some.h0.data(), "{config:?}: h0");
            assert_eq!(all.input.shape(), [2, 5, 3]);
            assert_eq!(some.input.shape(), [0]);
        }
    }

    #[test]
    fn forget_bias_sets_only_the_forget_slice_of_bias_ih() {
        let base = RecurrentConfig::lstm(3, 4).num_layers(2).bidirectional(true);
        let plain = params(&Recurrent::with_seed(base.clone(), 9).unwrap());
        let biased = params(&Recurrent::with_seed(base.forget_bias(1.0), 9).unwrap());
        assert_eq!(plain.len(), biased.len());
        let mut checked = 0;
        for (name, values) in &biased {
            let reference = &plain[name];
            if name.starts_with("bias_ih_l") {
                checked += 1;
                assert!(values[4..8].iter().all(|&v| v == 1.0), "{name}: {values:?}");
                assert_eq!(values[..4], reference[..4], "{name}: input gate");
                assert_eq!(values[8..], reference[8..], "{name}: cell and output gates");
                // The uniform init never draws exactly 1 at this bound (±1/2), so the slice did change.
                assert!(reference[4..8].iter().all(|&v| v.abs() <= 0.5));
            } else {
                assert_eq!(values, reference, "{name} keeps PyTorch's init");
            }
        }
        assert_eq!(checked, 4, "two layers × two directions");
    }

    #[test]
    fn forget_bias_survives_a_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lstm.safetensors");
        let layer = Recurrent::with_seed(RecurrentConfig::lstm(2, 3).forget_bias(2.0), 1).unwrap();
        layer.save(&path).unwrap();
        let loaded = Recurrent::load(&path, &crate::LoadOptions::default()).unwrap();
        assert_eq!(loaded.config().forget_bias, Some(2.0));
        assert_eq!(loaded, layer);
        assert_eq!(&params(&loaded)["bias_ih_l0"][3..6], &[2.0, 2.0, 2.0]);
    }

    #[test]
    fn forget_bias_is_rejected_for_other_modes() {
        let err = Recurrent::with_seed(RecurrentConfig::rnn(2, 3).forget_bias(1.0), 0).unwrap_err();
        assert!(err.to_string().contains("only supported by LSTM"), "{err}");
    }
}
