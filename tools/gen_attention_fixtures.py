"""Generate PyTorch reference fixtures for recur's attention layers.

Run from the repository root:

    ~/.cache/recur-venv/bin/python tools/gen_attention_fixtures.py

(The venv lives outside the repo; install its packages with
`~/.cache/recur-venv/bin/pip install -r tools/requirements.txt`.)

Each run deletes `crates/recur/tests/fixtures/attention/` and rewrites it. Every case seeds torch from its own
index, so the output is deterministic. All tensors are float32.

Layout written, per case:

* `<case>.model.safetensors` -- the module's `state_dict()`: `nn.MultiheadAttention` (`mha_*` cases), or the
  small modules below for a decoder's attention over an encoder's outputs (`score_*` cases). Biases that PyTorch
  initialises to zero are drawn at random, so that their paths are tested.
* `<case>.io.safetensors` -- inputs, masks, expected outputs and gradients. Metadata `config` (JSON) says what
  the case runs.
  - `mha_*`: `query`, `key`, `value` (self-attention cases store only `input`, passed as all three), optional
    `key_padding_mask` `(N, S)` and `attn_mask` `(L, S)` or `(N*H, L, S)`, each stored as float32: for a mask of
    kind `bool` a 1.0 means "may not attend"; a mask of kind `float` is added to the scores. The config says
    `causal` (the case passed PyTorch a causal `attn_mask` with `is_causal=True`; recur's causal flag replaces
    it), `need_weights` (`no`, `averaged`, `per_head`). Expected `output`, `weights` (when returned).
  - `score_*`: `query (N, L, Dq)`, `keys (N, S, Dk)`, `values (N, S, Dv)`, `lengths` (float32 per batch element:
    keys at or past the length are masked). Expected `context (N, L, Dv)`, `weights (N, L, S)`.
  - Backward: upstream `grad_output` / `grad_context` and `grad_weights`; expected gradients of
    `(out * grad_out).sum() + (weights * grad_weights).sum()`: `grad.<input>` for every input and
    `grad.<param>` for every state_dict entry.
* `seq2seq_*` cases: a whole encoder-decoder as `recur::seq2seq::Seq2Seq` defines it (source and target
  embeddings, a packed recurrent encoder, a decoder started from the encoder's final states with each layer's
  directions side by side, optional attention over the encoder's outputs, `combine` with tanh, `output`). The
  model file carries the recur configuration as `config` metadata. The io file holds `source`, `source_lengths`,
  `decoder_input`, `target_lengths`, `targets` (all float32; -100 marks padding), the expected `logits` and
  `loss` (the mean cross-entropy over real target tokens), and `grad.<param>` of that loss.
* `transformer_*` cases: `nn.TransformerEncoderLayer` (ReLU, dropout 0 so that training-mode gradients are
  deterministic, LayerNorm parameters and biases drawn at random). The io file holds `input`, optional
  `key_padding_mask` (1.0: padding), the expected `output`, `grad_output` and `grad.input` and `grad.<param>` of
  `(output * grad_output).sum()`. The config says `causal` (PyTorch got a causal `src_mask` with `is_causal=True`).
* `pool_*` cases: attention pooling, a learned `query (F)` attending additively over a batch-first `(N, T, F)`
  input with `lengths`; expected `pooled (N, F)`, `weights (N, T)` and, for `(pooled * grad_pooled).sum()`,
  `grad.input` and `grad.<param>`.
* `index.json` -- the case names.
"""

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

OUT = Path("crates/recur/tests/fixtures/attention")


class Additive(nn.Module):
    """Bahdanau: e_ij = v^T tanh(W_q q_i + W_k k_j)."""

    def __init__(self, dq, dk, a):
        super().__init__()
        self.query_proj = nn.Linear(dq, a, bias=False)
        self.key_proj = nn.Linear(dk, a, bias=False)
        self.energy = nn.Linear(a, 1, bias=False)

    def scores(self, q, k):
        hidden = torch.tanh(self.query_proj(q)[:, :, None, :] + self.key_proj(k)[:, None, :, :])
        return self.energy(hidden).squeeze(-1)


