//! A layer whose `weight_ih` and `weight_hh` are stored in fewer bits (bf16, f16 or int8) for inference: made by
//! [`Recurrent::quantize`] or read from a quantized model file.

use std::collections::HashMap;

use super::{Cells, Mode, Recurrent, suffix};
use crate::driver::{Cell, Stack};
use crate::error::{Error, Result};
use crate::kernels::quant::{Scheme, StoredMatrix};
use crate::params::inference_only;

impl Recurrent {
    /// How the weight matrices are stored: `None` for `f32`.
    pub fn scheme(&self) -> Option<Scheme> {
        match &self.cells {
            Cells::Rnn(s) => stack_scheme(s),
            Cells::Lstm(s) => stack_scheme(s),
            Cells::Gru(s) => stack_scheme(s),
        }
    }

    /// The same layer with every `weight_ih` and `weight_hh` stored in `scheme`; biases (and an LSTM's
    /// peepholes) stay `f32`. The result runs forward, streams and saves ([`Recurrent::save`] writes the stored
    /// form), computing from the stored values directly; it cannot be trained.
    ///
    /// Fails, naming the tensor, when a weight is not finite (or, for f16, past ±65504); and for the options whose
    /// extra weight products read `f32` weights (an LSTM's `proj_size`, a GRU without `linear_before_reset`).
    ///
    /// ```
    /// use recur::{Int8Scale, Recurrent, RecurrentConfig, Scheme, StreamState, Tensor};
    ///
    /// let lstm = Recurrent::with_seed(RecurrentConfig::lstm(8, 64).num_layers(2), 0)?;
    /// let small = lstm.quantize(Scheme::Int8(Int8Scale::Row))?; // a quarter of the bytes
    /// let x = Tensor::new([5, 1, 8], (0..40).map(|i| (i as f32 * 0.3).sin()).collect())?;
    /// let (want, got) = (lstm.forward(&x, None, None)?, small.forward(&x, None, None)?);
    /// let error = want.output.data().iter().zip(got.output.data()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    /// assert!(error < 0.05);
    ///
    /// let mut stream = StreamState::new(&small, 1)?; // streams compute from the int8 weights too
    /// let h = stream.step(&small, &[0.5; 8])?;
    /// assert_eq!(h.len(), 64);
    /// # Ok::<(), recur::Error>(())
    /// ```
    pub fn quantize(&self, scheme: Scheme) -> Result<Recurrent> {
        check_quantizable(self)?;
        let mut out = self.clone();
        match &mut out.cells {
            Cells::Rnn(s) => quantize_stack(s, scheme)?,
            Cells::Lstm(s) => quantize_stack(s, scheme)?,
            Cells::Gru(s) => quantize_stack(s, scheme)?,
        }
        Ok(out)
    }

    /// Bytes of every layer's `weight_ih` and `weight_hh` as they are held: 4 a value in `f32`, fewer when stored
    /// in fewer bits (int8's scales included).
    pub fn weight_bytes(&self) -> usize {
        match &self.cells {
            Cells::Rnn(s) => s.weight_bytes(),
            Cells::Lstm(s) => s.weight_bytes(),
            Cells::Gru(s) => s.weight_bytes(),
        }
    }

    /// The stored weight matrices under their PyTorch names (`weight_ih_l0`, …), empty for an `f32` layer.
    pub fn stored_weights(&self) -> Vec<(String, &StoredMatrix)> {
        match &self.cells {
            Cells::Rnn(s) => stack_stored(s),
            Cells::Lstm(s) => stack_stored(s),
            Cells::Gru(s) => stack_stored(s),
        }
    }

