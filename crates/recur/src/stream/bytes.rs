//! The byte format of a parked [`StreamState`](super::StreamState), version 1. All integers are little-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `RECURSTM` (ASCII) |
//! | 8 | 4 | format version, `u32` = 1 |
//! | 12 | 4 | mode, `u32`: 0 `RNN_TANH`, 1 `RNN_RELU`, 2 `LSTM`, 3 `GRU` |
//! | 16 | 8 | number of layers `L`, `u64` |
//! | 24 | 8 | number of streams `B`, `u64` |
//! | 32 | 8 | input size `I`, `u64` |
//! | 40 | 8 | hidden size `H`, `u64` |
//! | 48 | 8 | output size `H_out` (the projection size of a projected LSTM, else `H`), `u64` |
//! | 56 | 4·L·B·H_out | `h`, `f32`, layer-major then stream-major: `h[l][b][j]` |
//! | … | 4·L·B·H | LSTM only: `c`, `f32`, in the same order |
//! | end − 8 | 8 | FNV-1a 64-bit hash of every byte before it, `u64` |
//!
//! A reader checks, in this order, the magic, the version (a later version may lay out the rest differently),
//! the hash (so that a flipped or lost byte is reported as corruption, not misread), then that the mode and sizes
//! are the model's and that the length is the one they imply. The weights are not part of the state: a state
//! restores into any model of the same mode and sizes.

use crate::error::{Error, Result};
use crate::layer::Mode;

/// The first bytes of every stream state.
pub(super) const MAGIC: &[u8; 8] = b"RECURSTM";
/// The format version this build writes and reads.
pub(super) const VERSION: u32 = 1;

const HEADER_LEN: usize = 56;
const HASH_LEN: usize = 8;

/// The mode and sizes a state's bytes describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub mode: Mode,
    pub layers: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
    pub output: usize,
}

/// The state read back from bytes: its header, and one `h` (and, for an LSTM, one `c`) buffer per layer.
pub(super) struct Decoded {
    pub header: Header,
    pub h: Vec<Vec<f32>>,
    pub c: Vec<Vec<f32>>,
}

/// Writes the header, the states and the hash.
pub(super) fn encode(header: &Header, h: &[Vec<f32>], c: &[Vec<f32>]) -> Vec<u8> {
    let values: usize = h.iter().chain(c).map(Vec::len).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + 4 * values + HASH_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&mode_code(header.mode).to_le_bytes());
    for size in [header.layers, header.batch, header.input, header.hidden, header.output] {
        out.extend_from_slice(&(size as u64).to_le_bytes());
    }
    for v in h.iter().chain(c).flatten() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let hash = fnv1a64(&out);
    out.extend_from_slice(&hash.to_le_bytes());
    out
}