class General(nn.Module):
    """Luong general: e_ij = q_i^T W k_j."""

    def __init__(self, dq, dk):
        super().__init__()
        self.key_proj = nn.Linear(dk, dq, bias=False)

    def scores(self, q, k):
        return q @ self.key_proj(k).transpose(1, 2)


class Dot(nn.Module):
    """Luong dot, or the scaled dot product."""

    def __init__(self, scaled):
        super().__init__()
        self.scaled = scaled

    def scores(self, q, k):
        e = q @ k.transpose(1, 2)
        return e / math.sqrt(k.shape[-1]) if self.scaled else e


def score_case(index, name, module, shape, lengths):
    n, l, s, dq, dk, dv = shape
    torch.manual_seed(1000 + index)
    q = torch.randn(n, l, dq, requires_grad=True)
    k = torch.randn(n, s, dk, requires_grad=True)
    v = torch.randn(n, s, dv, requires_grad=True)
    e = module.scores(q, k)
    pad = torch.arange(s)[None, None, :] >= torch.tensor(lengths)[:, None, None]
    w = torch.softmax(e.masked_fill(pad, float("-inf")), dim=-1)
    context = w @ v
    g_c = torch.randn_like(context)
    g_w = torch.randn_like(w)
    params = dict(module.named_parameters())
    loss = (context * g_c).sum() + (w * g_w).sum()
    grads = torch.autograd.grad(loss, [q, k, v] + list(params.values()))
    io = {
        "query": q, "keys": k, "values": v, "lengths": torch.tensor(lengths, dtype=torch.float32),
        "context": context, "weights": w, "grad_context": g_c, "grad_weights": g_w,
        "grad.query": grads[0], "grad.keys": grads[1], "grad.values": grads[2],
    }
    for (pname, _), g in zip(params.items(), grads[3:]):
        io[f"grad.{pname}"] = g
    config = {"score": name.split("_", 1)[1].replace("_", "-"), "query_size": dq, "key_size": dk, "value_size": dv,
              "attention_size": module.energy.in_features if isinstance(module, Additive) else dq}
    write(name, module.state_dict(), io, config)


def mha_case(index, name, *, e, h, n, l, s=None, bias=True, batch_first=False, unbatched=False,
             kpm=None, attn=None, causal=False, need_weights="averaged"):
    torch.manual_seed(index)
    mha = nn.MultiheadAttention(e, h, bias=bias, batch_first=batch_first)
    with torch.no_grad():
        if bias:
            mha.in_proj_bias.uniform_(-0.5, 0.5)
            mha.out_proj.bias.uniform_(-0.5, 0.5)
    self_attention = s is None
    s = l if self_attention else s

    def seq(length):
        if unbatched:
            return torch.randn(length, e, requires_grad=True)
        dims = (n, length, e) if batch_first else (length, n, e)
        return torch.randn(*dims, requires_grad=True)

    io = {}
    if self_attention:
        x = seq(l)
        query = key = value = x
        inputs = {"input": x}
    else:
        query, key, value = seq(l), seq(s), seq(s)
        inputs = {"query": query, "key": key, "value": value}
    kwargs = {}
    if kpm is not None:
        kind, mask = kpm(n, s)
        kwargs["key_padding_mask"] = mask
        io["key_padding_mask"] = mask.float()
    if attn is not None:
        kind_a, mask_a = attn(n * h, l, s)
        kwargs["attn_mask"] = mask_a
        io["attn_mask"] = mask_a.float()
    if causal:
        kwargs["attn_mask"] = torch.triu(torch.ones(l, s, dtype=torch.bool), diagonal=1)
        kwargs["is_causal"] = True
    out, w = mha(query, key, value, need_weights=need_weights != "no",
                 average_attn_weights=need_weights == "averaged", **kwargs)
    g_o = torch.randn_like(out)
    loss = (out * g_o).sum()
    io.update(inputs)
    io["output"] = out
    io["grad_output"] = g_o
    if w is not None:
        g_w = torch.randn_like(w)
        loss = loss + (w * g_w).sum()
        io["weights"] = w
        io["grad_weights"] = g_w
    params = dict(mha.named_parameters())
    grads = torch.autograd.grad(loss, list(inputs.values()) + list(params.values()))
    for (iname, _), g in zip(inputs.items(), grads):
        io[f"grad.{iname}"] = g
    for (pname, _), g in zip(params.items(), grads[len(inputs):]):
        io[f"grad.{pname}"] = g
    config = {
        "embed_dim": e, "num_heads": h, "bias": bias, "batch_first": batch_first, "batch": n, "queries": l,
        "keys": s, "unbatched": unbatched, "self_attention": self_attention, "causal": causal,
        "need_weights": need_weights,
        "key_padding_mask": None if kpm is None else kind,
        "attn_mask": None if attn is None else kind_a,
    }
    write(name, mha.state_dict(), io, config)


