//! Gate passes in blocks of units, for the compiler's vectoriser.
//!
//! A gate pass reads and writes a dozen slices of one row (the gates of each projection, the states, the cache),
//! most of them cut from the same buffers. Over the slices themselves the compiler cannot tell that they do not
//! overlap, and leaves the loop scalar. Through local arrays of [`BLOCK`] units it can: each block is loaded
//! from the slices, computed array by array into 16-lane vectors, and stored back. A pass implements
//! [`UnitBlocks::block`] for one block of one row, and runs as [`InBlocks`] through `kernels::simd::vectorised`,
//! so the arrays' loops are built for the CPU's widest vectors. The walk over rows and blocks is written once,
//! here; a cell writes only its math.

use num_traits::Zero;

use crate::kernels::simd::Vectorised;

/// Units per block: one 512-bit vector of `f32`.
pub(crate) const BLOCK: usize = 16;

/// A gate pass over `rows × units` values, a block of one row's units at a time.
pub(crate) trait UnitBlocks {
    /// `(rows, units a row)`.
    fn shape(&self) -> (usize, usize);

    /// Units `j..j + w` of row `row`, `w ≤ BLOCK`.
    fn block(&mut self, row: usize, j: usize, w: usize);
}

/// A [`UnitBlocks`] pass as vector work: row by row, whole blocks first, where every load and store has a
/// constant length and compiles to vector moves, then the rest of the row.
pub(crate) struct InBlocks<P>(pub P);

impl<P: UnitBlocks> Vectorised for InBlocks<P> {
    #[inline(always)]
    fn run(self) {
        let mut pass = self.0;
        let (rows, n) = pass.shape();
        for row in 0..rows {
            let mut j = 0;
            while j + BLOCK <= n {
                pass.block(row, j, BLOCK);
                j += BLOCK;
            }
            if j < n {
                pass.block(row, j, n - j);
            }
        }
    }
}

/// `from[at..at + w]`, zero-padded to a block.
#[inline(always)]
pub(crate) fn load<T: Copy + Zero>(from: &[T], at: usize, w: usize) -> [T; BLOCK] {
    let mut v = [T::zero(); BLOCK];
    v[..w].copy_from_slice(&from[at..at + w]);
    v
}

/// `to[at..at + w] ← v[..w]`.
#[inline(always)]
pub(crate) fn store<T: Copy>(to: &mut [T], at: usize, w: usize, v: &[T; BLOCK]) {
    to[at..at + w].copy_from_slice(&v[..w]);
}

/// A block whose every lane is `f(lane)`.
#[inline(always)]
pub(crate) fn lanes<T: Copy + Zero>(mut f: impl FnMut(usize) -> T) -> [T; BLOCK] {
    let mut v = [T::zero(); BLOCK];
    for (l, x) in v.iter_mut().enumerate() {
        *x = f(l);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Record<'a>(usize, usize, &'a mut Vec<(usize, usize, usize)>);

    impl UnitBlocks for Record<'_> {
        fn shape(&self) -> (usize, usize) {
            (self.0, self.1)
        }

        fn block(&mut self, row: usize, j: usize, w: usize) {
            self.2.push((row, j, w));
        }
    }

    #[test]
    fn blocks_cover_every_unit_once() {
        for (n, want) in [(0, vec![]), (5, vec![(0, 5)]), (16, vec![(0, 16)]), (37, vec![(0, 16), (16, 16), (32, 5)])] {
            let mut seen = Vec::new();
            InBlocks(Record(1, n, &mut seen)).run();
            let want: Vec<_> = want.into_iter().map(|(j, w)| (0, j, w)).collect();
            assert_eq!(seen, want, "n = {n}");
        }
        let mut seen = Vec::new();
        InBlocks(Record(3, 20, &mut seen)).run();
        assert_eq!(seen, [(0, 0, 16), (0, 16, 4), (1, 0, 16), (1, 16, 4), (2, 0, 16), (2, 16, 4)]);
    }

    #[test]
    fn load_pads_and_store_writes_only_its_lanes() {
        let from: Vec<f32> = (0..10).map(|i| i as f32).collect();
        let v = load(&from, 7, 3);
        assert_eq!(&v[..4], &[7.0, 8.0, 9.0, 0.0]);
        let mut to = vec![-1.0f32; 6];
        store(&mut to, 2, 3, &lanes(|l| l as f32 + 0.5));
        assert_eq!(to, vec![-1.0, -1.0, 0.5, 1.5, 2.5, -1.0]);
    }
}
