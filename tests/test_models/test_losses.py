"""Partial BCE and the category-wise contrastive term vs. docs/method.md."""
import math

import pytest
import torch
from mmpretrain.registry import MODELS

import sarb_mm  # noqa: F401
from sarb_mm.models.losses.contrastive import (CategoryContrastiveLoss,
                                               category_contrastive_loss)
from sarb_mm.models.losses.partial_bce import PartialBCELoss, partial_bce


def _log_sig(v):
    # numerically safe log(sigmoid(v)) in float64
    return -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))


def naive_partial_bce(x, t):
    total, count = 0.0, 0
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            xv, tv = float(x[i, c]), float(t[i, c])
            if tv == 0:
                continue
            if tv < 0:
                xv, tv = -xv, -tv
            # log(1 - s(x)) = log s(-x)
            total += -(tv * _log_sig(xv) + (1 - tv) * _log_sig(-xv))
            count += 1
    return total / count if count else 0.0


def test_partial_bce_hard_targets():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 3
    t = torch.randint(-1, 2, (4, 5), generator=gen).double()
    assert (t == 0).any() and (t != 0).any()
    out = partial_bce(x, t)
    assert abs(out.item() - naive_partial_bce(x, t)) < 1e-5


def test_partial_bce_soft_targets():
    x = torch.tensor([[0.5, -2.0, 1.5, 3.0, -0.3], [4.0, 0.1, -1.0, -3.0,
                                                    2.2]])
    t = torch.tensor([[0.3, -0.7, 0.0, 1.0, -1.0], [0.65, 0.0, -0.2, 0.9,
                                                    0.0]])
    out = partial_bce(x, t)
    assert abs(out.item() - naive_partial_bce(x, t)) < 1e-5
    # negative soft target is the mirror of the positive one
    a = partial_bce(torch.tensor([[1.3]]), torch.tensor([[-0.4]]))
    b = partial_bce(torch.tensor([[-1.3]]), torch.tensor([[0.4]]))
    torch.testing.assert_close(a, b)


def test_partial_bce_extreme_logits_finite():
    x = torch.tensor([[80.0, -80.0, 80.0, -80.0]])
    t = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    out = partial_bce(x, t)
    assert torch.isfinite(out)
    assert abs(out.item() - naive_partial_bce(x.double(), t)) < 1e-4


def test_partial_bce_all_unknown_zero_and_backward():
    x = torch.randn(3, 5, requires_grad=True)
    out = partial_bce(x, torch.zeros(3, 5))
    assert out.item() == 0.0
    out.backward()
    assert x.grad is not None
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()


def test_partial_bce_registry_ignores_avg_factor():
    loss = MODELS.build(dict(type='PartialBCELoss'))
    assert isinstance(loss, PartialBCELoss)
    x = torch.randn(4, 5)
    t = torch.randint(-1, 2, (4, 5)).float()
    ref = partial_bce(x, t)
    torch.testing.assert_close(loss(x, t), ref)
    torch.testing.assert_close(loss(x, t, avg_factor=123.0), ref)
    torch.testing.assert_close(loss(x, t, avg_factor=4), ref)
    heavy = MODELS.build(dict(type='PartialBCELoss', loss_weight=2.5))
    torch.testing.assert_close(heavy(x, t, avg_factor=7), 2.5 * ref)


# ---------------------------------------------------------------- Lcon


def _cos(a, b):
    a, b = a.double(), b.double()
    return float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))


def _terms(F, y):
    """Pair-major (0,1),(0,2),...,(1,2),..., then class order."""
    pp, pn, nn_ = [], [], []
    b, c = y.shape
    for i in range(b):
        for j in range(i + 1, b):
            for k in range(c):
                ti, tj = float(y[i, k]), float(y[j, k])
                if ti == 0 or tj == 0:
                    continue
                s = _cos(F[i, k], F[j, k])
                if ti > 0 and tj > 0:
                    pp.append(1 - s)
                elif ti < 0 and tj < 0:
                    nn_.append(1 + s)
                else:
                    pn.append(1 + s)
    return pp, pn, nn_


