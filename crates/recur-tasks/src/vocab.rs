//! The characters of a text as token ids: sorted, so that the same text always gives the same ids, and
//! written as one string so that a model file's metadata can carry it.

use recur::{Error, Result};

/// The distinct characters of a text, sorted by code point; a character's id is its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    chars: Vec<char>,
}

impl Vocabulary {
    /// The metadata key under which a model file stores its vocabulary (the value is [`Vocabulary::to_metadata`]).
    pub const METADATA_KEY: &str = "vocabulary";

    /// The distinct characters of `text`, sorted.
    pub fn from_text(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Vocabulary { chars }
    }

    /// Number of characters (the size of a model's embedding and output).
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether there are no characters.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters, by id.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<usize> {
        self.chars.binary_search(&c).ok()
    }

    /// The ids of `text`'s characters; a character outside the vocabulary is an [`Error::Index`] naming it and
    /// its position.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.id(c).ok_or_else(|| Error::Index {
                    what: format!("character at position {i}"),
                    index: format!("{c:?}"),
                    valid: format!("the {} characters of the vocabulary", self.len()),
                })
            })
            .collect()
    }

    /// The text of `ids`; an id `≥ len()` is an [`Error::Index`].
    pub fn decode(&self, ids: &[usize]) -> Result<String> {
        ids.iter()
            .map(|&i| {
                self.chars.get(i).copied().ok_or_else(|| Error::Index {
                    what: "character id".into(),
                    index: i.to_string(),
                    valid: format!("0..{}", self.len()),
                })
            })
            .collect()
    }

    /// The vocabulary as one string: its characters in id order.
    pub fn to_metadata(&self) -> String {
        self.chars.iter().collect()
    }

    /// Reads [`Vocabulary::to_metadata`]'s string back. The characters must be strictly increasing (sorted,
    /// without repeats), else it is an [`Error::Decode`]: ids would not mean what they meant in training.
    pub fn from_metadata(s: &str) -> Result<Self> {
        let chars: Vec<char> = s.chars().collect();
        if let Some(i) = chars.windows(2).position(|w| w[0] >= w[1]) {
            return Err(Error::Decode {
                what: "vocabulary".into(),
                reason: format!(
                    "expected characters in strictly increasing order, found {:?} before {:?} at position {}",
                    chars[i],
                    chars[i + 1],
                    i + 1
                ),
            });
        }
        Ok(Vocabulary { chars })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_ids_round_trip_through_text_and_metadata() {
        let v = Vocabulary::from_text("hello, wörld\n");
        assert_eq!(v.to_metadata(), "\n ,dehlorw\u{f6}");
        assert_eq!(v.len(), 11);
        let ids = v.encode("world").unwrap();
        assert_eq!(ids, vec![9, 7, 8, 6, 3]);
        assert_eq!(v.decode(&ids).unwrap(), "world");
        assert_eq!(Vocabulary::from_metadata(&v.to_metadata()).unwrap(), v);
    }

    #[test]
    fn unknown_characters_ids_and_unsorted_metadata_are_errors() {
        let v = Vocabulary::from_text("abc");
        let err = v.encode("abz").unwrap_err().to_string();
        assert!(err.contains("position 2") && err.contains("'z'"), "{err}");
        assert!(v.decode(&[3]).unwrap_err().to_string().contains("0..3"));
        let err = Vocabulary::from_metadata("abba").unwrap_err().to_string();
        assert!(err.contains("strictly increasing"), "{err}");
    }
}
