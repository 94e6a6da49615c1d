"""GGNN, SARBHead.classify/predict and the co-occurrence graph vs. the docs."""
import math

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.models.utils import GatedGraphPropagation, cooccurrence_matrix

B, C, D, DOUT = 3, 5, 8, 7


def _sig(v):
    return 1.0 / (1.0 + torch.exp(-v))


def _lin(layer):
    return layer.weight.detach().double(), layer.bias.detach().double()


def naive_ggnn_step(g, h, A):
    """m = [A h ; A^T h], u, r, g, h <- (1-u) h + u g: loops over nodes."""
    Wu, bWu = _lin(g.update_msg)
    Uu, bUu = _lin(g.update_node)
    Wr, bWr = _lin(g.reset_msg)
    Ur, bUr = _lin(g.reset_node)
    Wg, bWg = _lin(g.candidate_msg)
    Ug, bUg = _lin(g.candidate_node)
    h = h.double()
    A = A.double()
    b, c, d = h.shape
    out = torch.zeros_like(h)
    for n in range(b):
        for i in range(c):
            a_h = torch.zeros(d, dtype=torch.float64)
            at_h = torch.zeros(d, dtype=torch.float64)
            for j in range(c):
                a_h += A[i, j] * h[n, j]
                at_h += A[j, i] * h[n, j]
            m = torch.cat([a_h, at_h])
            hi = h[n, i]
            u = _sig(Wu @ m + bWu + Uu @ hi + bUu)
            r = _sig(Wr @ m + bWr + Ur @ hi + bUr)
            cand = torch.tanh(Wg @ m + bWg + Ug @ (r * hi) + bUg)
            out[n, i] = (1 - u) * hi + u * cand
    return out


def _randomise(module, scale=0.4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)


def _asym_adjacency(seed=1):
    A = torch.rand(C, C, generator=torch.Generator().manual_seed(seed))
    A.fill_diagonal_(1.0)
    A[2] = 0  # a class never positive: zero row
    return A