def write(name, state_dict, io, config):
    save_file({k: v.detach().contiguous() for k, v in state_dict.items()}, OUT / f"{name}.model.safetensors")
    save_file({k: v.detach().contiguous() for k, v in io.items()}, OUT / f"{name}.io.safetensors",
              metadata={"config": json.dumps(config)})
    CASES.append(name)


class Seq2Seq(nn.Module):
    def __init__(self, mode, src_vocab, tgt_vocab, emb, hidden, layers, bidirectional, score):
        super().__init__()
        rnn = {"GRU": nn.GRU, "LSTM": nn.LSTM, "RNN_TANH": nn.RNN}[mode]
        d = hidden * (2 if bidirectional else 1)
        self.mode, self.layers, self.dirs, self.hidden = mode, layers, 2 if bidirectional else 1, hidden
        self.source_embedding = nn.Embedding(src_vocab, emb)
        self.target_embedding = nn.Embedding(tgt_vocab, emb)
        self.encoder = rnn(emb, hidden, layers, batch_first=True, bidirectional=bidirectional)
        self.decoder = rnn(emb, d, layers, batch_first=True)
        self.attention = {"additive": Additive(d, d, d), "general": General(d, d), "dot": Dot(False),
                          None: None}[score]
        self.combine = nn.Linear(2 * d, d) if score else None
        self.output = nn.Linear(d, tgt_vocab)

    def bridge(self, state):
        # (L*D, B, H) -> (L, B, D*H): each layer's directions side by side.
        l, b = self.layers, state.shape[1]
        return state.view(l, self.dirs, b, self.hidden).permute(0, 2, 1, 3).reshape(l, b, self.dirs * self.hidden)

    def forward(self, src, src_len, dec_in, tgt_len):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
        packed = pack_padded_sequence(self.source_embedding(src), src_len, batch_first=True, enforce_sorted=False)
        enc, state = self.encoder(packed)
        enc, _ = pad_packed_sequence(enc, batch_first=True, total_length=src.shape[1])
        init = (self.bridge(state[0]), self.bridge(state[1])) if self.mode == "LSTM" else self.bridge(state)
        packed = pack_padded_sequence(self.target_embedding(dec_in), tgt_len, batch_first=True, enforce_sorted=False)
        dec, _ = self.decoder(packed, init)
        dec, _ = pad_packed_sequence(dec, batch_first=True, total_length=dec_in.shape[1])
        if self.attention is None:
            return self.output(dec)
        e = self.attention.scores(dec, enc)
        pad = torch.arange(src.shape[1])[None, None, :] >= src_len[:, None, None]
        w = torch.softmax(e.masked_fill(pad, float("-inf")), dim=-1)
        h = torch.tanh(self.combine(torch.cat([w @ enc, dec], dim=-1)))
        return self.output(h)


