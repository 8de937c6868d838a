//! The three recurrent cells. A cell knows the gate math of one time step, forward and backward, and nothing
//! else: the driver runs any cell over time, layers and directions, and the layer gives it tensors.
//!
//! Each cell is also usable on its own, as PyTorch's `nn.RNNCell`, `nn.LSTMCell` and `nn.GRUCell`, with the same
//! parameter names (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).
//!
//! Every cell shares one step structure:
//!
//! ```text
//! gx = W_ih x_t + b_ih          (for all t at once: one product per layer and direction)
//! gh = W_hh h_{t-1} + b_hh      (one product per step)
//! h_t, c_t = gates(gx, gh, h_{t-1}, c_{t-1})   (one fused pass, the cell's own math)
//! ```
//!
//! and its backward mirrors it: the cell turns `∂L/∂h_t` and `∂L/∂c_t` into the gradients of `gx`, `gh` and
//! `c_{t−1}`; the driver does the products.
//!
//! ONNX's recurrent operators add options PyTorch's cells lack (other [`Activation`]s, `clip`, the LSTM's
//! peepholes and coupled input and forget gates, the GRU's reset gate before the product): each is a field of the
//! cell's config, run by plainer gate passes of their own (the `*_onnx` modules) while PyTorch's configurations
//! keep the vectorised ones.

mod activation;
mod blocks;
mod gru;
mod gru_onnx;
mod lstm;
mod lstm_onnx;
mod rnn;

pub use activation::Activation;
pub use gru::{GRU_ACTIVATIONS, GruCell, GruCellConfig};
pub use lstm::{LSTM_ACTIVATIONS, LstmCell, LstmCellConfig};
pub use rnn::{Nonlinearity, RnnCell, RnnCellConfig};

use crate::error::{Error, Result};

/// Rejects zero sizes, which PyTorch also rejects and which would leave a cell without weights.
pub(crate) fn check_sizes(input_size: usize, hidden_size: usize) -> Result<()> {
    if input_size == 0 || hidden_size == 0 {
        return Err(Error::config(format!(
            "input_size and hidden_size must be positive, found input_size={input_size}, hidden_size={hidden_size}"
        )));
    }
    Ok(())
}
