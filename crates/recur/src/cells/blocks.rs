//! Gate passes in blocks of units, for the compiler's vectoriser.
//!
//! A gate pass reads and writes a dozen slices of one row (the gates of each projection, the states, the cache),
//! most of them cut from the same buffers. Over the slices themselves the compiler cannot tell that they do not
//! overlap, and leaves the loop scalar. Through local arrays of [`BLOCK`] units it can: each block is loaded
//! from the slices, computed array by array into 16-lane vectors, and stored back. A pass implements
//! [`UnitBlocks::block`] and runs through `kernels::simd::vectorised`, so the arrays' loops are built
//! for the CPU's widest vectors.

use num_traits::Zero;

/// Units per block: one 512-bit vector of `f32`.
pub(crate) const BLOCK: usize = 16;

/// A gate pass over one row of units, a block at a time.
pub(crate) trait UnitBlocks {
    /// Units `j..j + w`, `w ≤ BLOCK`.
    fn block(&mut self, j: usize, w: usize);

    /// All `n` units: whole blocks first, where every load and store has a constant length and compiles to
    /// vector moves, then the rest.
    #[inline(always)]
    fn all_units(&mut self, n: usize) {
        let mut j = 0;
        while j + BLOCK <= n {
            self.block(j, BLOCK);
            j += BLOCK;
        }
        if j < n {
            self.block(j, n - j);
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

    struct Record(Vec<(usize, usize)>);

    impl UnitBlocks for Record {
        fn block(&mut self, j: usize, w: usize) {
            self.0.push((j, w));
        }
    }

    #[test]
    fn blocks_cover_every_unit_once() {
        for (n, want) in [(0, vec![]), (5, vec![(0, 5)]), (16, vec![(0, 16)]), (37, vec![(0, 16), (16, 16), (32, 5)])] {
            let mut r = Record(Vec::new());
            r.all_units(n);
            assert_eq!(r.0, want, "n = {n}");
        }
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