def naive_contrastive(F, y, generator=None):
    pp, pn, nn_ = _terms(F, y)
    p = len(pp)
    kept = list(pp)
    if p == 0:
        kept += pn + nn_
    else:
        for terms in (nn_, pn):  # neg-neg draws first, then pos-neg
            if not terms:
                continue
            perm = torch.randperm(len(terms), generator=generator).tolist()
            kept += [terms[q] for q in perm[:2 * p]]
            kept += sorted(terms, reverse=True)[:p]
    return sum(kept) / len(kept) if kept else 0.0


def test_contrastive_no_pos_pos_keeps_all():
    F = torch.randn(5, 4, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([[1., -1., 0., -1.], [-1., 1., -1., 0.],
                      [-1., -1., -1., -1.], [0., -1., 1., -1.],
                      [-1., 0., -1., 1.]])
    pp, pn, nn_ = _terms(F, y)
    assert not pp and pn and nn_
    out = category_contrastive_loss(F, y)
    assert abs(out.item() - (sum(pn) + sum(nn_)) / (len(pn) + len(nn_))) \
        < 1e-5
    assert abs(out.item() - naive_contrastive(F, y)) < 1e-5


def test_contrastive_subsampling_with_generator():
    F = torch.randn(6, 5, 7, generator=torch.Generator().manual_seed(2))
    y = -torch.ones(6, 5)
    y[0, 0] = y[1, 0] = 1  # one pos-pos pair: P = 1
    y[3, 2] = 1
    y[4, 1] = y[5, 4] = 0
    pp, pn, nn_ = _terms(F, y)
    assert len(pp) == 1 and len(nn_) > 3 and len(pn) > 3
    for seed in range(5):
        g1 = torch.Generator().manual_seed(seed)
        g2 = torch.Generator().manual_seed(seed)
        out = category_contrastive_loss(F, y, generator=g1)
        assert abs(out.item() - naive_contrastive(F, y, g2)) < 1e-5, seed
    # subsampling is in effect: differs from keeping everything
    keep_all = (sum(pp) + sum(pn) + sum(nn_)) / (len(pp) + len(pn) + len(nn_))
    assert abs(out.item() - keep_all) > 1e-4


def test_contrastive_subsampling_several_pos_pairs():
    gen = torch.Generator().manual_seed(3)
    F = torch.randn(5, 5, 6, generator=gen)
    y = torch.tensor([[1., -1., 0., -1., 1.], [1., 1., -1., 0., -1.],
                      [-1., 1., -1., -1., 1.], [0., -1., -1., 1., -1.],
                      [1., -1., 1., -1., -1.]])
    pp, pn, nn_ = _terms(F, y)
    assert len(pp) >= 2
    # with few neg-neg terms (< 2P) everything is drawn plus the P largest
    for seed in (0, 7):
        out = category_contrastive_loss(
            F, y, generator=torch.Generator().manual_seed(seed))
        ref = naive_contrastive(F, y, torch.Generator().manual_seed(seed))
        assert abs(out.item() - ref) < 1e-5


def test_contrastive_no_known_pairs_is_zero():
    F = torch.randn(3, 4, 5, requires_grad=True)
    y = torch.zeros(3, 4)
    y[0] = torch.tensor([1., -1., 1., -1.])
    out = category_contrastive_loss(F, y)
    assert out.item() == 0.0
    out.backward()
    assert torch.isfinite(F.grad).all()
    # batch of one
    assert category_contrastive_loss(torch.randn(1, 4, 5),
                                     torch.ones(1, 4)).item() == 0.0


def test_contrastive_module_weight_and_registry():
    F = torch.randn(4, 5, 6)
    y = torch.randint(-1, 2, (4, 5)).float()
    mod = MODELS.build(dict(type='CategoryContrastiveLoss'))
    assert isinstance(mod, CategoryContrastiveLoss)
    assert mod.loss_weight == 0.05
    torch.manual_seed(9)
    a = mod(F, y)
    torch.manual_seed(9)
    b = 0.05 * category_contrastive_loss(F, y)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize('loss_type',
                         ['PartialBCELoss', 'CategoryContrastiveLoss'])
@pytest.mark.parametrize('weight', [-1.0, float('nan'), float('inf'), '1'])
def test_loss_weights_are_checked(loss_type, weight):
    from sarb_mm.utils.errors import InvalidInputError
    with pytest.raises(
            InvalidInputError,
            match=f'{loss_type} loss_weight must be a finite'):
        MODELS.build(dict(type=loss_type, loss_weight=weight))
