//! Parity with PyTorch for the attention layers: every case written by `tools/gen_attention_fixtures.py` is
//! reproduced to within 1e-5, forward and backward (gradients relative to `max(1, |PyTorch's|)`).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use recur::attention::{
    Attention, AttentionConfig, AttentionInput, AttentionMask, AttentionPooling, AttentionShape, KeyPadding,
    MaskValues, MhaInput, MhaInputGrads, MultiheadAttention, MultiheadAttentionConfig, NeedWeights,
    TransformerEncoderLayer, TransformerEncoderLayerConfig,
};
use recur::model_file::TensorFile;
use recur::params::{Module, Trainable};
use recur::seq2seq::{Seq2Seq, Seq2SeqBatch};
use recur::{CrossEntropyLoss, Layout, SequenceShape, Tensor};

const TOLERANCE: f32 = 1e-5;

fn fixtures() -> (PathBuf, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/attention");
    let index = std::fs::read_to_string(dir.join("index.json")).expect("fixture index");
    let cases: Vec<String> = serde_json::from_str(&index).expect("index is a JSON list");
    (dir, cases)
}

fn assert_close(case: &str, what: &str, got: &[f32], want: &Tensor) {
    assert_eq!(got.len(), want.len(), "{case}: length of {what}");
    let err = got.iter().zip(want.data()).map(|(g, w)| (g - w).abs() / w.abs().max(1.0)).fold(0.0, f32::max);
    assert!(err <= TOLERANCE, "{case}: {what} differs from PyTorch by {err}");
}

/// Every parameter's accumulated gradient against PyTorch's `grad.<name>`.
fn assert_param_grads(case: &str, layer: &mut impl Trainable, io: &TensorFile) -> usize {
    let params = layer.parameters();
    for p in &params {
        assert_close(case, &format!("grad.{}", p.name), p.grad, &io.tensors[&format!("grad.{}", p.name)]);
    }
    params.len()
}

#[derive(serde::Deserialize)]
struct MhaCase {
    embed_dim: usize,
    num_heads: usize,
    bias: bool,
    batch_first: bool,
    batch: usize,
    queries: usize,
    keys: usize,
    self_attention: bool,
    causal: bool,
    need_weights: String,
    key_padding_mask: Option<String>,
    attn_mask: Option<String>,
}

/// A mask tensor of the fixture in the form its kind says (`bool`: 1.0 forbids).
struct Mask {
    ignore: Vec<bool>,
    add: Vec<f32>,
    is_bool: bool,
}

impl Mask {
    fn read(io: &TensorFile, name: &str, kind: &Option<String>) -> Option<Mask> {
        let kind = kind.as_deref()?;
        let t = &io.tensors[name];
        Some(Mask {
            ignore: t.data().iter().map(|&v| v != 0.0).collect(),
            add: t.data().to_vec(),
            is_bool: kind == "bool",
        })
    }

    fn values(&self) -> MaskValues<'_> {
        if self.is_bool { MaskValues::Ignore(&self.ignore) } else { MaskValues::Add(&self.add) }
    }
}

