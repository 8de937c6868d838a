//! Decoding one source sequence: greedily or by beam search, stepping the decoder one token at a time through the
//! streaming path ([`StreamState`]).

use super::{Seq2Seq, concat_rows};
use crate::attention::{AttentionInput, AttentionMask, AttentionShape};
use crate::error::{Error, Result};
use crate::kernels::Real;
use crate::stream::StreamState;
use crate::tensor::Tensor;

/// How [`Seq2Seq::decode`] searches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Hypotheses kept at each step; 1 is greedy decoding.
    pub beam: usize,
    /// Tokens generated at most (the end-of-sequence token included).
    pub max_len: usize,
    /// The token that starts the decoder's input.
    pub bos: usize,
    /// The token that ends an output.
    pub eos: usize,
    /// `α` of the length normalisation: hypotheses are ranked by `log p / len^α` (0: raw log-probability, which
    /// favours short outputs; 1: the mean log-probability per token).
    pub length_penalty: f32,
}

impl Default for DecodeOptions {
    /// Greedy, up to 100 tokens, begin 1 and end 2 (the ids of `recur-tasks`'s vocabularies), `α = 1`.
    fn default() -> Self {
        DecodeOptions { beam: 1, max_len: 100, bos: 1, eos: 2, length_penalty: 1.0 }
    }
}

/// The output of [`Seq2Seq::decode`].
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The output tokens, without the end-of-sequence token.
    pub tokens: Vec<usize>,
    /// Whether the output ended with the end-of-sequence token (rather than at `max_len`).
    pub finished: bool,
    /// `log p` of the output (its end-of-sequence token included).
    pub log_prob: f32,
    /// The attention weights of every generated token (the end token included) over the source, row-major
    /// `steps × source length`; empty without attention.
    pub weights: Vec<f32>,
}

/// A partial output and the decoder state after its last token.
#[derive(Clone, Debug)]
struct Hypothesis {
    state: StreamState,
    tokens: Vec<usize>,
    log_prob: f32,
    weights: Vec<f32>,
    finished: bool,
}

impl Hypothesis {
    /// Tokens scored so far: the output and, once it has ended, its end token.
    fn len(&self) -> usize {
        self.tokens.len() + usize::from(self.finished)
    }
}

/// A hypothesis extended by one token (or carried over when it has ended), before it is built.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    parent: usize,
    token: Option<usize>,
    log_prob: f32,
    len: usize,
}

impl Candidate {
    /// `log p / len^α`, the length-normalised score hypotheses are ranked by.
    fn score(&self, alpha: f32) -> f32 {
        self.log_prob / (self.len.max(1) as f32).powf(alpha)
    }
}

impl Seq2Seq {
    /// Decodes one source sequence (token ids), greedily when `options.beam == 1`, else by beam search with
    /// length-normalised scores. Stops when every kept hypothesis has ended or at `options.max_len` tokens.
    pub fn decode(&self, source: &[usize], options: &DecodeOptions) -> Result<Decoded> {
        if options.beam == 0 || options.max_len == 0 {
            return Err(Error::config(format!(
                "decoding needs a beam width and a maximum length of at least 1; found beam {}, max_len {}",
                options.beam, options.max_len
            )));
        }
        if source.is_empty() {
            return Err(Error::shape("source", "at least one token id", &[0]));
        }
        let vocab = self.config.target_vocab;
        for (what, id) in [("bos", options.bos), ("eos", options.eos)] {
            if id >= vocab {
                return Err(Error::Index {
                    what: format!("{what} token"),
                    index: id.to_string(),
                    valid: format!("0..{vocab}"),
                });
            }
        }
        let (encoded, initial) = self.encode_one(source)?;
        let mut beams = vec![Hypothesis {
            state: initial,
            tokens: Vec::new(),
            log_prob: 0.0,
            weights: Vec::new(),
            finished: false,
        }];
        for _ in 0..options.max_len {
            // Each kept hypothesis is stepped once; its extensions are ranked before any of them is built, so that
            // only the `beam` kept ones clone a state.
            let mut candidates = Vec::new();
            let mut step_weights = Vec::with_capacity(beams.len());
            for (parent, beam) in beams.iter_mut().enumerate() {
                if beam.finished {
                    candidates.push(Candidate { parent, token: None, log_prob: beam.log_prob, len: beam.len() });
                    step_weights.push(Vec::new());
                    continue;
                }
                let last = beam.tokens.last().copied().unwrap_or(options.bos);
                let (log_probs, weights) = self.step_one(&mut beam.state, last, &encoded, source.len())?;
                for (token, lp) in top_k(&log_probs, options.beam) {
                    let log_prob = beam.log_prob + lp;
                    candidates.push(Candidate { parent, token: Some(token), log_prob, len: beam.len() + 1 });
                }
                step_weights.push(weights);
            }
            let alpha = options.length_penalty;
            candidates.sort_by(|a, b| b.score(alpha).total_cmp(&a.score(alpha)));
            candidates.truncate(options.beam);
            beams = candidates
                .iter()
                .map(|c| {
                    let mut h = beams[c.parent].clone();
                    if let Some(token) = c.token {
                        h.log_prob = c.log_prob;
                        h.weights.extend_from_slice(&step_weights[c.parent]);
                        if token == options.eos {
                            h.finished = true;
                        } else {
                            h.tokens.push(token);
                        }
                    }
                    h
                })
                .collect();
            if beams.iter().all(|h| h.finished) {
                break;
            }
        }
        let best = beams.into_iter().next().expect("a beam is never empty");
        Ok(Decoded { tokens: best.tokens, finished: best.finished, log_prob: best.log_prob, weights: best.weights })
    }

    /// Runs the encoder over one source: its outputs (`S × D·H`) and the decoder's starting state.
    fn encode_one(&self, source: &[usize]) -> Result<(Vec<f32>, StreamState)> {
        let embedded = self.source_embedding.forward(source)?;
        let embedded = Tensor::new([1, source.len(), self.config.embedding_dim], embedded)?;
        let enc = self.encoder.forward(&embedded, None, None)?;
        let h0 = self.bridge(&enc.h_n);
        let c0 = enc.c_n.as_ref().map(|c| self.bridge(c));
        let state = StreamState::with_initial(&self.decoder, 1, Some(&h0), c0.as_ref())?;
        Ok((enc.output.into_data(), state))
    }

    /// One decoder step from `token`: the log-probabilities of the next token and the attention weights.
    fn step_one(
        &self,
        state: &mut StreamState,
        token: usize,
        encoded: &[f32],
        source_len: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let embedded = self.target_embedding.forward(&[token])?;
        let s = state.step(&self.decoder, &embedded)?.to_vec();
        let (features, weights) = match (&self.attention, &self.combine) {
            (Some(attention), Some(combine)) => {
                let shape = AttentionShape { batch: 1, queries: 1, keys: source_len };
                let input = AttentionInput { query: &s, keys: encoded, values: encoded };
                let out = attention.forward(input, shape, &AttentionMask::none())?;
                let mut features = combine.forward(&concat_rows(&out.context, &s, s.len()), 1)?;
                features.iter_mut().for_each(|v| *v = v.act_tanh());
                (features, out.weights)
            }
            _ => (s, Vec::new()),
        };
        let mut logits = self.output.forward(&features, 1)?;
        log_softmax(&mut logits);
        Ok((logits, weights))
    }
}

fn log_softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = x.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
    x.iter_mut().for_each(|v| *v -= log_sum);
}

/// The `k` largest values with their indices, largest first (ties to the lower index).
fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    indexed.truncate(k);
    indexed
}
