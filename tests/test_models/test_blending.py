"""ILRB / PLRB and SARBHead.loss vs. docs/method.md."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.models.losses.contrastive import category_contrastive_loss
from sarb_mm.models.losses.partial_bce import partial_bce
from sarb_mm.models.utils import (cooccurrence_matrix, draw_prototype_classes,
                                  instance_blend, prototype_blend)

B, C, D, DOUT, K = 4, 5, 8, 7, 3

# rows: image n; has unknowns (0), positives (1), negatives (-1)
TARGETS = torch.tensor([
    [1., 0., -1., 0., 0.],
    [0., 1., 0., -1., 1.],
    [-1., 0., 1., 0., 0.],
    [0., 1., 1., 1., -1.],
])


def naive_ilrb(F, y, alpha):
    b, c = y.shape
    Ft = F.clone().double()
    yt = y.clone().double()
    for n in range(b):
        m = b - 1 - n
        for k in range(c):
            if y[n, k] == 0 and y[m, k] == 1:
                Ft[n, k] = alpha * F[n, k].double() + (1 - alpha) * F[m, k]
                yt[n, k] = 1 - alpha
    return Ft, yt


def naive_plrb(F, y, protos, classes, beta):
    Fh = F.clone().double()
    yh = y.clone().double()
    for n in range(y.shape[0]):
        c = int(classes[n])
        if c < 0:
            continue
        Fh[n, c] = beta * F[n, c].double() + (1 - beta) * protos[c].double()
        yh[n, c] = 1 - beta
    return Fh, yh


def test_ilrb_matches_loop():
    F = torch.randn(B, C, D, generator=torch.Generator().manual_seed(0))
    alpha = torch.tensor(0.3)
    Ft, yt = instance_blend(F, TARGETS, alpha)
    eF, ey = naive_ilrb(F, TARGETS, 0.3)
    torch.testing.assert_close(Ft.double(), eF, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(yt.double(), ey, atol=1e-6, rtol=1e-6)
    assert (ey != TARGETS.double()).any()  # something was blended


def test_ilrb_odd_batch_and_size_one():
    F = torch.randn(3, C, D)
    y = TARGETS[:3]
    Ft, yt = instance_blend(F, y, torch.tensor(0.7))
    eF, ey = naive_ilrb(F, y, 0.7)
    torch.testing.assert_close(Ft.double(), eF, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(yt.double(), ey)
    # B = 1: the image is its own partner -> nothing changes
    F1 = torch.randn(1, C, D)
    y1 = torch.tensor([[1., 0., -1., 0., 1.]])
    Ft, yt = instance_blend(F1, y1, torch.tensor(0.2))
    assert torch.equal(Ft, F1) and torch.equal(yt, y1)


def test_ilrb_alpha_gradients_through_features_and_targets():
    F = torch.randn(B, C, D)
    # through features only
    alpha = torch.tensor(0.4, requires_grad=True)
    Ft, _ = instance_blend(F, TARGETS, alpha)
    Ft.square().sum().backward()
    assert alpha.grad is not None and alpha.grad.abs() > 0
    # through targets only
    alpha = torch.tensor(0.4, requires_grad=True)
    _, yt = instance_blend(F, TARGETS, alpha)
    logits = torch.randn(B, C)
    partial_bce(logits, yt).backward()
    assert alpha.grad is not None and alpha.grad.abs() > 0


def test_plrb_matches_loop():
    F = torch.randn(B, C, D, generator=torch.Generator().manual_seed(1))
    protos = torch.randn(C, D)
    classes = torch.tensor([1, -1, 4, 0])
    beta = torch.tensor(0.35, requires_grad=True)
    Fh, yh = prototype_blend(F, TARGETS, protos, classes, beta)
    eF, ey = naive_plrb(F, TARGETS, protos, classes, 0.35)
    torch.testing.assert_close(Fh.double(), eF, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(yh.double(), ey, atol=1e-6, rtol=1e-6)
    assert torch.equal(Fh[1], F[1]) and torch.equal(yh[1], TARGETS[1])
    (Fh.sum() + yh.sum()).backward()
    assert beta.grad.abs() > 0


def test_draw_prototype_classes_valid_and_uniform():
    base = torch.tensor([
        [0., 0., 0., 1., -1.],  # candidates 0, 2 (1 has no prototype)
        [1., 0., -1., 0., 0.],  # candidates 3, 4
        [1., 1., -1., -1., 1.],  # no unknown -> -1
        [1., 0., 1., 1., 1.],  # only unknown class lacks prototypes -> -1
        [0., 0., 0., 0., 0.],  # candidates 0, 2, 3, 4
    ])
    mask = torch.tensor([True, False, True, True, True])
    reps = 2000
    targets = base.repeat(reps, 1)
    gen = torch.Generator().manual_seed(0)
    drawn = draw_prototype_classes(targets, mask, generator=gen)
    assert drawn.dtype == torch.long and drawn.shape == (5 * reps, )
    drawn = drawn.view(reps, 5)
    for row in range(5):
        cands = [c for c in range(C) if base[row, c] == 0 and mask[c]]
        vals = drawn[:, row]
        if not cands:
            assert (vals == -1).all()
            continue
        assert set(vals.tolist()) <= set(cands)
        for c in cands:
            freq = (vals == c).float().mean().item()
            assert abs(freq - 1 / len(cands)) < 0.05, (row, c, freq)
    # default generator works too; no candidates anywhere -> all -1
    out = draw_prototype_classes(base, torch.zeros(C, dtype=torch.bool))
    assert (out == -1).all()


# --------------------------------------------------------------- the head


def _samples(targets):
    return [DataSample().set_gt_score(t.clone()) for t in targets]


def _head(**kw):
    cfg = dict(
        type='SARBHead',
        num_classes=C,
        in_channels=D,
        out_channels=DOUT,
        num_prototypes=K,
        blend_start_epoch=2)
    cfg.update(kw)
    head = MODELS.build(cfg)
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name not in ('alpha', 'beta'):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
        head.alpha.fill_(0.3)
        head.beta.fill_(0.8)
    labels = np.random.RandomState(0).choice([-1, 0, 1], size=(20, C))
    head.cooccurrence.copy_(cooccurrence_matrix(labels))
    return head


def _prototypes(mask=(True, False, True, True, True)):
    protos = torch.randn(C, K, D, generator=torch.Generator().manual_seed(12))
    mask = torch.tensor(mask)
    protos[~mask] = 0
    return protos, mask


def _features(seed=13, b=B):
    return torch.randn(b, C, D, generator=torch.Generator().manual_seed(seed))


def _recompute(head, F, y, epoch, it, iters, seed):
    """The head's loss from the pure functions, same random calls."""
    torch.manual_seed(seed)
    out = {}
    with torch.no_grad():
        out['loss_cls'] = partial_bce(head.classify(F), y)
        blending = epoch >= head.blend_start_epoch
        if blending:
            Fi, yi = instance_blend(F, y, head.alpha.clamp(0, 1))
            out['loss_ilrb'] = partial_bce(head.classify(Fi), yi)
        if blending and head.prototype_mask.any():
            k = int(torch.randint(head.num_prototypes, (1, )))
            classes = draw_prototype_classes(y, head.prototype_mask)
            Fp, yp = prototype_blend(F, y, head.prototypes[:, k], classes,
                                     head.beta.clamp(0, 1))
            out['loss_plrb'] = partial_bce(head.classify(Fp), yp)
            out['_classes'] = classes
        # Idle branches are logged as 0, as in the published logs.
        out.setdefault('loss_ilrb', torch.zeros(()))
        out.setdefault('loss_plrb', torch.zeros(()))
        warm = it / iters if epoch == 0 else 1.0
        out['loss_con'] = warm * 0.05 * category_contrastive_loss(F, y)
    return out


