//! Large work buffers kept from one pass for the next.
//!
//! A pass over a batch allocates megabytes it frees at its end: each layer's output before the next layer reads
//! it, each row group's chunk of input pre-activations, the time-major copies of a batch-first input and output.
//! Freed, that memory goes back to the system (glibc returns large blocks at once), and the next pass takes it
//! again page by page, one page fault each: on the virtual machines recur is measured on a fault costs
//! microseconds, and a forward of the `B32 H256` LSTM took about 900 of them. So such buffers go back to a small
//! pool instead ([`give`]) and the next pass takes them from it ([`take`]), already mapped and in cache.
//!
//! The pool holds at most [`MAX_BUFFERS`] buffers and [`MAX_BYTES`] bytes (per scalar type); past that a buffer
//! is freed as usual. Buffers below [`MIN_BYTES`] are not kept: the allocator reuses small blocks by itself.
//! [`release`] frees them all.
//!
//! A training pass's traces and gradients (tens of megabytes, kept until its backward) go through it too, and
//! come back when the trace is dropped. Zeroing a kept buffer on one thread before the time loop cost more than
//! the fresh pages it saved (the `B32 H256` LSTM's training ×1.08), so a buffer whose every value a pass writes
//! before reading it (every buffer of a batch without padding) is taken as it was ([`take_written`]): alternating
//! runs on an AMD EPYC (Zen 5), the `B32 H256` LSTM's training ×0.95–0.97, the bidirectional one's ×0.95–0.96.
//! The pool hands a request only a buffer at most a quarter larger, so that a pass of the same shapes as the one
//! before finds each of its buffers again rather than a smaller request taking a larger one.

use std::any::Any;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::kernels::Real;

/// The most buffers the pool keeps.
pub(crate) const MAX_BUFFERS: usize = 32;
/// The most bytes the pool keeps.
pub(crate) const MAX_BYTES: usize = 128 << 20;
/// Buffers smaller than this are freed as usual.
pub(crate) const MIN_BYTES: usize = 64 << 10;

/// Free buffers of one scalar type.
#[derive(Debug, Default)]
struct Pool<T> {
    buffers: Vec<Vec<T>>,
}

impl<T: Copy> Pool<T> {
    /// An empty pool, for a `static`.
    const fn new() -> Self {
        Pool { buffers: Vec::new() }
    }

    fn bytes(&self) -> usize {
        self.buffers.iter().map(|b| b.capacity() * size_of::<T>()).sum()
    }

    /// The smallest kept buffer that holds `len` values, if it is not much larger: a pass asks for the same sizes
    /// as the pass before it, and a buffer handed out for a much smaller request would leave the request it
    /// came from to a new allocation while the pool still holds memory.
    fn take(&mut self, len: usize) -> Option<Vec<T>> {
        let best = (0..self.buffers.len())
            .filter(|&i| (len..=len + len / 4).contains(&self.buffers[i].capacity()))
            .min_by_key(|&i| self.buffers[i].capacity())?;
        Some(self.buffers.swap_remove(best))
    }

    /// Keeps `v` if it is large enough and there is room, making room by dropping smaller buffers first.
    fn give(&mut self, v: Vec<T>) {
        let bytes = v.capacity() * size_of::<T>();
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
            return;
        }
        while self.buffers.len() >= MAX_BUFFERS || self.bytes() + bytes > MAX_BYTES {
            let smallest = (0..self.buffers.len()).min_by_key(|&i| self.buffers[i].capacity());
            match smallest {
                Some(i) if self.buffers[i].capacity() < v.capacity() => drop(self.buffers.swap_remove(i)),
                _ => return,
            }
        }
        self.buffers.push(v);
    }
}

/// A kept buffer with room for `len` values, as it was handed back, if the pool has one.
fn pooled<T: Real>(len: usize) -> Option<Vec<T>> {
    if len * size_of::<T>() < MIN_BYTES {
        return None;
    }
    pool::<T>().take(len)
}

/// A kept buffer with room for `len` values, emptied, if the pool has one.
fn kept<T: Real>(len: usize) -> Option<Vec<T>> {
    let mut v = pooled(len)?;
    v.clear();
    Some(v)
}

/// `len` zeros, in a kept buffer when one is large enough (see the module's doc), else newly allocated (`vec!` of
/// zeros asks the allocator for zeroed pages, which cost nothing until the loop that fills them writes them).
pub(crate) fn take<T: Real>(len: usize) -> Vec<T> {
    of_length(kept(len), len)
}

/// `len` values in a kept buffer, holding whatever it held (zeros past its old length), or newly allocated zeros:
/// for a buffer whose every value the caller writes before reading it (a chunk of input pre-activations), so
/// that a kept one is not cleared first (alternating runs, AMD EPYC: the clearing was 1% of a `lstm fwd B32` pass).
pub(crate) fn take_unzeroed<T: Real>(len: usize) -> Vec<T> {
    of_length(pooled(len), len)
}

/// [`take_unzeroed`] when the caller writes every value before reading it (`written_in_full`), else [`take`].
pub(crate) fn take_written<T: Real>(len: usize, written_in_full: bool) -> Vec<T> {
    if written_in_full { take_unzeroed(len) } else { take(len) }
}