def seq2seq_case(index, name, *, mode, layers, bidirectional, score, b=3, s=6, t=5, vocab=(9, 8), emb=5, hidden=4):
    torch.manual_seed(2000 + index)
    model = Seq2Seq(mode, vocab[0], vocab[1], emb, hidden, layers, bidirectional, score)
    src_len = torch.tensor([s, 2, 4][:b])
    tgt_len = torch.tensor([3, t, 1][:b])
    src = torch.randint(0, vocab[0], (b, s))
    dec_in = torch.randint(0, vocab[1], (b, t))
    targets = torch.randint(0, vocab[1], (b, t))
    for i in range(b):
        src[i, src_len[i]:] = 0
        dec_in[i, tgt_len[i]:] = 0
        targets[i, tgt_len[i]:] = -100
    logits = model(src, src_len, dec_in, tgt_len)
    loss = nn.functional.cross_entropy(logits.reshape(-1, vocab[1]), targets.reshape(-1))
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()))
    io = {"source": src.float(), "source_lengths": src_len.float(), "decoder_input": dec_in.float(),
          "target_lengths": tgt_len.float(), "targets": targets.float(), "logits": logits,
          "loss": loss.reshape(1)}
    for pname, g in zip(params, grads):
        io[f"grad.{pname}"] = g
    config = {"mode": mode, "source_vocab": vocab[0], "target_vocab": vocab[1], "embedding_dim": emb,
              "hidden_size": hidden, "num_layers": layers, "bidirectional": bidirectional, "attention": score}
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, OUT / f"{name}.model.safetensors",
              metadata={"config": json.dumps(config)})
    save_file({k: v.detach().contiguous() for k, v in io.items()}, OUT / f"{name}.io.safetensors",
              metadata={"config": json.dumps(config)})
    CASES.append(name)


def transformer_case(index, name, *, d, h, ff, n, l, batch_first=False, norm_first=False, bias=True,
                     lengths=None, causal=False):
    torch.manual_seed(3000 + index)
    layer = nn.TransformerEncoderLayer(d, h, dim_feedforward=ff, dropout=0.0, batch_first=batch_first,
                                       norm_first=norm_first, bias=bias)
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2):
            norm.weight.uniform_(0.5, 1.5)
            if bias:
                norm.bias.uniform_(-0.5, 0.5)
        if bias:
            layer.self_attn.in_proj_bias.uniform_(-0.5, 0.5)
            layer.self_attn.out_proj.bias.uniform_(-0.5, 0.5)
    dims = (n, l, d) if batch_first else (l, n, d)
    x = torch.randn(*dims, requires_grad=True)
    kwargs = {}
    io = {}
    if lengths is not None:
        pad = torch.arange(l)[None, :] >= torch.tensor(lengths)[:, None]
        kwargs["src_key_padding_mask"] = pad
        io["key_padding_mask"] = pad.float()
    if causal:
        kwargs["src_mask"] = torch.triu(torch.ones(l, l, dtype=torch.bool), diagonal=1)
        kwargs["is_causal"] = True
    y = layer(x, **kwargs)
    g = torch.randn_like(y)
    params = dict(layer.named_parameters())
    grads = torch.autograd.grad((y * g).sum(), [x] + list(params.values()))
    io.update({"input": x, "output": y, "grad_output": g, "grad.input": grads[0]})
    for pname, gr in zip(params, grads[1:]):
        io[f"grad.{pname}"] = gr
    config = {"d_model": d, "nhead": h, "dim_feedforward": ff, "batch_first": batch_first, "norm_first": norm_first,
              "bias": bias, "batch": n, "len": l, "causal": causal}
    write(name, layer.state_dict(), io, config)


