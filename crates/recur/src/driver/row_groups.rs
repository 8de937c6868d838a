//! An inference pass over a large batch as groups of rows, one group per thread, each running the whole stack on
//! its own.
//!
//! Rows of a batch never meet in a recurrent layer: row `b`'s state at every step depends only on row `b`'s input.
//! So a batch cut into groups of rows runs as independent passes, with no meeting between them until the end.
//! Cutting every step in halves instead meets the other thread once a step; on a virtual machine whose idle
//! thread sleeps and is woken through the hypervisor, each meeting costs tens of microseconds, as much as half a
//! step (Intel Xeon, 2 cores, `B32 H256` LSTM: ~100 context switches a pass with a meeting per step, ~10 in
//! groups). Training keeps the per-step halves: its backward pass gathers every row into the weight gradients.

use std::ops::Range;

/// Rows below which a group would leave the tile kernels short of rows.
const GROUP_MIN_ROWS: usize = 8;

/// The row groups `batch` rows run in on this thread pool, or `None` when they run as one (a small batch, a small
/// step, or a single thread). `step_work` is the multiply-adds of one step's recurrent product for the whole
/// batch.
pub(crate) fn row_groups(batch: usize, step_work: usize) -> Option<Vec<Range<usize>>> {
    let threads = rayon::current_num_threads();
    let groups = threads.min(batch / GROUP_MIN_ROWS);
    if groups < 2 || step_work < super::split::PARALLEL_STEP_WORK {
        return None;
    }
    Some((0..groups).map(|g| g * batch / groups..(g + 1) * batch / groups).collect())
}

/// Rows `rows` of each of the `blocks` consecutive `batch × width` blocks of `data` (a block per time step, or per
/// layer of a state), as `blocks × rows.len() × width` values.
pub(crate) fn rows_of<T: Copy>(data: &[T], batch: usize, width: usize, rows: &Range<usize>) -> Vec<T> {
    let block = batch * width;
    if block == 0 {
        return Vec::new();
    }
    data.chunks_exact(block).flat_map(|b| b[rows.start * width..rows.end * width].iter().copied()).collect()
}

/// The inverse of [`rows_of`]: every group's rows put back in place, block by block, for groups that cover the
/// batch in order. `parts[g]` holds group `g`'s `blocks × rows × width` values.
pub(crate) fn merge_rows<T: Copy>(parts: &[&[T]], groups: &[Range<usize>], width: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(total);
    let Some(first) = groups.first().filter(|g| !g.is_empty() && width > 0) else { return out };
    let blocks = parts[0].len() / (first.len() * width);
    for b in 0..blocks {
        for (part, rows) in parts.iter().zip(groups) {
            let len = rows.len() * width;
            out.extend_from_slice(&part[b * len..(b + 1) * len]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_the_batch_and_merging_undoes_the_cut() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let groups = pool.install(|| row_groups(33, 1 << 30)).expect("a large batch on two threads");
        assert_eq!(groups, vec![0..16, 16..33]);
        let (batch, width, blocks) = (33, 3, 4);
        let data: Vec<u32> = (0..(blocks * batch * width) as u32).collect();
        let parts: Vec<Vec<u32>> = groups.iter().map(|g| rows_of(&data, batch, width, g)).collect();
        assert_eq!(parts[0][..3], [0, 1, 2]);
        assert_eq!(parts[1][..3], [48, 49, 50]);
        let parts: Vec<&[u32]> = parts.iter().map(Vec::as_slice).collect();
        assert_eq!(merge_rows(&parts, &groups, width), data);
    }

    #[test]
    fn small_batches_small_steps_and_one_thread_run_as_one() {
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert_eq!(two.install(|| row_groups(15, 1 << 30)), None);
        assert_eq!(two.install(|| row_groups(64, 100)), None);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(one.install(|| row_groups(64, 1 << 30)), None);
    }
}