    /// Takes from `stored` the weight matrices of this layer (by PyTorch name), leaving the others. Fails when a
    /// matrix's shape is not its weight's, or when a cell has one of its two matrices stored and not the other.
    pub(crate) fn take_stored_weights(&mut self, stored: &mut HashMap<String, StoredMatrix>) -> Result<()> {
        if !stored.is_empty() {
            check_quantizable(self)?;
        }
        match &mut self.cells {
            Cells::Rnn(s) => take_stack(s, stored),
            Cells::Lstm(s) => take_stack(s, stored),
            Cells::Gru(s) => take_stack(s, stored),
        }
    }

    /// Fails when the weights are stored in fewer bits: training needs `f32` weights.
    pub(crate) fn check_trainable(&self) -> Result<()> {
        self.scheme().map_or(Ok(()), |s| Err(inference_only(s)))
    }
}

/// Refuses the options whose gate passes read an `f32` weight matrix of their own.
fn check_quantizable(layer: &Recurrent) -> Result<()> {
    let config = layer.config();
    if config.mode == Mode::Lstm && config.proj_size > 0 {
        return Err(Error::config("an LSTM with proj_size > 0 cannot be quantized yet: weight_hr stays f32 only"));
    }
    if config.mode == Mode::Gru && !config.linear_before_reset {
        return Err(Error::config(
            "a GRU with linear_before_reset = false cannot be quantized yet: its W_hn (r ⊙ h) product reads f32 \
             weights",
        ));
    }
    Ok(())
}

fn stack_scheme<C: Cell<Real = f32>>(stack: &Stack<C>) -> Option<Scheme> {
    stack.cells().iter().find_map(|c| c.weights().scheme())
}

fn quantize_stack<C: Cell<Real = f32>>(stack: &mut Stack<C>, scheme: Scheme) -> Result<()> {
    let d = stack.directions();
    for (k, cell) in stack.cells_mut().iter_mut().enumerate() {
        let (ih, hh) = cell.weights().quantize(scheme, &suffix(k / d, k % d))?;
        cell.weights_mut().set_stored(ih, hh);
    }
    Ok(())
}

fn stack_stored<C: Cell<Real = f32>>(stack: &Stack<C>) -> Vec<(String, &StoredMatrix)> {
    let d = stack.directions();
    let mut out = Vec::new();
    for (k, cell) in stack.cells().iter().enumerate() {
        if let Some((ih, hh)) = cell.weights().stored() {
            let suffix = suffix(k / d, k % d);
            out.push((format!("weight_ih{suffix}"), ih));
            out.push((format!("weight_hh{suffix}"), hh));
        }
    }
    out
}

fn take_stack<C: Cell<Real = f32>>(stack: &mut Stack<C>, stored: &mut HashMap<String, StoredMatrix>) -> Result<()> {
    let d = stack.directions();
    for (k, cell) in stack.cells_mut().iter_mut().enumerate() {
        let suffix = suffix(k / d, k % d);
        let (ih_name, hh_name) = (format!("weight_ih{suffix}"), format!("weight_hh{suffix}"));
        let weights = cell.weights();
        let rows = weights.width();
        let ih_shape = [rows, weights.input_size()];
        let hh_shape = [rows, weights.recurrent_size()];
        match (stored.contains_key(&ih_name), stored.contains_key(&hh_name)) {
            (false, false) => continue,
            (true, true) => {}
            (has_ih, _) => {
                let (missing, present) = if has_ih { (&hh_name, &ih_name) } else { (&ih_name, &hh_name) };
                return Err(Error::config(format!(
                    "{present} is stored in fewer bits but {missing} is not: a cell's two weights share a format"
                )));
            }
        }
        for (name, shape) in [(&ih_name, ih_shape), (&hh_name, hh_shape)] {
            let m = &stored[name];
            if [m.rows(), m.cols()] != shape {
                return Err(Error::shape(name, format!("{shape:?}"), &[m.rows(), m.cols()]));
            }
        }
        let (ih, hh) = (stored.remove(&ih_name).expect("checked"), stored.remove(&hh_name).expect("checked"));
        cell.weights_mut().set_stored(ih, hh);
    }
    Ok(())
}
