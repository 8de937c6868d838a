//! Truncated backpropagation through time: a long sequence is trained in windows of `k` steps, and the final
//! state of one window becomes the (detached) initial state of the next, as PyTorch users do with
//! `h = h.detach()` and Keras users with `stateful=True`.
//!
//! Detaching costs nothing here: [`Recurrent::backward`](crate::Recurrent::backward) returns the gradient of the
//! initial state and simply nobody sends it further back. Memory is that of one window: a training forward keeps,
//! per layer and direction, `k·B·(G·H + H_out + H + cache)` values (see
//! [`Recurrent::forward_train`](crate::Recurrent::forward_train)), independent of the stream's length.

use std::ops::Range;

use crate::error::{Error, Result};

/// The windows of at most `window` steps that cover `steps` steps, in order (the last may be shorter).
///
/// ```
/// let w: Vec<_> = recur::train::windows(10, 4).collect();
/// assert_eq!(w, vec![0..4, 4..8, 8..10]);
/// ```
pub fn windows(steps: usize, window: usize) -> impl Iterator<Item = Range<usize>> {
    let window = window.max(1);
    (0..steps.div_ceil(window)).map(move |i| i * window..((i + 1) * window).min(steps))
}

/// Cuts a sequence of `len` items into `batch` contiguous streams, the char-level language-model layout: stream
/// `b` holds items `[b·T, (b+1)·T)` with `T = len / batch` (a remainder is dropped). Returns `T` and the
/// time-major order of item indices, `index[t·batch + b] = b·T + t`.
pub fn contiguous_streams(len: usize, batch: usize) -> Result<(usize, Vec<usize>)> {
    if batch == 0 || len < batch {
        return Err(Error::config(format!("cannot cut {len} items into {batch} streams of at least one item")));
    }
    let steps = len / batch;
    let index = (0..steps).flat_map(|t| (0..batch).map(move |b| b * steps + t)).collect();
    Ok((steps, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_step_once() {
        for (steps, k) in [(10, 4), (8, 4), (3, 5), (1, 1), (0, 3)] {
            let all: Vec<usize> = windows(steps, k).flatten().collect();
            assert_eq!(all, (0..steps).collect::<Vec<_>>(), "{steps} {k}");
            assert!(windows(steps, k).all(|w| w.len() <= k && !w.is_empty()));
        }
    }

    #[test]
    fn contiguous_streams_lay_out_time_major() {
        let (steps, index) = contiguous_streams(7, 2).unwrap();
        assert_eq!(steps, 3);
        // stream 0: items 0,1,2; stream 1: items 3,4,5; item 6 dropped.
        assert_eq!(index, vec![0, 3, 1, 4, 2, 5]);
        assert!(contiguous_streams(1, 2).is_err());
        assert!(contiguous_streams(5, 0).is_err());
    }
}