def test_ggnn_one_step_and_three_steps():
    g = GatedGraphPropagation(D)
    assert g.num_steps == 3
    _randomise(g)
    A = _asym_adjacency()
    assert not torch.allclose(A, A.T)  # the direction matters
    h = torch.randn(B, C, D, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        one = g.step(h, A)
        three = g(h, A)
    torch.testing.assert_close(
        one.double(), naive_ggnn_step(g, h, A), atol=1e-5, rtol=1e-5)
    expected = h.double()
    for _ in range(3):
        expected = naive_ggnn_step(g, expected, A)
    torch.testing.assert_close(three.double(), expected, atol=1e-5, rtol=1e-5)


def _head(**kwargs):
    cfg = dict(
        type='SARBHead',
        num_classes=C,
        in_channels=D,
        out_channels=DOUT,
        num_prototypes=3)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    return head


def naive_classify(head, F):
    h = F.double()
    for _ in range(3):
        h = naive_ggnn_step(head.graph, h, head.cooccurrence)
    Wo, bo = _lin(head.fc)
    V = head.class_weight.detach().double()
    s = head.class_bias.detach().double()
    logits = torch.zeros(F.shape[0], C, dtype=torch.float64)
    for n in range(F.shape[0]):
        for c in range(C):
            o = torch.tanh(Wo @ torch.cat([h[n, c], F[n, c].double()]) + bo)
            logits[n, c] = V[c] @ o + s[c]
    return logits


def test_head_structure_and_init():
    head = _head(out_channels=1024)
    assert head.graph.num_steps == 3
    assert head.fc.in_features == 2 * D and head.fc.out_features == 1024
    assert head.class_weight.shape == (C, 1024)
    assert head.class_bias.shape == (C, )
    bound = 1 / math.sqrt(1024)
    assert head.class_weight.abs().max() <= bound
    assert head.class_bias.abs().max() <= bound
    # roughly uniform, not all zero / constant
    assert head.class_weight.std() > bound / 3
    # co-occurrence and prototypes are buffers, checkpointed
    sd = head.state_dict()
    for key in ('cooccurrence', 'prototypes', 'prototype_mask'):
        assert key in sd
        assert key not in dict(head.named_parameters())


def test_head_classify_matches_naive():
    head = _head()
    _randomise(head, seed=3)
    head.cooccurrence.copy_(_asym_adjacency(4))
    F = torch.randn(B, C, D, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = head.classify(F)
        fwd = head((F, ))
    expected = naive_classify(head, F)
    torch.testing.assert_close(logits.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fwd, logits)


def test_head_predict_scores_are_sigmoid_of_main_logits():
    head = _head()
    _randomise(head, seed=6)
    head.cooccurrence.copy_(_asym_adjacency(7))
    head.eval()
    F = torch.randn(B, C, D, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        preds = head.predict((F, ))
        logits = naive_classify(head, F)
    assert len(preds) == B
    for n, sample in enumerate(preds):
        assert isinstance(sample, DataSample)
        torch.testing.assert_close(
            sample.pred_score.double(),
            torch.sigmoid(logits[n]),
            atol=1e-6,
            rtol=1e-5)
    # with given data samples too
    samples = [DataSample().set_gt_score(torch.zeros(C)) for _ in range(B)]
    with torch.no_grad():
        preds = head.predict((F, ), samples)
    for n, sample in enumerate(preds):
        torch.testing.assert_close(
            sample.pred_score.double(),
            torch.sigmoid(logits[n]),
            atol=1e-6,
            rtol=1e-5)


def naive_cooccurrence(labels):
    labels = np.asarray(labels)
    n_img, n_cls = labels.shape
    A = np.zeros((n_cls, n_cls))
    for i in range(n_cls):
        n_i = sum(1 for k in range(n_img) if labels[k, i] == 1)
        for j in range(n_cls):
            n_ij = sum(1 for k in range(n_img)
                       if labels[k, i] == 1 and labels[k, j] == 1)
            A[i, j] = n_ij / n_i if n_i > 0 else 0.0
    return A


def test_cooccurrence_matrix_counts():
    rng = np.random.RandomState(0)
    labels = rng.choice([-1, 0, 1], size=(30, 6), p=[0.4, 0.3, 0.3])
    labels[:, 4] = rng.choice([-1, 0], size=30)  # never a known positive
    expected = naive_cooccurrence(labels)
    for inp in (labels, torch.from_numpy(labels), labels.astype(np.float32)):
        A = cooccurrence_matrix(inp)
        assert isinstance(A, torch.Tensor) and A.shape == (6, 6)
        assert torch.isfinite(A).all()
        np.testing.assert_allclose(A.double().numpy(), expected, atol=1e-6)
    A = cooccurrence_matrix(labels)
    assert torch.equal(A[4], torch.zeros(6))
    for i in range(6):
        if i != 4:
            assert A[i, i] == 1.0
    assert not torch.allclose(A, A.T)  # conditional, not symmetric


@pytest.mark.parametrize('option, value, match', [
    ('num_prototypes', 0, 'num_prototypes must be an integer >= 1, got 0'),
    ('num_prototypes', 2.5, 'num_prototypes'),
    ('num_steps', 0, 'num_steps'),
    ('blend_start_epoch', -1, 'blend_start_epoch must be an integer >= 0'),
    ('num_classes', True, 'num_classes'),
    ('ilrb_loss_weight', float('nan'), 'ilrb_loss_weight'),
    ('plrb_loss_weight', -1.0, 'plrb_loss_weight'),
])
def test_head_arguments_are_checked(option, value, match):
    from sarb_mm.utils.errors import InvalidInputError
    cfg = dict(type='SARBHead', num_classes=3, in_channels=8, out_channels=8)
    cfg[option] = value
    with pytest.raises(InvalidInputError, match=match):
        MODELS.build(cfg)


@pytest.mark.parametrize(
    'option', ['num_classes', 'feat_channels', 'embed_dims', 'attn_channels'])
def test_neck_arguments_are_checked(option):
    from sarb_mm.utils.errors import InvalidInputError
    cfg = dict(
        type='SemanticDecouplingNeck',
        num_classes=3,
        in_channels=8,
        feat_channels=8,
        embed_dims=4,
        attn_channels=4)
    cfg[option] = 0
    with pytest.raises(InvalidInputError, match=f'neck {option}'):
        MODELS.build(cfg)
