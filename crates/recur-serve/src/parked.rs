//! Parked streams: each one's state bytes ([`recur::StreamState::to_bytes`] of the stream alone, of one length for
//! one model) in a slot of a slab, and its step counts in a table keyed by its id, so that a parked stream costs
//! its state bytes and a table entry of 48 bytes (and the bytes of a string id), not an allocation of its own.
//!
//! The slab grows by chunks of [`CHUNK_SLOTS`] slots and never moves a slot; a slot freed by a stream that resumes
//! is the next one handed out.

use std::collections::HashMap;

use crate::protocol::SequenceId;

/// Slots a chunk of the slab holds: large enough that the chunks' own bookkeeping is nothing next to them, small
/// enough that a server with a few parked streams holds little (256 × 576 bytes for an I32 H64 LSTM).
pub const CHUNK_SLOTS: usize = 256;

/// Where a stream stands in its steps, live or parked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Steps taken.
    pub steps: u64,
    /// The step count of its latest stored record.
    pub durable: u64,
    /// Whether the store holds a record of it.
    pub stored: bool,
}

/// A parked stream's entry: its slot and its counts.
#[derive(Debug)]
struct Entry {
    slot: u32,
    stored: bool,
    steps: u64,
    durable: u64,
}

/// The parked streams of one model.
#[derive(Debug)]
pub struct ParkedStreams {
    slot_len: usize,
    chunks: Vec<Box<[u8]>>,
    /// Slots once used and now free.
    free: Vec<u32>,
    /// Slots handed out from the chunks so far (the free ones among them included).
    used: usize,
    table: HashMap<SequenceId, Entry>,
}

impl ParkedStreams {
    /// No parked streams, for states of `slot_len` bytes.
    pub fn new(slot_len: usize) -> Self {
        ParkedStreams { slot_len, chunks: Vec::new(), free: Vec::new(), used: 0, table: HashMap::new() }
    }

    /// Streams parked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no stream is parked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The bytes a parked state has.
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// Whether stream `id` is parked.
    pub fn contains(&self, id: &SequenceId) -> bool {
        self.table.contains_key(id)
    }

    /// The parked streams' ids.
    pub fn ids(&self) -> impl Iterator<Item = &SequenceId> {
        self.table.keys()
    }

    /// The counts of parked stream `id`.
    pub fn counts(&self, id: &SequenceId) -> Option<StepCounts> {
        self.table.get(id).map(|e| StepCounts { steps: e.steps, durable: e.durable, stored: e.stored })
    }

    /// Parks stream `id` with its state's bytes and its counts, replacing what was parked under `id`. Fails,
    /// parking nothing, when the bytes are not of the model's state length.
    pub fn park(&mut self, id: SequenceId, state: &[u8], counts: StepCounts) -> Result<(), String> {
        if state.len() != self.slot_len {
            return Err(format!("a state of {} bytes, where this model's states have {}", state.len(), self.slot_len));
        }
        if let Some(old) = self.table.remove(&id) {
            self.free.push(old.slot);
        }
        let slot = self.free_slot();
        self.slot_mut(slot).copy_from_slice(state);
        let StepCounts { steps, durable, stored } = counts;
        self.table.insert(id, Entry { slot, stored, steps, durable });
        Ok(())
    }

    /// Takes stream `id` out: its counts and its state's bytes, which stay readable until the next park.
    pub fn take(&mut self, id: &SequenceId) -> Option<(StepCounts, &[u8])> {
        let Entry { slot, stored, steps, durable } = self.table.remove(id)?;
        self.free.push(slot);
        Some((StepCounts { steps, durable, stored }, self.slot(slot)))
    }

    /// A slot to write: a freed one, or the next of the last chunk, or the first of a new chunk.
    fn free_slot(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        if self.used == self.chunks.len() * CHUNK_SLOTS {
            self.chunks.push(vec![0; CHUNK_SLOTS * self.slot_len].into_boxed_slice());
        }
        self.used += 1;
        u32::try_from(self.used - 1).expect("fewer than 2^32 parked streams")
    }

    fn slot(&self, slot: u32) -> &[u8] {
        let (chunk, at) = (slot as usize / CHUNK_SLOTS, slot as usize % CHUNK_SLOTS * self.slot_len);
        &self.chunks[chunk][at..at + self.slot_len]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        let (chunk, at) = (slot as usize / CHUNK_SLOTS, slot as usize % CHUNK_SLOTS * self.slot_len);
        &mut self.chunks[chunk][at..at + self.slot_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn parked_states_come_back_as_they_went_and_freed_slots_are_reused() {
        let mut parked = ParkedStreams::new(10);
        let count = CHUNK_SLOTS as u64 * 2 + 3;
        for n in 1..=count {
            let counts = StepCounts { steps: n, durable: n / 2, stored: n % 2 == 0 };
            parked.park(SequenceId::Number(n), &state(10, n as u8), counts).unwrap();
        }
        assert_eq!((parked.len(), parked.chunks.len()), (count as usize, 3));
        let (counts, bytes) = parked.take(&SequenceId::Number(7)).unwrap();
        assert_eq!(counts, StepCounts { steps: 7, durable: 3, stored: false });
        assert_eq!(bytes, state(10, 7));
        assert!(parked.take(&SequenceId::Number(7)).is_none());
        parked.park(SequenceId::Text("seven".into()), &state(10, 99), StepCounts::default()).unwrap();
        assert_eq!((parked.used, parked.free.len()), (count as usize, 0), "the freed slot is reused");
        for n in (1..=count).filter(|&n| n != 7) {
            let (counts, bytes) = parked.take(&SequenceId::Number(n)).unwrap();
            assert_eq!((counts.steps, bytes), (n, &state(10, n as u8)[..]));
        }
        assert_eq!(parked.take(&SequenceId::Text("seven".into())).unwrap().1, state(10, 99));
        assert!(parked.is_empty());
    }

    #[test]
    fn parking_again_replaces_and_a_wrong_length_is_refused() {
        let mut parked = ParkedStreams::new(4);
        let id = SequenceId::Number(1);
        parked.park(id.clone(), &[1, 2, 3, 4], StepCounts { steps: 1, ..StepCounts::default() }).unwrap();
        parked.park(id.clone(), &[5, 6, 7, 8], StepCounts { steps: 2, ..StepCounts::default() }).unwrap();
        let error = parked.park(SequenceId::Number(2), &[1, 2, 3], StepCounts::default()).unwrap_err();
        assert!(error.contains("3 bytes") && error.contains("have 4"), "{error}");
        assert_eq!(parked.len(), 1);
        assert_eq!(parked.counts(&id).map(|c| c.steps), Some(2));
        assert_eq!(parked.take(&id).unwrap().1, [5, 6, 7, 8]);
        assert_eq!(parked.used, 1, "the replaced state's slot is reused");
    }
}
