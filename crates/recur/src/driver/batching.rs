//! Variable-length batches, as PyTorch's packed sequences: the driver works on the batch sorted by length,
//! longest first, so that the sequences still running at any time step are a prefix of the batch, and each step
//! computes only that prefix: the batch shrinks as sequences end, and no work goes to padding.

use std::borrow::Cow;
use std::cmp::Reverse;

use super::Direction;

/// The order in which a batch is run and how many of its rows run at each time step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Batching {
    /// `order[i]` is the original row of sorted row `i`; `None` when the batch is already in order.
    order: Option<Vec<usize>>,
    /// Lengths in sorted order.
    lengths: Vec<usize>,
    /// `active[t]`: the number of (sorted) rows whose sequence is longer than `t`.
    active: Vec<usize>,
}

impl Batching {
    /// The batching of `batch` sequences of `steps` padded steps with the given lengths (all `steps` when
    /// `None`). Lengths must lie in `1..=steps` (the public layer checks them).
    pub fn new(steps: usize, batch: usize, lengths: Option<&[usize]>) -> Self {
        let Some(lengths) = lengths.filter(|l| l.iter().any(|&n| n != steps)) else {
            return Batching { order: None, lengths: vec![steps; batch], active: vec![batch; steps] };
        };
        let mut order: Vec<usize> = (0..batch).collect();
        // A stable sort keeps equal lengths in their original order, as PyTorch's packing does.
        order.sort_by_key(|&b| Reverse(lengths[b]));
        let sorted: Vec<usize> = order.iter().map(|&b| lengths[b]).collect();
        let active = (0..steps).map(|t| sorted.iter().take_while(|&&n| n > t).count()).collect();
        let order = order.iter().enumerate().any(|(i, &b)| i != b).then_some(order);
        Batching { order, lengths: sorted, active }
    }

    /// Rows running at each time step.
    pub fn active(&self) -> &[usize] {
        &self.active
    }

    /// Whether every row runs at every step (no padding), so that each step writes every row of a buffer.
    pub fn is_full(&self) -> bool {
        self.active.iter().all(|&a| a == self.lengths.len())
    }

    /// Each sorted row's length.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// The `s`-th step a direction takes: its time index, the time index of the step before it, and how many
    /// rows run at each. `None` when no row runs at that time (trailing padding).
    pub fn step(&self, direction: Direction, s: usize) -> Option<Step> {
        let steps = self.active.len();
        let t = direction.time(s, steps);
        let active = self.active[t];
        let prev = (s > 0).then(|| direction.time(s - 1, steps));
        let prev_active = prev.map_or(0, |p| self.active[p]);
        (active > 0).then_some(Step { t, prev, active, prev_active })
    }

    /// `data`, made of groups of `batch` rows of `width` values, with the rows of every group in sorted order.
    pub fn sort<'a, T: Copy>(&self, data: &'a [T], width: usize) -> Cow<'a, [T]> {
        match &self.order {
            None => Cow::Borrowed(data),
            Some(order) => Cow::Owned(permute(data, width, order, false)),
        }
    }

    /// The inverse of [`Batching::sort`].
    pub fn unsort<T: Copy>(&self, data: Vec<T>, width: usize) -> Vec<T> {
        match &self.order {
            None => data,
            Some(order) => permute(&data, width, order, true),
        }
    }
}

/// One step of a direction over a [`Batching`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// The time index.
    pub t: usize,
    /// The time index of the step taken before (`None` for the first).
    pub prev: Option<usize>,
    /// Rows running at `t`: a prefix of the sorted batch.
    pub active: usize,
    /// Rows that ran at `prev` (0 for the first step): rows beyond it start at this step, from the initial state.
    pub prev_active: usize,
}

/// Gathers (`inverse = false`: `out[i] = data[order[i]]`) or scatters (`out[order[i]] = data[i]`) the rows of
/// every group of `order.len()` rows.
fn permute<T: Copy>(data: &[T], width: usize, order: &[usize], inverse: bool) -> Vec<T> {
    let group = order.len() * width;
    let mut out = data.to_vec();
    if group == 0 {
        return out;
    }
    for (src, dst) in data.chunks_exact(group).zip(out.chunks_exact_mut(group)) {
        for (i, &b) in order.iter().enumerate() {
            let (from, to) = if inverse { (i, b) } else { (b, i) };
            dst[to * width..(to + 1) * width].copy_from_slice(&src[from * width..(from + 1) * width]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_longest_first_and_counts_running_rows() {
        let b = Batching::new(4, 4, Some(&[2, 4, 1, 2]));
        assert_eq!(b.lengths(), &[4, 2, 2, 1]);
        assert_eq!(b.active(), &[4, 3, 1, 1]);
        // Rows of width 1, one group: original rows [a, b, c, d] -> sorted [b, a, d, c].
        let data = [10, 11, 12, 13];
        assert_eq!(b.sort(&data, 1).into_owned(), vec![11, 10, 13, 12]);
        assert_eq!(b.unsort(b.sort(&data, 1).into_owned(), 1), data.to_vec());
    }

    #[test]
    fn full_lengths_are_the_identity() {
        let b = Batching::new(3, 2, Some(&[3, 3]));
        assert_eq!(b, Batching::new(3, 2, None));
        assert!(matches!(b.sort(&[1, 2], 1), Cow::Borrowed(_)));
        assert_eq!(b.active(), &[2, 2, 2]);
        assert!(b.is_full());
        // Padding anywhere, even the same padding for every row, is not full.
        assert!(!Batching::new(3, 2, Some(&[3, 2])).is_full());
        assert!(!Batching::new(3, 2, Some(&[2, 2])).is_full());
    }

    #[test]
    fn already_sorted_lengths_need_no_permutation() {
        let b = Batching::new(3, 3, Some(&[3, 2, 1]));
        assert!(matches!(b.sort(&[1, 2, 3], 1), Cow::Borrowed(_)));
        assert_eq!(b.active(), &[3, 2, 1]);
    }
}
