//! The configuration of a recurrent layer, with PyTorch's argument names, and its JSON form (the `config`
//! metadata of a model file).

use serde::{Deserialize, Serialize};

use crate::cells::{Activation, Nonlinearity};
use crate::error::{Error, Result};

/// The kind of recurrent cell, named as PyTorch's `RNNBase.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// `nn.RNN(nonlinearity="tanh")`.
    #[serde(rename = "RNN_TANH")]
    RnnTanh,
    /// `nn.RNN(nonlinearity="relu")`.
    #[serde(rename = "RNN_RELU")]
    RnnRelu,
    /// `nn.LSTM`.
    #[serde(rename = "LSTM")]
    Lstm,
    /// `nn.GRU`.
    #[serde(rename = "GRU")]
    Gru,
}

impl Mode {
    /// Number of gate blocks in `weight_ih`'s rows.
    pub fn gates(self) -> usize {
        match self {
            Mode::RnnTanh | Mode::RnnRelu => 1,
            Mode::Lstm => 4,
            Mode::Gru => 3,
        }
    }

    /// PyTorch's name of the mode (`"LSTM"`, `"GRU"`, `"RNN_TANH"`, `"RNN_RELU"`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::RnnTanh => "RNN_TANH",
            Mode::RnnRelu => "RNN_RELU",
            Mode::Lstm => "LSTM",
            Mode::Gru => "GRU",
        }
    }

    /// The vanilla RNN mode with this nonlinearity.
    pub fn rnn(nonlinearity: Nonlinearity) -> Self {
        match nonlinearity {
            Nonlinearity::Tanh => Mode::RnnTanh,
            Nonlinearity::Relu => Mode::RnnRelu,
        }
    }

    /// Number of activation functions a direction of this cell takes in ONNX's `activations`: 1 (RNN `f`), 2
    /// (GRU `f`, `g`), 3 (LSTM `f`, `g`, `h`).
    pub fn activation_count(self) -> usize {
        match self {
            Mode::RnnTanh | Mode::RnnRelu => 1,
            Mode::Gru => 2,
            Mode::Lstm => 3,
        }
    }

    /// Whether this is a vanilla RNN mode.
    pub fn is_rnn(self) -> bool {
        matches!(self, Mode::RnnTanh | Mode::RnnRelu)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Configuration of a [`Recurrent`](crate::Recurrent) layer: the arguments of PyTorch's `nn.RNN`, `nn.LSTM`
/// and `nn.GRU`, with the same names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentConfig {
    /// The cell kind.
    pub mode: Mode,
    /// Features per time step of the input.
    pub input_size: usize,
    /// Size of the hidden state (and of the LSTM cell state).
    pub hidden_size: usize,
    /// Number of stacked layers.
    #[serde(default = "one")]
    pub num_layers: usize,
    /// Whether every cell has `bias_ih` and `bias_hh`.
    #[serde(default = "yes")]
    pub bias: bool,
    /// Whether batched input and output are `(B, T, F)` rather than `(T, B, F)`.
    #[serde(default)]
    pub batch_first: bool,
    /// Dropout probability on the outputs of every layer but the last, in training only.
    #[serde(default)]
    pub dropout: f32,
    /// Whether every layer also runs in reverse time, its outputs concatenated after the forward ones.
    #[serde(default)]
    pub bidirectional: bool,
    /// LSTM only: size of the projected `h` (`h_t = W_hr (o_t ⊙ tanh c_t)`), or 0 for none.
    #[serde(default)]
    pub proj_size: usize,
    /// LSTM only: the value the forget-gate slice of every `bias_ih_l{k}` (and `_reverse`) takes at
    /// initialisation, or `None` for PyTorch's uniform init. Not a PyTorch argument: it only changes the initial
    /// values (the file keeps PyTorch's names and shapes), and a loaded model's biases are those in its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f32>,
    /// ONNX's `clip`: every gate's pre-activation is clamped to `[−clip, clip]` before its activation, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<f32>,
    /// ONNX's `activations`, empty for PyTorch's: per direction, the RNN's `f`, the GRU's `f, g` or the LSTM's
    /// `f, g, h` (see [`Mode::activation_count`]), the forward direction's first, then the reverse's. One
    /// direction's list serves both directions of a bidirectional layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activations: Vec<Activation>,
    /// LSTM only: peephole connections `weight_peephole_l{k}` (ONNX's `P`), see
    /// [`LstmCellConfig::peepholes`](crate::LstmCellConfig::peepholes).
    #[serde(default, skip_serializing_if = "is_false")]
    pub peepholes: bool,
    /// LSTM only: ONNX's `input_forget`, the forget gate coupled to the input gate (`f = 1 − i`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub input_forget: bool,
    /// GRU only: whether the reset gate multiplies `W_hn h + b_hn` (PyTorch's, the default) or `h` before the
    /// product (ONNX's `linear_before_reset = 0`, Keras's `reset_after=False`), see
    /// [`GruCellConfig::linear_before_reset`](crate::GruCellConfig::linear_before_reset).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub linear_before_reset: bool,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl RecurrentConfig {
    /// A one-layer, unidirectional configuration with bias, PyTorch's defaults.
    pub fn new(mode: Mode, input_size: usize, hidden_size: usize) -> Self {
        RecurrentConfig {
            mode,
            input_size,
            hidden_size,
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            proj_size: 0,
            forget_bias: None,
            clip: None,
            activations: Vec::new(),
            peepholes: false,
            input_forget: false,
            linear_before_reset: true,
        }
    }

    /// `nn.LSTM(input_size, hidden_size)`.
    pub fn lstm(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Mode::Lstm, input_size, hidden_size)
    }

    /// `nn.GRU(input_size, hidden_size)`.
    pub fn gru(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Mode::Gru, input_size, hidden_size)
    }

    /// `nn.RNN(input_size, hidden_size)` with tanh.
    pub fn rnn(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Mode::RnnTanh, input_size, hidden_size)
    }

    /// Sets `num_layers`.
    pub fn num_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }

    /// Sets `bidirectional`.
    pub fn bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }

    /// Sets `bias`.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Sets `batch_first`.
    pub fn batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }

    /// Sets `dropout`.
    pub fn dropout(mut self, dropout: f32) -> Self {
        self.dropout = dropout;
        self
    }

    /// Sets `proj_size` (LSTM only).
    pub fn proj_size(mut self, proj_size: usize) -> Self {
        self.proj_size = proj_size;
        self
    }

    /// Sets `forget_bias` (LSTM with bias only): at initialisation the forget gate's slice `[H, 2H)` of every
    /// `bias_ih` is set to `value`, so that `f_t = σ(value + …)` starts near `σ(value)` and the cell remembers by
    /// default (Jozefowicz et al., 2015, recommend 1). `bias_hh` keeps PyTorch's init.
    pub fn forget_bias(mut self, value: f32) -> Self {
        self.forget_bias = Some(value);
        self
    }

    /// Sets ONNX's `clip`.
    pub fn clip(mut self, threshold: f32) -> Self {
        self.clip = Some(threshold);
        self
    }

    /// Sets ONNX's `activations` (see the field).
    pub fn activations(mut self, activations: Vec<Activation>) -> Self {
        self.activations = activations;
        self
    }

    /// Sets `peepholes` (LSTM only).
    pub fn peepholes(mut self, peepholes: bool) -> Self {
        self.peepholes = peepholes;
        self
    }

    /// Sets `input_forget` (LSTM only).
    pub fn input_forget(mut self, input_forget: bool) -> Self {
        self.input_forget = input_forget;
        self
    }

    /// Sets `linear_before_reset` (GRU only).
    pub fn linear_before_reset(mut self, linear_before_reset: bool) -> Self {
        self.linear_before_reset = linear_before_reset;
        self
    }

    /// The activations of direction `direction` (0 forward, 1 reverse), or `None` for PyTorch's.
    pub fn direction_activations(&self, direction: usize) -> Option<&[Activation]> {
        let k = self.mode.activation_count();
        match self.activations.len() {
            0 => None,
            len if len == k => Some(&self.activations),
            _ => self.activations.chunks(k).nth(direction),
        }
    }

    /// Number of directions, `D` (1 or 2).
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Size of `h`, `H_out`: `proj_size` when projected, else `hidden_size`.
    pub fn output_size(&self) -> usize {
        if self.proj_size > 0 { self.proj_size } else { self.hidden_size }
    }

    /// The input size of layer `layer`: `input_size` for the first, `D·H_out` after it.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 { self.input_size } else { self.directions() * self.output_size() }
    }

    /// Checks the configuration as PyTorch's constructor does.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::config(m));
        if self.input_size == 0 || self.hidden_size == 0 {
            return fail(format!(
                "input_size and hidden_size must be positive, found input_size={}, hidden_size={}",
                self.input_size, self.hidden_size
            ));
        }
        if self.num_layers == 0 {
            return fail("num_layers must be at least 1, found 0".into());
        }
        if !(0.0..=1.0).contains(&self.dropout) {
            return fail(format!("dropout must be a probability in [0, 1], found {}", self.dropout));
        }
        if self.proj_size > 0 && self.mode != Mode::Lstm {
            return fail(format!(
                "proj_size is only supported by LSTM, found proj_size={} for {}",
                self.proj_size, self.mode
            ));
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return fail(format!(
                "proj_size must be smaller than hidden_size, found proj_size={} and hidden_size={}",
                self.proj_size, self.hidden_size
            ));
        }
        if let Some(value) = self.forget_bias {
            if self.mode != Mode::Lstm {
                return fail(format!(
                    "forget_bias is only supported by LSTM, found forget_bias={value} for {}",
                    self.mode
                ));
            }
            if !self.bias {
                return fail(format!("forget_bias={value} needs bias=true (it initialises bias_ih), found bias=false"));
            }
            if !value.is_finite() {
                return fail(format!("forget_bias must be finite, found {value}"));
            }
        }
        self.validate_onnx_options()
    }

    /// Checks ONNX's options: each for the cells that have it, `clip` positive, the activations' count.
    fn validate_onnx_options(&self) -> Result<()> {
        let fail = |m: String| Err(Error::config(m));
        if let Some(clip) = self.clip
            && !(clip.is_finite() && clip > 0.0)
        {
            return fail(format!("clip must be a positive finite threshold, found {clip}"));
        }
        if self.mode != Mode::Lstm && (self.peepholes || self.input_forget) {
            return fail(format!("peepholes and input_forget are only supported by LSTM, found {}", self.mode));
        }
        if self.mode != Mode::Gru && !self.linear_before_reset {
            return fail(format!("linear_before_reset=false is only supported by GRU, found {}", self.mode));
        }
        let k = self.mode.activation_count();
        let len = self.activations.len();
        if len != 0 && len != k && len != k * self.directions() {
            return fail(format!(
                "{} takes {k} activations per direction, so {k}{} of them, found {len}",
                self.mode,
                if self.bidirectional { format!(" or {}", 2 * k) } else { String::new() }
            ));
        }
        self.activations.iter().try_for_each(|a| a.validate())
    }

    /// The configuration as the JSON of a model file's `config` metadata.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a configuration always serialises")
    }

    /// Parses the JSON of a model file's `config` metadata and validates it.
    pub fn from_json(json: &str) -> Result<Self> {
        let config: RecurrentConfig =
            serde_json::from_str(json).map_err(|e| Error::config(format!("cannot parse config metadata: {e}")))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_uses_pytorch_names() {
        let config = RecurrentConfig::lstm(3, 5).num_layers(2).proj_size(2).bidirectional(true);
        let json = config.to_json();
        assert!(json.contains("\"mode\":\"LSTM\""), "{json}");
        assert!(json.contains("\"proj_size\":2"), "{json}");
        assert_eq!(RecurrentConfig::from_json(&json).unwrap(), config);
    }

    #[test]
    fn forget_bias_round_trips_and_is_absent_from_json_when_unset() {
        let config = RecurrentConfig::lstm(3, 5).forget_bias(1.5);
        let json = config.to_json();
        assert!(json.contains("\"forget_bias\":1.5"), "{json}");
        assert_eq!(RecurrentConfig::from_json(&json).unwrap(), config);
        // Files written before the option existed, and by PyTorch users, have no such key.
        assert!(!RecurrentConfig::lstm(3, 5).to_json().contains("forget_bias"));
    }

    #[test]
    fn onnx_options_round_trip_and_are_absent_from_json_when_default() {
        let config =
            RecurrentConfig::lstm(3, 5).bidirectional(true).clip(2.5).peepholes(true).input_forget(true).activations(
                vec![
                    Activation::HardSigmoid { alpha: 0.1, beta: 0.6 },
                    Activation::Tanh,
                    Activation::Softsign,
                    Activation::Sigmoid,
                    Activation::Elu { alpha: 0.5 },
                    Activation::Tanh,
                ],
            );
        let json = config.to_json();
        assert!(json.contains(r#"{"name":"HardSigmoid","alpha":0.1,"beta":0.6}"#), "{json}");
        assert_eq!(RecurrentConfig::from_json(&json).unwrap(), config);
        assert_eq!(config.direction_activations(1).unwrap()[1], Activation::Elu { alpha: 0.5 });
        let gru = RecurrentConfig::gru(3, 5).linear_before_reset(false);
        assert!(gru.to_json().contains(r#""linear_before_reset":false"#));
        assert_eq!(RecurrentConfig::from_json(&gru.to_json()).unwrap(), gru);
        let plain = RecurrentConfig::gru(3, 5).to_json();
        for key in ["clip", "activations", "peepholes", "input_forget", "linear_before_reset"] {
            assert!(!plain.contains(key), "{plain} has {key}");
        }
    }

    #[test]
    fn onnx_options_are_checked() {
        let cases = [
            (RecurrentConfig::gru(2, 3).peepholes(true), "only supported by LSTM"),
            (RecurrentConfig::rnn(2, 3).input_forget(true), "only supported by LSTM"),
            (RecurrentConfig::lstm(2, 3).linear_before_reset(false), "only supported by GRU"),
            (RecurrentConfig::lstm(2, 3).clip(0.0), "positive finite"),
            (RecurrentConfig::gru(2, 3).activations(vec![Activation::Tanh]), "takes 2 activations per direction, so 2"),
            (
                RecurrentConfig::rnn(2, 3).bidirectional(true).activations(vec![Activation::Tanh; 3]),
                "so 1 or 2 of them, found 3",
            ),
            (RecurrentConfig::rnn(2, 3).activations(vec![Activation::Elu { alpha: f32::NAN }]), "finite parameters"),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn missing_fields_take_pytorch_defaults() {
        let config = RecurrentConfig::from_json(r#"{"mode":"GRU","input_size":2,"hidden_size":3}"#).unwrap();
        assert_eq!(config, RecurrentConfig::gru(2, 3));
    }

    #[test]
    fn invalid_configs_are_rejected_with_reasons() {
        let cases = [
            (RecurrentConfig::gru(2, 3).proj_size(1), "only supported by LSTM"),
            (RecurrentConfig::lstm(2, 3).proj_size(3), "smaller than hidden_size"),
            (RecurrentConfig::lstm(0, 3), "must be positive"),
            (RecurrentConfig::lstm(2, 3).num_layers(0), "num_layers"),
            (RecurrentConfig::lstm(2, 3).dropout(1.5), "dropout"),
            (RecurrentConfig::gru(2, 3).forget_bias(1.0), "forget_bias is only supported by LSTM"),
            (RecurrentConfig::lstm(2, 3).bias(false).forget_bias(1.0), "needs bias=true"),
            (RecurrentConfig::lstm(2, 3).forget_bias(f32::NAN), "must be finite"),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let err = RecurrentConfig::from_json(r#"{"mode":"TRANSFORMER","input_size":2,"hidden_size":3}"#).unwrap_err();
        assert!(err.to_string().contains("cannot parse config"), "{err}");
    }
}
