//! Attention: soft, content-based lookup, where a query weighs every key and takes the weighted sum of the
//! values. It grew out of recurrent encoders and decoders (Bahdanau et al., 2015), and it is the step from them to
//! the Transformer.
//!
//! - [`Attention`]: a decoder's attention over an encoder's outputs, with Bahdanau's additive score or Luong's
//!   dot and general scores ([`Score`]), as in the first attentional encoder–decoders.
//! - [`MultiheadAttention`]: PyTorch's `nn.MultiheadAttention`, same parameter names and numbers.
//! - [`TransformerEncoderLayer`]: PyTorch's `nn.TransformerEncoderLayer`, to set self-attention beside the
//!   recurrent layers.
//! - [`AttentionPooling`]: a many-to-one readout that weighs every step's output.
//! - [`AttentionMask`]: key padding (as lengths or PyTorch's `key_padding_mask`), `attn_mask` and the causal mask.
//!
//! Every layer here has an explicit forward and backward, checked against finite differences in `f64` and
//! against PyTorch. Large passes spread their groups (a batch element and head each) over Rayon's threads, with
//! the same numbers as one thread. Scores go through a stable softmax: `pⱼ = e^{sⱼ − m} / Σₖ e^{sₖ − m}` with `m = maxₖ sₖ`.

mod core;
mod mask;
mod multihead;
mod pooling;
mod scoring;
mod transformer;

pub use mask::{AttentionMask, KeyPadding, MaskValues};
pub use multihead::{
    MhaCache, MhaInput, MhaInputGrads, MhaOutput, MultiheadAttention, MultiheadAttentionConfig, NeedWeights,
};
pub use pooling::{AttentionPooling, PoolingCache};
pub use scoring::{Attention, AttentionCache, AttentionConfig, AttentionGrads, AttentionInput, AttentionOutput, Score};
pub use transformer::{TransformerCache, TransformerEncoderLayer, TransformerEncoderLayerConfig};

/// The sizes of one call: `N` sequences, `L` queries and `S` keys each (`S = L` for self-attention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// `N`.
    pub batch: usize,
    /// `L`.
    pub queries: usize,
    /// `S`.
    pub keys: usize,
}
