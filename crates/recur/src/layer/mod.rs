//! Multi-layer, optionally bidirectional recurrent layers with PyTorch's `nn.RNN`, `nn.LSTM` and `nn.GRU`
//! semantics: shapes, parameter names, state ordering.

mod config;

pub use config::{Mode, RecurrentConfig};

use rand::Rng;

use crate::cells::{
    Cell, GruCell, GruCellConfig, LstmCell, LstmCellConfig, Nonlinearity, RnnCell, RnnCellConfig,
};
use crate::driver::{Stack, StackOutput};
use crate::error::{Error, Result};
use crate::params::{Module, ParamMut, ParamRef};
use crate::tensor::{Tensor, swap_leading_axes};

/// The cells of a layer, of the kind its mode names.
#[derive(Clone, Debug, PartialEq)]
enum Cells {
    Rnn(Stack<RnnCell>),
    Lstm(Stack<LstmCell>),
    Gru(Stack<GruCell>),
}

/// A recurrent layer: PyTorch's `nn.RNN`, `nn.LSTM` or `nn.GRU`, chosen by [`RecurrentConfig::mode`].
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
struct Geometry {
    steps: usize,
    batch: usize,
    unbatched: bool,
}

impl Recurrent {
    /// A layer with PyTorch's default initialisation, every parameter uniform in `±1/√hidden_size`, drawn from
    /// `rng`.
    pub fn new(config: RecurrentConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut layer = Self::zeros(config)?;
        let hidden = layer.config.hidden_size;
        crate::params::init_uniform(layer.named_params_mut(), hidden, rng);
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
        let inputs: Vec<usize> = (0..config.num_layers)
            .flat_map(|l| std::iter::repeat_n(config.layer_input_size(l), d))
            .collect();
        let (hidden_size, bias, proj_size) = (config.hidden_size, config.bias, config.proj_size);
        let cells = match config.mode {
            Mode::Lstm => Cells::Lstm(build_stack(&inputs, d, |input_size| {
                LstmCell::zeros(LstmCellConfig {
                    input_size,
                    hidden_size,
                    bias,
                    proj_size,
                })
            })?),
            Mode::Gru => Cells::Gru(build_stack(&inputs, d, |input_size| {
                GruCell::zeros(GruCellConfig {
                    input_size,
                    hidden_size,
                    bias,
                })
            })?),
            Mode::RnnTanh | Mode::RnnRelu => {
                let nonlinearity = if config.mode == Mode::RnnRelu {
                    Nonlinearity::Relu
                } else {
                    Nonlinearity::Tanh
                };
                Cells::Rnn(build_stack(&inputs, d, |input_size| {
                    RnnCell::zeros(RnnCellConfig {
                        input_size,
                        hidden_size,
                        bias,
                        nonlinearity,
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

    /// Runs the layer over a whole sequence, as PyTorch's `forward(input, hx)`.
    ///
    /// - `input`: `(T, B, I)`, or `(B, T, I)` when `batch_first`, or unbatched `(T, I)`.
    /// - `h0`: `(L·D, B, H_out)` (unbatched: `(L·D, H_out)`); zeros when `None`.
    /// - `c0`: LSTM only, `(L·D, B, H)` (unbatched: `(L·D, H)`); zeros when `None`.
    ///
    /// Every shape is checked: a mismatch is an [`Error::Shape`] naming the tensor, the expected shape and the
    /// one found. Dropout is not applied (this is inference).
    pub fn forward(
        &self,
        input: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
    ) -> Result<RecurrentOutput> {
        let geometry = self.check_input(input)?;
        let h0 = self.check_state("h_0", h0, self.config.output_size(), &geometry)?;
        let c0 = match (self.config.mode, c0) {
            (Mode::Lstm, c0) => self.check_state("c_0", c0, self.config.hidden_size, &geometry)?,
            (mode, Some(_)) => {
                return Err(Error::config(format!(
                    "c_0 was given, but {mode} has no cell state"
                )));
            }
            (_, None) => None,
        };
        let Geometry {
            steps,
            batch,
            unbatched,
        } = geometry;
        let time_major = self.config.batch_first && !unbatched;
        let x = if time_major {
            swap_leading_axes(input.data(), batch, steps, self.config.input_size)
        } else {
            input.data().to_vec()
        };
        let StackOutput { output, h_n, c_n } = match &self.cells {
            Cells::Rnn(s) => s.forward(&x, steps, batch, h0, c0),
            Cells::Lstm(s) => s.forward(&x, steps, batch, h0, c0),
            Cells::Gru(s) => s.forward(&x, steps, batch, h0, c0),
        };
        let width = self.config.directions() * self.config.output_size();
        let states = self.config.num_layers * self.config.directions();
        let (output, output_shape) = if unbatched {
            (output, vec![steps, width])
        } else if time_major {
            (
                swap_leading_axes(&output, steps, batch, width),
                vec![batch, steps, width],
            )
        } else {
            (output, vec![steps, batch, width])
        };
        let state_shape = |size: usize| {
            if unbatched {
                vec![states, size]
            } else {
                vec![states, batch, size]
            }
        };
        Ok(RecurrentOutput {
            output: Tensor::from_parts(output_shape, output),
            h_n: Tensor::from_parts(state_shape(self.config.output_size()), h_n),
            c_n: (self.config.mode == Mode::Lstm)
                .then(|| Tensor::from_parts(state_shape(self.config.hidden_size), c_n)),
        })
    }

    fn check_input(&self, input: &Tensor) -> Result<Geometry> {
        let i = self.config.input_size;
        let expected = if self.config.batch_first {
            "[B, T, I]"
        } else {
            "[T, B, I]"
        };
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
            return Err(Error::shape(
                "input",
                format!("{} with T ≥ 1 and B ≥ 1", describe()),
                input.shape(),
            ));
        }
        Ok(Geometry {
            steps,
            batch,
            unbatched,
        })
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
        let expected = if geometry.unbatched {
            vec![states, size]
        } else {
            vec![states, geometry.batch, size]
        };
        if state.shape() != expected.as_slice() {
            return Err(Error::shape(
                what,
                format!("{expected:?} (L·D, B, H)"),
                state.shape(),
            ));
        }
        Ok(Some(state.data()))
    }
}

/// One cell per entry of `inputs` (the input size of each layer and direction), stacked.
fn build_stack<C: Cell>(
    inputs: &[usize],
    directions: usize,
    make: impl Fn(usize) -> Result<C>,
) -> Result<Stack<C>> {
    Ok(Stack::new(
        inputs.iter().map(|&i| make(i)).collect::<Result<_>>()?,
        directions,
    ))
}

/// PyTorch's suffix of the parameters of one layer and direction: `_l0`, `_l1_reverse`, …
fn suffix(layer: usize, direction: usize) -> String {
    format!("_l{layer}{}", if direction == 1 { "_reverse" } else { "" })
}

fn stack_params<C: Cell<Real = f32>>(stack: &Stack<C>) -> Vec<ParamRef<'_>> {
    let d = stack.directions();
    stack
        .cells()
        .iter()
        .enumerate()
        .flat_map(|(k, cell)| cell.params(&suffix(k / d, k % d)))
        .collect()
}

fn stack_params_mut<C: Cell<Real = f32>>(stack: &mut Stack<C>) -> Vec<ParamMut<'_>> {
    let d = stack.directions();
    stack
        .cells_mut()
        .iter_mut()
        .enumerate()
        .flat_map(|(k, cell)| cell.params_mut(&suffix(k / d, k % d)))
        .collect()
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