/// Reads bytes written by [`encode`]. Whether they fit a model is the caller's question.
pub(super) fn decode(bytes: &[u8]) -> Result<Decoded> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(decode_error(format!(
            "not a stream state: expected the magic bytes {:?} at the start, found {:?}",
            String::from_utf8_lossy(MAGIC),
            String::from_utf8_lossy(&bytes[..bytes.len().min(MAGIC.len())])
        )));
    }
    if bytes.len() < HEADER_LEN + HASH_LEN {
        return Err(decode_error(format!(
            "truncated: expected at least {} bytes (header and hash), found {}",
            HEADER_LEN + HASH_LEN,
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(decode_error(format!(
            "format version {version} is not supported (this build reads version {VERSION})"
        )));
    }
    let (body, hash) = bytes.split_at(bytes.len() - HASH_LEN);
    let stored = u64::from_le_bytes(hash.try_into().expect("8 bytes"));
    let computed = fnv1a64(body);
    if stored != computed {
        return Err(decode_error(format!(
            "corrupt or truncated: the checksum is {stored:#018x}, but the bytes hash to {computed:#018x}"
        )));
    }
    let found = read_header(body)?;
    let cell = if found.mode == Mode::Lstm { found.hidden } else { 0 };
    let per_layer = |width: usize| found.batch.checked_mul(width);
    let (h_len, c_len) = match (per_layer(found.output), per_layer(cell)) {
        (Some(h), Some(c)) => (h, c),
        _ => return Err(decode_error(format!("{} streams do not fit in memory", found.batch))),
    };
    let values = h_len
        .checked_add(c_len)
        .and_then(|v| v.checked_mul(found.layers))
        .and_then(|v| v.checked_mul(4))
        .and_then(|v| v.checked_add(HEADER_LEN));
    if values != Some(body.len()) {
        return Err(decode_error(format!(
            "inconsistent length: {} streams of {} need {} bytes before the checksum, found {}",
            found.batch,
            found.describe(),
            values.map_or_else(|| "more than addressable".to_string(), |v| v.to_string()),
            body.len()
        )));
    }
    let mut floats = body[HEADER_LEN..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")));
    let mut layers =
        |len: usize| -> Vec<Vec<f32>> { (0..found.layers).map(|_| floats.by_ref().take(len).collect()).collect() };
    let h = layers(h_len);
    let c = layers(c_len);
    Ok(Decoded { header: found, h, c })
}

fn read_header(body: &[u8]) -> Result<Header> {
    let code = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes"));
    let mode = mode_of_code(code).ok_or_else(|| decode_error(format!("unknown mode code {code} (expected 0 to 3)")))?;
    let mut sizes = [0usize; 5];
    for (k, size) in sizes.iter_mut().enumerate() {
        let at = 16 + 8 * k;
        let raw = u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        *size = usize::try_from(raw).map_err(|_| decode_error(format!("size {raw} does not fit this machine")))?;
    }
    let [layers, batch, input, hidden, output] = sizes;
    Ok(Header { mode, layers, batch, input, hidden, output })
}

impl Header {
    /// The model the state belongs to, in words: `LSTM with 2 layer(s), input_size=3, …`.
    pub fn describe(&self) -> String {
        format!(
            "{} with {} layer(s), input_size={}, hidden_size={}, output size {}",
            self.mode, self.layers, self.input, self.hidden, self.output
        )
    }

    /// Whether two headers describe the same kind of model (any number of streams).
    pub fn same_model(&self, other: &Header) -> bool {
        let key = |h: &Header| (h.mode, h.layers, h.input, h.hidden, h.output);
        key(self) == key(other)
    }
}

pub(super) fn decode_error(reason: String) -> Error {
    Error::Decode { what: "stream state".into(), reason }
}

fn mode_code(mode: Mode) -> u32 {
    match mode {
        Mode::RnnTanh => 0,
        Mode::RnnRelu => 1,
        Mode::Lstm => 2,
        Mode::Gru => 3,
    }
}

fn mode_of_code(code: u32) -> Option<Mode> {
    [Mode::RnnTanh, Mode::RnnRelu, Mode::Lstm, Mode::Gru].into_iter().find(|&m| mode_code(m) == code)
}

/// FNV-1a, 64-bit: a byte at a time, `hash ← (hash ⊕ byte) · 0x100000001b3` from `0xcbf29ce484222325`. Every step
/// is a bijection of the hash, so a change confined to one byte always changes the result. The state format's
/// checksum, for formats that wrap it (a server's records of its streams).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(mode: Mode, batch: usize) -> Header {
        Header { mode, layers: 2, batch, input: 3, hidden: 4, output: 4 }
    }

    fn states(batch: usize, width: usize, offset: f32) -> Vec<Vec<f32>> {
        (0..2).map(|l| (0..batch * width).map(|k| offset + (l * 100 + k) as f32 * 0.25).collect()).collect()
    }

    #[test]
    fn round_trips_every_value() {
        let (h, c) = (states(3, 4, 1.0), states(3, 4, -7.0));
        let bytes = encode(&header(Mode::Lstm, 3), &h, &c);
        assert_eq!(bytes.len(), HEADER_LEN + 4 * 2 * 3 * (4 + 4) + HASH_LEN);
        let back = decode(&bytes).unwrap();
        assert_eq!((back.header, back.h, back.c), (header(Mode::Lstm, 3), h, c));
    }

    #[test]
    fn known_hash_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = encode(&header(Mode::Gru, 5), &states(5, 4, 0.0), &[Vec::new(), Vec::new()]);
        assert_eq!(&bytes[..8], b"RECURSTM");
        assert_eq!(bytes[8..12], 1u32.to_le_bytes());
        assert_eq!(bytes[12..16], 3u32.to_le_bytes());
        assert_eq!(bytes[24..32], 5u64.to_le_bytes());
        assert_eq!(bytes[56..60], 0.0f32.to_le_bytes());
        assert_eq!(bytes[60..64], 0.25f32.to_le_bytes());
    }

    #[test]
    fn unknown_mode_with_a_valid_hash_is_refused() {
        let mut bytes = encode(&header(Mode::Gru, 1), &states(1, 4, 0.0), &[Vec::new(), Vec::new()]);
        bytes.truncate(bytes.len() - HASH_LEN);
        bytes[12..16].copy_from_slice(&9u32.to_le_bytes());
        let hash = fnv1a64(&bytes);
        bytes.extend_from_slice(&hash.to_le_bytes());
        let err = decode(&bytes).err().unwrap();
        assert!(err.to_string().contains("unknown mode code 9"), "{err}");
    }

    #[test]
    fn inconsistent_length_with_a_valid_hash_is_refused() {
        let mut bytes = encode(&header(Mode::Gru, 2), &states(2, 4, 0.0), &[Vec::new(), Vec::new()]);
        bytes.truncate(bytes.len() - HASH_LEN);
        bytes[24..32].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        let hash = fnv1a64(&bytes);
        bytes.extend_from_slice(&hash.to_le_bytes());
        let err = decode(&bytes).err().unwrap();
        assert!(err.to_string().starts_with("stream state: "), "{err}");
    }
}
