//! A direction's time loop over a large batch as groups of rows, one group per thread, each walking every step on
//! its own.
//!
//! Rows of a batch never meet in a recurrent layer: row `b`'s state at every step depends only on row `b`'s input
//! (and, backward, its gradient only on row `b`'s). So the time loop of a batch cut into groups of rows runs as
//! independent loops, which meet once, at the end, where the weight gradients gather every row in one product as
//! before. Cutting every step in halves instead meets the other thread once a step; on a virtual machine whose
//! idle thread sleeps and is woken through the hypervisor, each meeting costs tens of microseconds, as much as
//! half a step (Intel Xeon, 2 cores, a 2 s `B32 H256` LSTM forward run: 7654 context switches with a meeting per
//! step, 739 in groups). Every row is computed by the same code either way, so the results are bit for bit
//! those of one thread.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Rows below which a group would leave the tile kernels short of rows.
const GROUP_MIN_ROWS: usize = 8;

/// The row groups `batch` rows walk time in on this thread pool: one group per thread when `allowed` and worth it,
/// else a single group of the whole batch (a small batch, a small step, a single thread). `step_work` is the
/// multiply-adds of one step's recurrent product for the whole batch.
pub(crate) fn row_groups(batch: usize, step_work: usize, allowed: bool) -> Vec<Range<usize>> {
    let groups = rayon::current_num_threads().min(batch / GROUP_MIN_ROWS);
    if !allowed || groups < 2 || step_work < super::split::PARALLEL_STEP_WORK {
        return std::iter::once(0..batch).collect();
    }
    (0..groups).map(|g| g * batch / groups..(g + 1) * batch / groups).collect()
}

/// Runs every group's job, on the pool's threads when there is more than one.
pub(crate) fn run_groups<J: Send>(jobs: Vec<J>, run: impl Fn(J) + Sync + Send) {
    if jobs.len() == 1 {
        jobs.into_iter().for_each(run);
    } else {
        GROUP_RUNS.fetch_add(1, Ordering::Relaxed);
        use rayon::prelude::*;
        jobs.into_par_iter().for_each(run);
    }
}

static GROUP_RUNS: AtomicU64 = AtomicU64::new(0);
static STEP_HALVES: AtomicU64 = AtomicU64::new(0);

/// Counts a step whose rows ran in two halves on two threads.
pub(crate) fn count_step_halves() {
    STEP_HALVES.fetch_add(1, Ordering::Relaxed);
}

/// How often the driver has run work on more than one thread since the process started, so that a test can tell
/// that a parallel path ran (one relaxed atomic add per time loop or split step: nothing next to the work).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParallelRuns {
    /// Time loops run as groups of rows, one group per thread.
    pub row_groups: u64,
    /// Steps whose rows ran in two halves on two threads.
    pub step_halves: u64,
}

/// The counts so far.
pub fn parallel_runs() -> ParallelRuns {
    ParallelRuns { row_groups: GROUP_RUNS.load(Ordering::Relaxed), step_halves: STEP_HALVES.load(Ordering::Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_the_batch_in_order() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let groups = pool.install(|| row_groups(33, 1 << 30, true));
        assert_eq!(groups, vec![0..16, 16..33]);
    }

    #[test]
    fn small_batches_small_steps_one_thread_and_no_groups_run_as_one() {
        let two = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let whole = |batch: usize| -> Vec<Range<usize>> { std::iter::once(0..batch).collect() };
        assert_eq!(two.install(|| row_groups(15, 1 << 30, true)), whole(15));
        assert_eq!(two.install(|| row_groups(64, 100, true)), whole(64));
        assert_eq!(two.install(|| row_groups(64, 1 << 30, false)), whole(64));
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        assert_eq!(one.install(|| row_groups(64, 1 << 30, true)), whole(64));
    }
}