def _check(head, F, y, epoch, it, iters, seed=5):
    head.set_progress(epoch, it, iters)
    torch.manual_seed(seed)
    losses = head.loss((F, ), _samples(y))
    expected = _recompute(head, F, y, epoch, it, iters, seed)
    keys = {k for k in losses if k.startswith('loss')}
    assert keys == {k for k in expected if k.startswith('loss')}
    for k in keys:
        assert torch.isfinite(losses[k]), k
        torch.testing.assert_close(
            losses[k].double(),
            expected[k].double(),
            atol=1e-5,
            rtol=1e-5,
            msg=k)
    return losses, expected


def test_head_loss_with_blending_matches_pure_functions():
    head = _head()
    head.set_prototypes(*_prototypes())
    F = _features()
    losses, expected = _check(head, F, TARGETS, epoch=3, it=4, iters=10)
    assert 'loss_ilrb' in losses and 'loss_plrb' in losses
    assert (expected['_classes'] >= 0).any()  # PLRB really blended
    # blending really changed something
    assert not torch.isclose(losses['loss_ilrb'], losses['loss_cls'])
    assert not torch.isclose(losses['loss_plrb'], losses['loss_cls'])
    # alpha and beta get gradients from their branches
    (losses['loss_ilrb'] + losses['loss_plrb']).backward()
    assert head.alpha.grad.abs() > 0 and head.beta.grad.abs() > 0


def test_head_loss_several_seeds():
    head = _head()
    head.set_prototypes(*_prototypes())
    for seed in range(4):
        _check(
            head,
            _features(seed),
            TARGETS,
            epoch=2,
            it=0,
            iters=7,
            seed=seed + 100)


def test_head_loss_before_blend_start():
    head = _head()
    head.set_prototypes(*_prototypes())
    losses, _ = _check(head, _features(), TARGETS, epoch=1, it=3, iters=10)
    assert {k
            for k in losses if k.startswith('loss')
            } == {'loss_cls', 'loss_ilrb', 'loss_plrb', 'loss_con'}
    assert losses['loss_ilrb'] == 0 and losses['loss_plrb'] == 0
    assert head.idle_parameters() == [head.alpha, head.beta]
    # Not in the graph of the blending terms: nothing reaches alpha / beta
    # but the zero-weighted use that keeps DDP in step.
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert head.alpha.grad == 0 and head.beta.grad == 0