#[test]
fn multihead_attention_matches_pytorch() {
    let (dir, cases) = fixtures();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.starts_with("mha_")) {
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let c: MhaCase = serde_json::from_str(&io.metadata["config"]).unwrap();
        let config = MultiheadAttentionConfig::new(c.embed_dim, c.num_heads).bias(c.bias).batch_first(c.batch_first);
        let mut mha = MultiheadAttention::zeros(config).unwrap();
        let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
        mha.load_state_dict(&model.tensors).unwrap_or_else(|e| panic!("{case}: {e}"));

        let padding = Mask::read(&io, "key_padding_mask", &c.key_padding_mask);
        let attn = Mask::read(&io, "attn_mask", &c.attn_mask);
        let mask = AttentionMask {
            key_padding: padding.as_ref().map(|m| KeyPadding::Mask(m.values())),
            attn_mask: attn.as_ref().map(Mask::values),
            causal: c.causal,
        };
        let weights = match c.need_weights.as_str() {
            "no" => NeedWeights::No,
            "averaged" => NeedWeights::Averaged,
            _ => NeedWeights::PerHead,
        };

        // The tensor API, as PyTorch is called.
        let t = |name: &str| &io.tensors[name];
        let (out, w) = if c.self_attention {
            mha.forward(t("input"), t("input"), t("input"), &mask, weights)
        } else {
            mha.forward(t("query"), t("key"), t("value"), &mask, weights)
        }
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(out.shape(), t("output").shape(), "{case}: output shape");
        assert_close(case, "output", out.data(), t("output"));
        match (&w, io.tensors.get("weights")) {
            (Some(got), Some(want)) => {
                assert_eq!(got.shape(), want.shape(), "{case}: weights shape");
                assert_close(case, "weights", got.data(), want);
            }
            (None, None) => {}
            _ => panic!("{case}: weights presence differs"),
        }

        // The backward, on slices.
        let input = if c.self_attention {
            MhaInput::SelfAttention(t("input").data())
        } else {
            MhaInput::Cross { query: t("query").data(), key: t("key").data(), value: t("value").data() }
        };
        let shape = AttentionShape { batch: c.batch, queries: c.queries, keys: c.keys };
        let (_, cache) = mha.forward_train(input, shape, &mask, weights, &mut StdRng::seed_from_u64(0)).unwrap();
        let d_weights = io.tensors.get("grad_weights").map(Tensor::data);
        let grads = mha.backward(input, &cache, t("grad_output").data(), d_weights).unwrap();
        match grads {
            MhaInputGrads::SelfAttention(dx) => assert_close(case, "grad.input", &dx, t("grad.input")),
            MhaInputGrads::Cross { query, key, value } => {
                assert_close(case, "grad.query", &query, t("grad.query"));
                assert_close(case, "grad.key", &key, t("grad.key"));
                assert_close(case, "grad.value", &value, t("grad.value"));
            }
        }
        let n = assert_param_grads(case, &mut mha, &io);
        assert_eq!(n, if c.bias { 4 } else { 2 }, "{case}: parameters");
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[derive(serde::Deserialize)]
struct ScoreCase {
    score: String,
    query_size: usize,
    key_size: usize,
    value_size: usize,
    attention_size: usize,
}

#[test]
fn decoder_attention_scores_match_pytorch() {
    let (dir, cases) = fixtures();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.starts_with("score_")) {
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let c: ScoreCase = serde_json::from_str(&io.metadata["config"]).unwrap();
        let config = AttentionConfig::new(c.score.parse().unwrap(), c.query_size, c.key_size)
            .value_size(c.value_size)
            .attention_size(c.attention_size);
        let mut attention = Attention::with_seed(config, 0).unwrap();
        let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
        attention.load_state_dict(&model.tensors).unwrap_or_else(|e| panic!("{case}: {e}"));

        let t = |name: &str| &io.tensors[name];
        let q = t("query");
        let (batch, queries, keys) = (q.shape()[0], q.shape()[1], t("keys").shape()[1]);
        let lengths: Vec<usize> = t("lengths").data().iter().map(|&v| v as usize).collect();
        let mask = AttentionMask::lengths(&lengths);
        let input = AttentionInput { query: q.data(), keys: t("keys").data(), values: t("values").data() };
        let shape = AttentionShape { batch, queries, keys };
        let (out, cache) = attention.forward_train(input, shape, &mask).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_close(case, "context", &out.context, t("context"));
        assert_close(case, "weights", &out.weights, t("weights"));
        let grads =
            attention.backward(input, &cache, t("grad_context").data(), Some(t("grad_weights").data())).unwrap();
        assert_close(case, "grad.query", &grads.query, t("grad.query"));
        assert_close(case, "grad.keys", &grads.keys, t("grad.keys"));
        assert_close(case, "grad.values", &grads.values, t("grad.values"));
        assert_param_grads(case, &mut attention, &io);
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[test]
fn a_state_dict_with_missing_or_mis_shaped_attention_tensors_is_refused() {
    let (dir, _) = fixtures();
    let model = TensorFile::read(dir.join("mha_self_time_major.model.safetensors")).unwrap();
    let mut mha = MultiheadAttention::zeros(MultiheadAttentionConfig::new(8, 2)).unwrap();
    let mut missing = model.tensors.clone();
    missing.remove("out_proj.bias");
    let err = mha.load_state_dict(&missing).unwrap_err().to_string();
    assert!(err.contains("missing tensor `out_proj.bias`"), "{err}");
    let mut wrong = MultiheadAttention::zeros(MultiheadAttentionConfig::new(4, 2)).unwrap();
    let err = wrong.load_state_dict(&model.tensors).unwrap_err().to_string();
    assert!(err.contains("in_proj_weight") && err.contains("[12, 4]") && err.contains("[24, 8]"), "{err}");
}

#[test]
fn the_encoder_decoder_matches_pytorch() {
    let (dir, cases) = fixtures();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.starts_with("seq2seq_")) {
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let mut model =
            Seq2Seq::load(dir.join(format!("{case}.model.safetensors"))).unwrap_or_else(|e| panic!("{case}: {e}"));
        let ids = |name: &str| -> Vec<usize> { io.tensors[name].data().iter().map(|&v| v as usize).collect() };
        let (source, decoder_input) = (ids("source"), ids("decoder_input"));
        let (source_lengths, target_lengths) = (ids("source_lengths"), ids("target_lengths"));
        let src_shape = io.tensors["source"].shape();
        let batch = Seq2SeqBatch {
            batch: src_shape[0],
            source: &source,
            source_lengths: &source_lengths,
            source_steps: src_shape[1],
            decoder_input: &decoder_input,
            target_lengths: &target_lengths,
            target_steps: io.tensors["decoder_input"].shape()[1],
        };
        let (logits, cache) = model.forward_train(&batch).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_close(case, "logits", &logits, &io.tensors["logits"]);
        let targets: Vec<i64> = io.tensors["targets"].data().iter().map(|&v| v as i64).collect();
        let classes = model.config().target_vocab;
        let (loss, d_logits) = CrossEntropyLoss::new().forward(&logits, classes, &targets, None).unwrap();
        assert_close(case, "loss", &[loss], &io.tensors["loss"]);
        model.backward(&cache, &d_logits).unwrap();
        let n = assert_param_grads(case, &mut model, &io);
        assert_eq!(n, io.tensors.keys().filter(|k| k.starts_with("grad.")).count(), "{case}: every parameter");
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[derive(serde::Deserialize)]
struct TransformerCase {
    d_model: usize,
    nhead: usize,
    dim_feedforward: usize,
    batch_first: bool,
    norm_first: bool,
    bias: bool,
    batch: usize,
    len: usize,
    causal: bool,
}

#[test]
fn the_transformer_encoder_layer_matches_pytorch() {
    let (dir, cases) = fixtures();
    let mut checked = 0;
    for case in cases.iter().filter(|c| c.starts_with("transformer_")) {
        let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
        let c: TransformerCase = serde_json::from_str(&io.metadata["config"]).unwrap();
        let config = TransformerEncoderLayerConfig::new(c.d_model, c.nhead)
            .dim_feedforward(c.dim_feedforward)
            .dropout(0.0)
            .batch_first(c.batch_first)
            .norm_first(c.norm_first)
            .bias(c.bias);
        let mut layer = TransformerEncoderLayer::with_seed(config, 0).unwrap();
        let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
        layer.load_state_dict(&model.tensors).unwrap_or_else(|e| panic!("{case}: {e}"));
        let kind = io.tensors.contains_key("key_padding_mask").then(|| "bool".to_string());
        let padding = Mask::read(&io, "key_padding_mask", &kind);
        let mask = AttentionMask {
            key_padding: padding.as_ref().map(|m| KeyPadding::Mask(m.values())),
            attn_mask: None,
            causal: c.causal,
        };
        let t = |name: &str| &io.tensors[name];
        let y = layer.forward_tensor(t("input"), &mask).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_close(case, "output", y.data(), t("output"));
        let x = t("input").data();
        let (_, cache) = layer.forward_train(x, (c.batch, c.len), &mask, &mut StdRng::seed_from_u64(0)).unwrap();
        let dx = layer.backward(x, &cache, t("grad_output").data()).unwrap();
        assert_close(case, "grad.input", &dx, t("grad.input"));
        let n = assert_param_grads(case, &mut layer, &io);
        assert_eq!(n, io.tensors.keys().filter(|k| k.starts_with("grad.")).count() - 1, "{case}: every parameter");
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn attention_pooling_matches_pytorch() {
    let (dir, _) = fixtures();
    let case = "pool_additive";
    let io = TensorFile::read(dir.join(format!("{case}.io.safetensors"))).unwrap();
    let model = TensorFile::read(dir.join(format!("{case}.model.safetensors"))).unwrap();
    let x = &io.tensors["input"];
    let (batch, steps, features) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let attention_size = model.tensors["energy.weight"].shape()[1];
    let mut pool = AttentionPooling::new(features, attention_size, &mut StdRng::seed_from_u64(0)).unwrap();
    pool.load_state_dict(&model.tensors).unwrap();
    let lengths: Vec<usize> = io.tensors["lengths"].data().iter().map(|&v| v as usize).collect();
    let shape = SequenceShape { steps, batch, features, layout: Layout::BatchFirst };
    let (pooled, cache) = pool.forward_train(x.data(), shape, Some(&lengths)).unwrap();
    assert_close(case, "pooled", &pooled, &io.tensors["pooled"]);
    assert_close(case, "weights", cache.weights(), &io.tensors["weights"]);
    let dx = pool.backward(&cache, io.tensors["grad_pooled"].data()).unwrap();
    assert_close(case, "grad.input", &dx, &io.tensors["grad.input"]);
    assert_eq!(assert_param_grads(case, &mut pool, &io), 4);
}