/// `buffer` resized to `len` values (the new ones zero), or `len` new zeros without one.
fn of_length<T: Real>(buffer: Option<Vec<T>>, len: usize) -> Vec<T> {
    match buffer {
        Some(mut v) => {
            v.resize(len, T::zero());
            v
        }
        None => vec![T::zero(); len],
    }
}

/// An empty vector with room for `capacity` values, in a kept buffer when one is large enough.
pub(crate) fn take_empty<T: Real>(capacity: usize) -> Vec<T> {
    kept(capacity).unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// A copy of `values`, in a kept buffer when one is large enough.
pub(crate) fn copy_of<T: Real>(values: &[T]) -> Vec<T> {
    let mut v = take_empty(values.len());
    v.extend_from_slice(values);
    v
}

/// Hands `v` back for a later [`take`] (or frees it).
pub(crate) fn give<T: Real>(v: Vec<T>) {
    if v.capacity() * size_of::<T>() >= MIN_BYTES {
        pool::<T>().give(v);
    }
}

/// Frees every buffer the scratch pools keep (at most 128 MB a scalar type), for a program that is done
/// with large passes and wants the memory back.
pub fn release() {
    pool::<f32>().buffers.clear();
    pool::<f64>().buffers.clear();
}

/// Fills every buffer the `f32` pool keeps with NaN, to its capacity: a pass that reads a value of a kept buffer
/// before writing it then shows NaN.
#[cfg(test)]
pub(crate) fn poison_kept_buffers() {
    for v in &mut pool::<f32>().buffers {
        v.clear();
        v.resize(v.capacity(), f32::NAN);
    }
}

static F32_POOL: Mutex<Pool<f32>> = Mutex::new(Pool::new());
static F64_POOL: Mutex<Pool<f64>> = Mutex::new(Pool::new());

/// The pool of `T`'s buffers, locked. [`Real`] is sealed to `f32` and `f64`, so the downcast always finds one
/// (the comparison of types is decided at compile time).
fn pool<T: Real>() -> MutexGuard<'static, Pool<T>> {
    let f32_pool: &'static dyn Any = &F32_POOL;
    let f64_pool: &'static dyn Any = &F64_POOL;
    let shared = (f32_pool.downcast_ref::<Mutex<Pool<T>>>())
        .or_else(|| f64_pool.downcast_ref::<Mutex<Pool<T>>>())
        .expect("Real is sealed to f32 and f64");
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = MIN_BYTES / 4;

    #[test]
    fn a_given_buffer_comes_back_zeroed_and_small_ones_are_not_kept() {
        let mut pool = Pool::<f32>::new();
        pool.give(vec![1.0; BIG]);
        pool.give(vec![1.0; 10]);
        assert_eq!(pool.buffers.len(), 1);
        let v = pool.take(BIG - 5).expect("a kept buffer");
        assert!(v.capacity() >= BIG);
        assert!(pool.take(1).is_none());
        // Through the shared pool, the values are zeros of the asked length.
        give(vec![2.5f32; 3 * BIG]);
        let v: Vec<f32> = take(3 * BIG - 1);
        assert_eq!(v.len(), 3 * BIG - 1);
        assert!(v.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn unzeroed_buffers_have_the_asked_length_shorter_or_longer_than_the_kept_one() {
        give(vec![4.0f32; 2 * BIG]);
        for len in [2 * BIG - 7, 2 * BIG, 3 * BIG + 1, 10] {
            let v: Vec<f32> = take_unzeroed(len);
            // Its values are whatever a kept buffer held (other tests share the pool), or zeros.
            assert_eq!(v.len(), len);
            give(v);
        }
    }

    #[test]
    fn written_buffers_are_zeros_unless_written_in_full() {
        give(vec![f32::NAN; 2 * BIG]);
        let v: Vec<f32> = take_written(2 * BIG, false);
        assert!(v.iter().all(|&x| x == 0.0));
        give(v);
        assert_eq!(take_written::<f32>(2 * BIG - 1, true).len(), 2 * BIG - 1);
    }

    #[test]
    fn after_a_release_buffers_are_new_and_zeroed() {
        give(vec![3.0f32; 2 * BIG]);
        release();
        let v: Vec<f32> = take(2 * BIG);
        assert!(v.len() == 2 * BIG && v.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn take_picks_the_smallest_that_fits_and_the_pool_stays_bounded() {
        let mut pool = Pool::<f32>::new();
        for n in [4, 2, 3] {
            pool.give(Vec::with_capacity(n * BIG));
        }
        assert_eq!(pool.take(3 * BIG - 5).map(|v| v.capacity()), Some(3 * BIG));
        // Nothing more than a quarter larger than the request: the 4·BIG buffer stays for a request its size.
        assert!(pool.take(3 * BIG).is_none());
        assert_eq!(pool.take(4 * BIG - 3).map(|v| v.capacity()), Some(4 * BIG));
        for _ in 0..3 * MAX_BUFFERS {
            pool.give(Vec::with_capacity(BIG));
        }
        assert!(pool.buffers.len() <= MAX_BUFFERS && pool.bytes() <= MAX_BYTES);
        // A larger buffer displaces smaller ones; one past the byte cap is not kept.
        pool.give(Vec::with_capacity(5 * BIG));
        assert!(pool.buffers.iter().any(|b| b.capacity() == 5 * BIG));
        pool.give(Vec::with_capacity(MAX_BYTES / 4 + 1));
        assert!(pool.buffers.iter().all(|b| b.capacity() <= MAX_BYTES / 4));
    }
}