def test_head_contrastive_warmup_epoch0():
    head = _head()
    F = _features()
    losses, _ = _check(head, F, TARGETS, epoch=0, it=3, iters=10)
    full, _ = _check(head, F, TARGETS, epoch=1, it=3, iters=10)
    assert full['loss_con'] > 0
    torch.testing.assert_close(losses['loss_con'], 0.3 * full['loss_con'])
    zero, _ = _check(head, F, TARGETS, epoch=0, it=0, iters=10)
    assert zero['loss_con'] == 0


def test_head_plrb_skipped_without_prototypes():
    head = _head()
    losses, _ = _check(head, _features(), TARGETS, epoch=4, it=1, iters=10)
    assert losses['loss_ilrb'] > 0 and losses['loss_plrb'] == 0
    assert head.idle_parameters() == [head.beta]


def test_head_batch_without_known_labels():
    head = _head()
    head.set_prototypes(*_prototypes())
    y = torch.zeros(B, C)
    F = _features().requires_grad_()
    losses, _ = _check(head, F, y, epoch=5, it=1, iters=10)
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(F.grad).all()


def test_head_batch_without_unknown_labels():
    head = _head()
    head.set_prototypes(*_prototypes())
    y = torch.tensor([[1., -1., 1., -1., -1.], [-1., 1., 1., -1., 1.],
                      [1., 1., -1., -1., -1.], [-1., -1., -1., 1., 1.]])
    losses, expected = _check(head, _features(), y, epoch=5, it=1, iters=10)
    assert (expected['_classes'] == -1).all()
    torch.testing.assert_close(losses['loss_plrb'], losses['loss_cls'])
    torch.testing.assert_close(losses['loss_ilrb'], losses['loss_cls'])


def test_head_missing_progress():
    head = _head()
    with pytest.raises(RuntimeError, match='PrototypeHook'):
        head.loss((_features(), ), _samples(TARGETS))


def test_head_missing_gt_score():
    head = _head()
    head.set_progress(5, 0, 10)
    samples = [DataSample().set_gt_label([0, 1]) for _ in range(B)]
    with pytest.raises(ValueError, match='PartialLabelDataset'):
        head.loss((_features(), ), samples)


def test_head_alpha_beta_clamped_before_use():
    head = _head()
    head.set_prototypes(*_prototypes())
    with torch.no_grad():
        head.alpha.fill_(-0.5)  # -> 0: F~ = partner features, y~ = 1
        head.beta.fill_(1.7)  # -> 1: F^ = F, y^ = 0 (unknown again)
    F = _features(21)
    head.set_progress(6, 0, 10)
    torch.manual_seed(0)
    losses = head.loss((F, ), _samples(TARGETS))
    Fi, yi = naive_ilrb(F, TARGETS, 0.0)
    with torch.no_grad():
        ref_ilrb = partial_bce(head.classify(Fi.float()), yi)
    torch.testing.assert_close(
        losses['loss_ilrb'].double(), ref_ilrb.double(), atol=1e-5, rtol=1e-5)
    # beta = 1 leaves features unchanged and the drawn targets at 0
    torch.testing.assert_close(losses['loss_plrb'], losses['loss_cls'])
    assert losses['alpha'] == 0 and losses['beta'] == 1


def test_alpha_beta_trajectory_as_published_across_the_bounds():
    """Adam steps that push alpha and beta past [0, 1]: the published
    forward clamps them in place and takes the gradient at the clamped
    value, so they can come back. A clamp at use (zero gradient outside
    [0, 1] and at 0 and 1) would leave them stuck; this follows the
    published trajectory step by step."""
    ours, ref = _head(), _head()
    with torch.no_grad():
        for head in (ours, ref):
            head.alpha.fill_(0.97)
            head.beta.fill_(0.03)
            head.set_prototypes(*_prototypes())
    optimizers = [
        torch.optim.Adam(h.parameters(), lr=0.05, weight_decay=5e-4)
        for h in (ours, ref)
    ]
    crossed = set()
    for step in range(12):
        F = _features(40 + step)
        for head, optimizer, published in ((ours, optimizers[0], False),
                                           (ref, optimizers[1], True)):
            if published:  # model/SARB.py forward, before the blends
                with torch.no_grad():
                    head.alpha.data.clamp_(min=0, max=1)
                    head.beta.data.clamp_(min=0, max=1)
            head.set_progress(6, step, 12)
            torch.manual_seed(step)
            losses = head.loss((F, ), _samples(TARGETS))
            sum(v for k, v in losses.items()
                if k.startswith('loss')).backward()
            optimizer.step()
            optimizer.zero_grad()
        for name in ('alpha', 'beta'):
            value = float(getattr(ref, name).detach())
            if not 0 <= value <= 1:
                crossed.add(name)
        for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, msg=f'{name} at step {step}')
    # Both left [0, 1] at some step (and were brought back by the clamp).
    assert crossed == {'alpha', 'beta'}


def test_head_batch_of_one():
    head = _head()
    head.set_prototypes(*_prototypes())
    _check(head, _features(22, b=1), TARGETS[:1], epoch=5, it=2, iters=10)
