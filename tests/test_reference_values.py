"""Every interaction block, baseline, NASRec operator and SUM module against a reference written out by hand.

Each test takes the module's own weights (set by hand where the formula is short enough to check on paper, random
otherwise), recomputes the output with plain NumPy in float64 from the paper's formula, and compares. A shape or
finiteness check passes a wrong formula (DCN-v2's cross layer as `x * W x` did); these do not."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from nasrec_lit.blocks import (FMInteraction, DotInteraction, CrossNetV2, SelfAttentionInteraction, LinearTerm, logloss, auc,
                               normalized_entropy)

torch.manual_seed(0)
A = lambda t: t.detach().double().numpy()                       # a tensor as float64 NumPy


def close(got, want, tol=1e-5):
    got = A(got) if isinstance(got, torch.Tensor) else np.asarray(got)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True); var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def linear(x, lin: nn.Linear):
    return x @ A(lin.weight).T + (A(lin.bias) if lin.bias is not None else 0.0)


relu = lambda x: np.maximum(x, 0.0)
sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))
gelu = lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def softmax(z, axis=-1):
    z = z - z.max(axis, keepdims=True); e = np.exp(z); return e / e.sum(axis, keepdims=True)


def mha(x, m: nn.MultiheadAttention, key_padding=None):
    "Multi-head attention written out: per head softmax(q kᵀ / √d_h) v, heads concatenated, output projection."
    E, H = m.embed_dim, m.num_heads; dh = E // H
    W, b = A(m.in_proj_weight), A(m.in_proj_bias)
    q, k, v = (x @ W[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E] for i in range(3))
    out = np.zeros_like(q)
    for h in range(H):
        s = slice(h * dh, (h + 1) * dh)
        z = q[..., s] @ np.swapaxes(k[..., s], -1, -2) / math.sqrt(dh)
        if key_padding is not None: z = np.where(key_padding[:, None, :], -np.inf, z)
        out[..., s] = softmax(z) @ v[..., s]
    return linear(out, m.out_proj)


# ------------------------------------------------------------------ interaction blocks

def test_fm_interaction_is_the_sum_over_pairs():
    x = torch.randn(2, 4, 3)
    X = A(x); pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    close(FMInteraction(reduce=False)(x), sum(X[:, i] * X[:, j] for i, j in pairs))
    close(FMInteraction()(x), sum((X[:, i] * X[:, j]).sum(-1) for i, j in pairs))
    # by hand: fields (1, 2), (3, 4), (5, 6) → 1·3 + 2·4 + 1·5 + 2·6 + 3·5 + 4·6 = 11 + 17 + 39 = 67
    close(FMInteraction()(torch.tensor([[[1., 2.], [3., 4.], [5., 6.]]])), [67.0])


def test_dot_interaction_lists_the_lower_triangle_in_order():
    x = torch.randn(2, 4, 3); X = A(x)
    close(DotInteraction(4)(x), np.stack([(X[:, i] * X[:, j]).sum(-1) for i in range(4) for j in range(i)], 1))
    close(DotInteraction(3)(torch.tensor([[[1., 2.], [3., 4.], [5., 6.]]])), [[11.0, 17.0, 39.0]])


def test_dcn_v2_cross_layer_is_x0_times_wx_plus_b_plus_x():
    # by hand: W = 2I, b = 1, x0 = (1, 2): x1 = x0 ⊙ (W x0 + b) + x0 = (1·3 + 1, 2·5 + 2) = (4, 12)
    net = CrossNetV2(2, n_layers=1)
    with torch.no_grad(): net.layers[0].weight.copy_(2 * torch.eye(2)); net.layers[0].bias.fill_(1.0)
    close(net(torch.tensor([[1., 2.]])), [[4.0, 12.0]])
    for low_rank in (None, 2):
        net = CrossNetV2(5, n_layers=3, low_rank=low_rank); x0 = torch.randn(3, 5)
        X0 = A(x0); x = X0
        for lin in net.layers:
            wx = linear(linear(x, lin[0]), lin[1]) if low_rank else linear(x, lin)
            x = X0 * wx + x
        close(net(x0), x)


def test_autoint_attention_layers():
    att = SelfAttentionInteraction(dim=4, n_layers=2, heads=2, att_dim=6); x = torch.randn(3, 5, 4)
    X = A(x)
    for inp, m, res in zip(att.inp, att.attn, att.res):
        h = linear(X, inp) if isinstance(inp, nn.Linear) else X
        X = relu(mha(h, m) + linear(X, res))
    close(att(x), X, 1e-4)


def test_linear_term():
    lt = LinearTerm([3, 2], n_dense=2)
    with torch.no_grad():
        lt.emb.table.weight.copy_(torch.tensor([[.1], [.2], [.3], [.4], [.5]])); lt.dense.weight.copy_(torch.tensor([[1., -2.]])); lt.bias.fill_(.25)
    # row: field 0 id 2 (weight .3), field 1 id 1 (row 3 + 1 = 4: weight .5), dense (1, 1): .3 + .5 + 1 - 2 + .25 = .05
    close(lt(torch.tensor([[2, 1]]), torch.tensor([[1., 1.]])), [0.05])


# ------------------------------------------------------------------ metrics

def test_normalized_entropy_divides_by_the_entropy_of_the_labels():
    "A constant 0.5 against labels with mean 0.25: log loss ln 2, NE = ln 2 / H(0.25) = 1.2326 (not ln 2 / H(0.5) = 1)."
    y = np.array([1, 0, 0, 0] * 25); p = np.full(100, 0.5)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert normalized_entropy(y, p) == pytest.approx(math.log(2) / h, rel=1e-9) and normalized_entropy(y, p) == pytest.approx(1.2326, abs=1e-4)
    assert normalized_entropy(y, np.full(100, 0.25)) == pytest.approx(1.0, rel=1e-9)       # the base rate itself: exactly 1


def test_logloss_and_auc_match_scikit_learn_with_ties():
    from sklearn.metrics import log_loss, roc_auc_score
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200); p = rng.choice([0.1, 0.3, 0.3, 0.5, 0.7], 200)    # many ties
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5 and auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75


def test_split_indices_depends_on_its_seed():
    from nasrec_lit.data import split_indices
    a, b, c = split_indices(1000, seed=1), split_indices(1000, seed=1), split_indices(1000, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0]) and len(np.intersect1d(a[2], c[2])) < 0.5 * len(a[2])
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))


# ------------------------------------------------------------------ baselines: one logit per row, written out

SCHEMA = dict(dense_names=["d0", "d1"], sparse_names=["s0", "s1", "s2"], cardinalities=[4, 5, 3])
BATCH = dict(dense=torch.tensor([[0.5, -1.0], [2.0, 0.1], [0.0, 0.3]]), sparse=torch.tensor([[0, 4, 2], [3, 1, 0], [1, 1, 1]]))


def _emb(model):
    "Each row's field embeddings [B, F, d] by hand: table row = offset of the field + id."
    off = np.concatenate([[0], np.cumsum(SCHEMA["cardinalities"])[:-1]])
    return A(model.emb.table.weight)[A(BATCH["sparse"]).astype(int) + off]


def _linear_term(lt):
    off = np.concatenate([[0], np.cumsum(SCHEMA["cardinalities"])[:-1]])
    w = A(lt.emb.table.weight)[A(BATCH["sparse"]).astype(int) + off][..., 0].sum(1)
    return w + A(BATCH["dense"]) @ A(lt.dense.weight)[0] + A(lt.bias)[0]


def _fm_pairs(f):
    n = f.shape[1]; return sum((f[:, i] * f[:, j]).sum(-1) for i in range(n) for j in range(i + 1, n))


def test_baselines_against_their_formulas():
    from nasrec_lit.baselines import LR, FM, DeepFM, DCNv2, DLRM, AutoInt
    torch.manual_seed(1)
    D = A(BATCH["dense"])
    with torch.no_grad():
        for m in (lr := LR(SCHEMA), fm := FM(SCHEMA, emb_dim=3), dfm := DeepFM(SCHEMA, emb_dim=3, hidden=(4,))):
            m.linear.emb.table.weight.normal_(); m.linear.dense.weight.normal_(); m.linear.bias.normal_()   # not the near-zero init
    close(lr.logits(BATCH), _linear_term(lr.linear))
    fields = lambda m: np.concatenate([_emb(m), (D @ A(m.dense_proj.weight).T)[:, None]], 1)
    close(fm.logits(BATCH), _linear_term(fm.linear) + _fm_pairs(fields(fm)))
    e = _emb(dfm); deep = linear(relu(linear(np.concatenate([e.reshape(3, -1), D], 1), dfm.mlp.net[0])), dfm.mlp.net[2])[:, 0]
    close(dfm.logits(BATCH), _linear_term(dfm.linear) + _fm_pairs(fields(dfm)) + deep)

    dcn = DCNv2(SCHEMA, emb_dim=3, cross_layers=2, hidden=(4,)); x0 = np.concatenate([_emb(dcn).reshape(3, -1), D], 1); x = x0
    for lin in dcn.cross.layers: x = x0 * linear(x, lin) + x
    close(dcn.logits(BATCH), linear(relu(linear(x, dcn.mlp.net[0])), dcn.mlp.net[2])[:, 0])

    dlrm = DLRM(SCHEMA, emb_dim=3, bottom=(4,), top=(5,))
    d = linear(relu(linear(D, dlrm.bottom.net[0])), dlrm.bottom.net[2]); d = relu(d)    # the bottom MLP's last layer has its ReLU
    v = np.concatenate([d[:, None], _emb(dlrm)], 1)
    dots = np.stack([(v[:, i] * v[:, j]).sum(-1) for i in range(4) for j in range(i)], 1)
    close(dlrm.logits(BATCH), linear(relu(linear(np.concatenate([d, dots], 1), dlrm.top.net[0])), dlrm.top.net[2])[:, 0])

    ai = AutoInt(SCHEMA, emb_dim=3, att_layers=1, heads=1, att_dim=3, hidden=(4,))
    f = np.concatenate([_emb(ai), (D @ A(ai.dense_proj.weight).T)[:, None]], 1)
    h = relu(mha(f, ai.att.attn[0]) + linear(f, ai.att.res[0]))
    deep = linear(relu(linear(f.reshape(3, -1), ai.mlp.net[0])), ai.mlp.net[2])[:, 0]
    close(ai.logits(BATCH), linear(h.reshape(3, -1), ai.out)[:, 0] + deep, 1e-4)


# ------------------------------------------------------------------ NASRec operators

def _block():
    from nasrec_lit.nas.space import SpaceConfig, ChoiceBlock
    cfg = SpaceConfig.cpu(num_blocks=2)
    torch.manual_seed(2)
    blk = ChoiceBlock([3, 5], [4, 2], cfg, max_width=8, max_tokens=3)
    with torch.no_grad():                       # LayerNorm affine parameters off their (1, 0) init, so they count
        for k, m in blk.ops.items():
            if isinstance(m, nn.LayerNorm): m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.1)
    E = cfg.emb_dim
    dense = [torch.randn(2, 3), torch.randn(2, 5)]; sparse = [torch.randn(2, 4, E), torch.randn(2, 2, E)]
    return blk, dense, sparse


def _masked_ln(x, ln, w):
    if w is None: return layer_norm(x, A(ln.weight), A(ln.bias))
    out = np.zeros_like(x); out[..., :w] = layer_norm(x[..., :w], A(ln.weight)[:w], A(ln.bias)[:w]); return out


def test_nasrec_dense_operators():
    blk, dense, sparse = _block(); o = blk.ops
    d_in = np.concatenate([A(t) for t in dense], 1); s_in = np.concatenate([A(t) for t in sparse], 1)
    pad = lambda x: np.pad(x, ((0, 0), (0, blk.P - x.shape[1])))
    left, right = A(dense[1]), A(dense[0])
    for w in (None, 5):
        ref = {"fc": relu(_masked_ln(linear(d_in, o["fc"]), o["fc_ln"], w)),
               "gating": _masked_ln(linear(sigmoid(linear(pad(left), o["gate"])) * pad(right), o["gating"]), o["gating_ln"], w),
               "sum": _masked_ln(linear(pad(left) + pad(right), o["sum"]), o["sum_ln"], w)}
        d = linear(d_in, o["dot_dense"])[:, None]                              # [B, 1, E]
        t = np.swapaxes(linear(np.swapaxes(s_in, 1, 2), o["dot_compress"]), 1, 2)  # [B, C, E]: tokens compressed to √(2W)
        c = blk.C if w is None else round(math.sqrt(2 * w)); t[:, c:] = 0
        x = np.concatenate([d, t], 1)
        z = np.stack([(x[:, i] * x[:, j]).sum(-1) for i in range(blk.C + 1) for j in range(i)], 1)
        ref["dot"] = _masked_ln(linear(z, o["dot"]), o["dot_ln"], w)
        for op, want in ref.items():
            close(blk.dense_op(op, torch.cat(dense, 1), torch.cat(sparse, 1), dense[1], dense[0], w), want, 1e-4)


def test_nasrec_sparse_operators_and_mergers():
    blk, dense, sparse = _block(); o = blk.ops
    s_in = np.concatenate([A(t) for t in sparse], 1)
    x = np.swapaxes(linear(np.swapaxes(s_in, 1, 2), o["efc"]), 1, 2)           # [B, T, E]
    for t in (None, 2):
        keep = np.ones(blk.T) if t is None else (np.arange(blk.T) < t).astype(float)
        efc = relu(layer_norm(x, A(o["efc_ln"].weight), A(o["efc_ln"].bias))) * keep[None, :, None]
        close(blk.sparse_op("efc", torch.cat(sparse, 1), t), efc, 1e-4)
        a = mha(x, o["attn"], None if t is None else np.broadcast_to(keep == 0, (2, blk.T)))
        h = layer_norm(x + a, A(o["attn_ln"].weight), A(o["attn_ln"].bias))
        y = layer_norm(h + linear(relu(linear(h, o["ffn"][0])), o["ffn"][2]), A(o["ffn_ln"].weight), A(o["ffn_ln"].bias)) * keep[None, :, None]
        close(blk.sparse_op("transformer", torch.cat(sparse, 1), t), y, 1e-4)
    # a whole block: the dense output gets the projected FM of the sparse output (per token); the sparse output gets
    # the dense output's projection as extra tokens; unchosen inputs are zeros
    from nasrec_lit.nas.space import Block
    ch = Block(dense_op="sum", sparse_op="efc", dense_in=[1], sparse_in=[0], left=1, right=0, width=6, tokens=2, d2s=True, s2d=True)
    dn, sp = blk(dense, sparse, ch)
    s_sel = np.concatenate([A(sparse[0]), np.zeros_like(A(sparse[1]))], 1)
    xs = np.swapaxes(linear(np.swapaxes(s_sel, 1, 2), o["efc"]), 1, 2)
    keep = (np.arange(blk.T) < 2).astype(float)[None, :, None]
    sp_ref = relu(layer_norm(xs, A(o["efc_ln"].weight), A(o["efc_ln"].bias))) * keep
    pad = lambda v: np.pad(v, ((0, 0), (0, blk.P - v.shape[1])))
    dn_ref = _masked_ln(linear(pad(A(dense[1])) + pad(A(dense[0])), o["sum"]), o["sum_ln"], 6)
    s = sp_ref.sum(1); fm = 0.5 * (s * s - (sp_ref ** 2).sum(1))
    dn_ref = (dn_ref + linear(fm / 2, o["s2d"])) * (np.arange(blk.W) < 6)
    extra = linear(dn_ref, o["d2s"]).reshape(2, blk.cfg.merge_tokens, -1)
    close(dn, dn_ref, 1e-4); close(sp, np.concatenate([sp_ref, extra], 1), 1e-4)


# ------------------------------------------------------------------ SUM modules

def test_sum_dot_compress_and_mixer():
    from nasrec_lit.usermodel.sum import DotCompress, MixerBlock
    torch.manual_seed(3)
    dc = DotCompress(n=5, dim=4, k=2)
    with torch.no_grad(): dc.Z.normal_()
    x = torch.randn(3, 5, 4); X = A(x)
    w = softmax(X @ A(dc.Y) / 2.0 + A(dc.Z), axis=1)                          # softmax over the N tokens; √d = 2
    close(dc(x), np.swapaxes(w, 1, 2) @ X)
    mx = MixerBlock(n=5, dim=4, k=2)
    h = X + np.swapaxes(linear(gelu(linear(np.swapaxes(layer_norm(X, A(mx.ln1.weight), A(mx.ln1.bias)), 1, 2), mx.tok[0])), mx.tok[2]), 1, 2)
    h = h + linear(gelu(linear(layer_norm(h, A(mx.ln2.weight), A(mx.ln2.bias)), mx.ch[0])), mx.ch[2])
    close(mx(x), np.swapaxes(linear(np.swapaxes(h, 1, 2), mx.out), 1, 2))


def test_sum_user_tower_pools_the_history_over_real_items_only():
    "The history's pooled vector is the mean of the non-padding items' embeddings (id 0 is padding)."
    from nasrec_lit.usermodel.sum import UserTower, SUMConfig
    cfg = SUMConfig(dim=4, D=4, K=2, pyramid=[3], dense_tokens=1)
    ut = UserTower([4, 3], n_items=10, n_dense=2, cfg=cfg)
    seen = {}
    ut.modules_[0].register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))            # returns None: output kept
    hist = torch.tensor([[3, 5, 0, 0], [7, 0, 0, 0]])
    ut(torch.tensor([[1, 2], [0, 0]]), hist, torch.randn(2, 2))
    items = A(ut.items.weight)
    close(seen["x"][:, 2], np.stack([(items[3] + items[5]) / 2, items[7]]))
    close(seen["x"][:, 3], items[[3, 7]])                                     # the most recent item as a token of its own