def pool_case(index, name, *, n, t, f, a, lengths):
    torch.manual_seed(4000 + index)
    query = nn.Parameter(torch.empty(f).uniform_(-1 / math.sqrt(f), 1 / math.sqrt(f)))
    score = Additive(f, f, a)
    x = torch.randn(n, t, f, requires_grad=True)
    e = score.scores(query.expand(n, 1, f), x).squeeze(1)
    pad = torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]
    w = torch.softmax(e.masked_fill(pad, float("-inf")), dim=-1)
    pooled = (w[:, :, None] * x).sum(1)
    g = torch.randn_like(pooled)
    params = {"query": query, **dict(score.named_parameters())}
    grads = torch.autograd.grad((pooled * g).sum(), [x] + list(params.values()))
    io = {"input": x, "lengths": torch.tensor(lengths, dtype=torch.float32), "pooled": pooled, "weights": w,
          "grad_pooled": g, "grad.input": grads[0]}
    for pname, gr in zip(params, grads[1:]):
        io[f"grad.{pname}"] = gr
    state = {"query": query, **score.state_dict()}
    write(name, state, io, {"features": f, "attention_size": a})


def padding_from_lengths(lengths):
    def make(n, s):
        return "bool", torch.arange(s)[None, :] >= torch.tensor(lengths)[:, None]
    return make


def float_padding(n, s):
    mask = torch.randn(n, s) * 0.5
    mask[:, -1] = float("-inf")
    return "float", mask


def float_attn(groups, l, s):
    mask = torch.randn(l, s) * 0.5
    mask[0, 1:] = float("-inf")
    return "float", mask


def group_bool_attn(groups, l, s):
    mask = torch.rand(groups, l, s) < 0.4
    mask[:, :, 0] = False  # every query keeps one key
    return "bool", mask


CASES = []


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    torch.set_default_dtype(torch.float32)
    mha_case(0, "mha_self_time_major", e=8, h=2, n=2, l=5)
    mha_case(1, "mha_self_batch_first_padding_causal", e=12, h=3, n=3, l=6, batch_first=True,
             kpm=padding_from_lengths([6, 4, 1]), causal=True, need_weights="per_head")
    mha_case(2, "mha_cross_float_masks", e=8, h=4, n=2, l=3, s=7, kpm=float_padding, attn=float_attn)
    mha_case(3, "mha_cross_no_bias_group_mask", e=6, h=2, n=2, l=4, s=5, bias=False, batch_first=True,
             attn=group_bool_attn, need_weights="no")
    mha_case(4, "mha_unbatched", e=4, h=1, n=1, l=3, unbatched=True)
    mha_case(5, "mha_cross_unbatched_per_head", e=6, h=3, n=1, l=2, s=4, unbatched=True,
             need_weights="per_head")
    torch.manual_seed(99)
    score_case(10, "score_additive", Additive(5, 6, 7), (3, 4, 6, 5, 6, 6), [6, 3, 1])
    score_case(11, "score_general", General(4, 6), (2, 3, 5, 4, 6, 6), [5, 2])
    score_case(12, "score_dot", Dot(False), (2, 3, 4, 5, 5, 3), [4, 4])
    score_case(13, "score_scaled_dot", Dot(True), (2, 2, 6, 8, 8, 8), [1, 6])
    seq2seq_case(20, "seq2seq_gru_additive_bidirectional", mode="GRU", layers=1, bidirectional=True,
                 score="additive")
    seq2seq_case(21, "seq2seq_lstm_general_two_layers", mode="LSTM", layers=2, bidirectional=False,
                 score="general")
    seq2seq_case(22, "seq2seq_rnn_dot_bidirectional_two_layers", mode="RNN_TANH", layers=2, bidirectional=True,
                 score="dot")
    seq2seq_case(23, "seq2seq_lstm_no_attention_bidirectional", mode="LSTM", layers=1, bidirectional=True,
                 score=None)
    transformer_case(30, "transformer_post_norm_padding", d=8, h=2, ff=16, n=2, l=5, lengths=[5, 3])
    transformer_case(31, "transformer_pre_norm_causal_batch_first", d=6, h=3, ff=12, n=3, l=4, batch_first=True,
                     norm_first=True, causal=True)
    transformer_case(32, "transformer_no_bias", d=4, h=1, ff=8, n=2, l=3, bias=False)
    pool_case(40, "pool_additive", n=3, t=5, f=6, a=4, lengths=[5, 2, 4])
    (OUT / "index.json").write_text(json.dumps(CASES, indent=1) + "\n")
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
