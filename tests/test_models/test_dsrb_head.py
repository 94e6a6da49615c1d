"""DSRB: one training step (logits, every loss term, gradients of the neck,
the head, alpha and beta) equal to the published DSRB model and training
loop as repaired, on the same weights, batch, prototypes and draws.

The reference transcribes HCP-MLR-PL's model/SemanticDecoupling.py
(``featuremapWithCoefficient``, the (B, H, W, C, D) maps), model/DSRB.py
(``forward``, ``mixupInstance_featuremap``, ``mixupPrototype_featuremap``)
and the loss lines of DSRB.py's ``Train``, with the ``.cuda()`` calls
removed and the repairs docs/differences.md lists as D1-D9 (the ones that
touch a training step are marked where they apply). It blends the maps
position by position as published; the head blends their sums.
"""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.models.losses import category_contrastive_loss
from sarb_mm.models.necks import SemanticDecouplingNeck
from sarb_mm.models.utils import (other_quadrants, peak_quadrants,
                                  quadrant_prototype_features)
from sarb_mm.utils.errors import InvalidInputError
from .test_semantic_decoupling import _randomise
from .test_sst_head import ref_bce, ref_ggnn

B, C, DB, D, E, I, DOUT, SIDE = 6, 5, 6, 8, 4, 5, 7, 5
# Row 3 has no unknown class, row 4 one only (fewer than top_k = 2).
TARGETS = torch.tensor([[1., 0., -1., 0., 0.], [0., 1., 0., 0., -1.],
                        [-1., 0., 1., 0., 1.], [1., -1., 1., -1., 1.],
                        [0., 1., -1., -1., 1.], [1., 0., 0., 1., 0.]])


def ref_semantic_decoupling(neck, fmap):
    """model/SemanticDecoupling.py forward; returns (semantic, maps)."""
    x = neck.reduce(fmap)  # DSRB's changeChannel
    batch, img = x.size(0), x.size(3)
    x = torch.transpose(torch.transpose(x, 1, 2), 2, 3)
    feat = neck.feature_proj(x.contiguous().view(batch * img * img, -1))
    feat = feat.view(batch * img * img, 1, -1).repeat(1, C, 1)
    word = neck.embedding_proj(neck.embeddings).view(1, C, I).repeat(
        batch * img * img, 1, 1)
    hidden = neck.attn_fc(torch.tanh(feat * word).view(-1, I))
    coef = neck.attn_score(hidden)
    coef = torch.transpose(
        torch.transpose(coef.view(batch, img, img, C), 2, 3), 1,
        2).reshape(batch, C, -1)
    coef = torch.softmax(coef, dim=2).view(batch, C, img, img)
    coef = torch.transpose(torch.transpose(coef, 1, 2), 2, 3)
    coef = coef.reshape(batch, img, img, C, 1).repeat(1, 1, 1, 1, D)
    maps = x.reshape(batch, img, img, 1, D).repeat(1, 1, 1, C, 1) * coef
    return torch.sum(torch.sum(maps, 1), 1), maps


def ref_classify(head, semantic):
    batch = semantic.size(0)
    feature = ref_ggnn(head, semantic, head.cooccurrence, head.cooccurrence.T)
    output = torch.tanh(
        head.fc(
            torch.cat((feature.view(batch * C, -1), semantic.view(-1, D)), 1)))
    output = output.contiguous().view(batch, C, DOUT)
    return torch.sum(output * head.class_weight, 2) + head.class_bias


def ref_mixup_instance(head, F, T):
    """mixupInstance_featuremap."""
    flipT = torch.flip(T, dims=[0])
    matrix = torch.ones_like(T)
    matrix[(T == 0) & (flipT == 1)] = head.alpha
    mixed_target = matrix * T + (1 - matrix) * flipT
    matrix = matrix.unsqueeze(1).unsqueeze(1).unsqueeze(-1).repeat(
        1, F.size(1), F.size(1), 1, F.size(-1))
    mixed = matrix * F + (1 - matrix) * torch.flip(F, dims=[0])
    return torch.sum(torch.sum(mixed, 1), 1), mixed_target


def ref_peak_quadrant(F):
    half, sums = F.size(1) // 2, torch.sum(F, dim=-1)
    index0 = torch.argmax(torch.max(sums, dim=2)[0], dim=1)
    index1 = torch.argmax(torch.max(sums, dim=1)[0], dim=1)
    return 2 * (index0 >= half) + (index1 >= half)


def ref_mixup_prototype(head, F, T, prototype_featuremap, top_k):
    """mixupPrototype_featuremap; D4: ``.squeeze()`` dropped, D5: only
    unknown classes are drawn."""
    index = ref_peak_quadrant(F)
    index = (index - torch.randint(1, 4, index.size())) % 4
    index = index.unsqueeze(-1).unsqueeze(-1).unsqueeze(-1).repeat(
        1, 1, F.size(1), F.size(1), F.size(-1))
    prototype = prototype_featuremap.unsqueeze(0).repeat(
        F.size(0), 1, 1, 1, 1, 1)
    prototype = (index == 0) * prototype[:, :, 0] + \
        (index == 1) * prototype[:, :, 1] + \
        (index == 2) * prototype[:, :, 2] + \
        (index == 3) * prototype[:, :, 3]
    prototype = prototype.transpose(1, 2).transpose(2, 3)
    matrix = torch.rand(T.size())
    matrix = matrix * (T == 0)
    matrix = torch.zeros_like(matrix).scatter_(
        1,
        torch.topk(matrix, top_k, dim=1)[1], 1)
    matrix = matrix * (T == 0)  # D5
    mixed_target = (1 - matrix) * T + matrix * (1 - head.beta)
    matrix = matrix.unsqueeze(1).unsqueeze(1).unsqueeze(-1).repeat(
        1, F.size(1), F.size(1), 1, F.size(-1))
    mixed = head.beta * F + (1 - head.beta) * prototype
    mixed = matrix * mixed + (1 - matrix) * F
    return torch.sum(torch.sum(mixed, 1), 1), mixed_target


def ref_step(neck, head, fmap, T, prototype_featuremap, top_k, epoch,
             batch_index, iters):
    """DSRB.py Train, one step; D2: proposedMethodEpoch is mixupEpoch and
    the instance / prototype weights are 1, as in SARB.py."""
    semantic, maps = ref_semantic_decoupling(neck, fmap)
    output = ref_classify(head, semantic)
    blend = epoch >= 5
    if blend:
        head.alpha.data.clamp_(min=0.0, max=1.0)
        head.beta.data.clamp_(min=0.0, max=1.0)
        mixed1, target1 = ref_mixup_instance(head, maps, T)
        mixed2, target2 = ref_mixup_prototype(head, maps, T,
                                              prototype_featuremap, top_k)
        out1, out2 = ref_classify(head, mixed1), ref_classify(head, mixed2)
    loss1 = ref_bce(output, T)
    ramp = 1.0 if epoch >= 1 else batch_index / float(iters)
    losses = dict(
        loss_cls=loss1,
        loss_con=0.05 * category_contrastive_loss(semantic, T) * ramp,
        loss_ilrb=ref_bce(out1, target1) if blend else 0 * loss1,
        loss_plrb=ref_bce(out2, target2) if blend else 0 * loss1)
    return output, losses, maps


def _models(top_k, alpha=0.3, beta=0.7):
    neck = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=DB,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I,
        with_peak_quadrants=True)
    _randomise(neck)
    head = MODELS.build(
        dict(
            type='DSRBHead',
            num_classes=C,
            in_channels=D,
            out_channels=DOUT,
            top_k=top_k))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        head.alpha.fill_(alpha)
        head.beta.fill_(beta)
        cooc = torch.rand(C, C, generator=gen)
        cooc.fill_diagonal_(0)
        head.cooccurrence.copy_(cooc)
        maps = torch.randn(C, 4, SIDE, SIDE, D, generator=gen) * 0.1
        head.set_prototypes(maps.sum((2, 3)), torch.ones(C, dtype=torch.bool))
    return neck, head, maps


def _samples():
    return [DataSample().set_gt_score(t) for t in TARGETS]


@pytest.mark.parametrize('top_k,epoch,batch_index,alpha,beta',
                         [(1, 0, 3, 0.3, 0.7), (1, 5, 2, 0.3, 0.7),
                          (2, 5, 0, 0.3, 0.7), (1, 9, 1, 1.2, -0.1),
                          (3, 12, 4, 0.3, 0.7)])
def test_one_step_equals_the_published(top_k, epoch, batch_index, alpha, beta):
    iters = 10
    neck, head, maps = _models(top_k, alpha, beta)
    ref_neck, ref_head, _ = _models(top_k, alpha, beta)
    fmap = torch.randn(
        B, DB, SIDE, SIDE, generator=torch.Generator().manual_seed(2)) * 2
    ours_in = fmap.clone().requires_grad_()
    ref_in = fmap.clone().requires_grad_()
    neck.train(), ref_neck.train()  # the reduction's BatchNorm in both

    head.set_progress(epoch, batch_index, iters)
    torch.manual_seed(7)
    feats = neck([ours_in])
    ours = head.loss(feats, _samples())
    torch.manual_seed(7)
    ref_logits, ref_losses, ref_maps = ref_step(ref_neck, ref_head, ref_in,
                                                TARGETS, maps, top_k, epoch,
                                                batch_index, iters)

    assert torch.equal(feats[0], ref_peak_quadrant(ref_maps))
    torch.testing.assert_close(head.classify(feats[-1]), ref_logits)
    for name, value in ref_losses.items():
        torch.testing.assert_close(ours[name], value, msg=f'{name} differs')
    if epoch >= 5:
        assert ours['loss_plrb'] > 0 and ours['loss_ilrb'] > 0

    sum(v for k, v in ours.items() if k.startswith('loss')).backward()
    sum(ref_losses.values()).backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
    for module, ref_module in ((neck, ref_neck), (head, ref_head)):
        for (name, p), q in zip(module.named_parameters(),
                                ref_module.parameters()):
            if q.grad is None:
                assert p.grad is None or not p.grad.any(), name
            else:
                torch.testing.assert_close(p.grad, q.grad, msg=name)
    if epoch >= 5:
        # Clamped in place first (1.2 -> 1, -0.1 -> 0), with a gradient.
        assert 0 <= head.alpha <= 1 and 0 <= head.beta <= 1
        assert head.alpha.grad != 0 and head.beta.grad != 0


def test_peak_quadrants_by_hand():
    # 5 x 5 maps: rows and columns 0-1 are the top / left halves, 2-4 the
    # bottom / right ones (the middle line goes with the later half).
    sums = torch.zeros(1, 5, 5, 4)
    sums[0, 1, 1, 0] = 1  # top left
    sums[0, 0, 2, 1] = 1  # top, middle column: right
    sums[0, 2, 0, 2] = 1  # middle row: bottom, left
    sums[0, 4, 3, 3] = 1  # bottom right
    assert peak_quadrants(sums).tolist() == [[0, 1, 2, 3]]
    # A tie: the first row and the first column holding the maximum.
    tie = torch.zeros(1, 4, 6, 1)
    tie[0, 3, 0, 0] = tie[0, 0, 5, 0] = 2
    assert peak_quadrants(tie).tolist() == [[0]]
    # Non-square maps halve each side on its own: (1, 4) of 3 x 8 is top
    # (1 < 1? no: 1 >= 3 // 2 = 1, bottom) right.
    wide = torch.zeros(1, 3, 8, 1)
    wide[0, 1, 4, 0] = 1
    assert peak_quadrants(wide).tolist() == [[3]]

    quadrants = torch.tensor([[0, 3], [2, 1]])
    shifted = other_quadrants(quadrants, torch.tensor([[1, 2], [3, 1]]))
    assert shifted.tolist() == [[3, 1], [3, 0]]
    prototypes = torch.arange(2 * 4 * 1.).view(2, 4, 1)
    assert quadrant_prototype_features(prototypes,
                                       shifted)[..., 0].tolist() == [[3., 5.],
                                                                     [3., 4.]]


def test_every_other_quadrant_is_drawn_and_never_the_peak():
    torch.manual_seed(0)
    quadrants = torch.randint(0, 4, (2000, ))
    drawn = other_quadrants(quadrants, torch.randint(1, 4, (2000, )))
    assert not (drawn == quadrants).any()
    for q in range(4):
        counts = torch.bincount(drawn[quadrants == q], minlength=4)
        assert counts[q] == 0 and (counts.sum() - counts).min() > 0


def test_neck_needs_the_quadrants_for_dsrb():
    _, head, _ = _models(1)
    head.set_progress(5, 0, 10)
    with pytest.raises(InvalidInputError, match='with_peak_quadrants=True'):
        head.loss((torch.randn(B, C, D), ), _samples())
    with pytest.raises(InvalidInputError, match='num_prototypes is 10'):
        MODELS.build(dict(type='DSRBHead', num_classes=C, num_prototypes=10))


def test_inference_output_is_the_category_features_logits():
    neck, head, _ = _models(1)
    neck.eval()
    fmap = torch.randn(2, DB, SIDE, SIDE)
    feats = neck([fmap])
    plain = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=DB,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I).eval()
    plain.load_state_dict(neck.state_dict())
    torch.testing.assert_close(head(feats), head(plain([fmap])))
    assert isinstance(neck.reduce, nn.Sequential)


def test_batch_of_one():
    """One image blends its own row with the prototype of its drawn
    quadrant."""
    neck, head, maps = _models(1)
    head.set_progress(5, 0, 10)
    fmap = torch.randn(1, DB, SIDE, SIDE)
    neck.eval()  # BatchNorm cannot take batch statistics of one image
    torch.manual_seed(3)
    feats = neck([fmap])
    losses = head.loss(feats, _samples()[:1])
    torch.manual_seed(3)
    # The reference on the one image: the same draws, the same prototype.
    quadrant = feats[0]
    shifted = other_quadrants(quadrant, torch.randint(1, 4, quadrant.shape))
    drawn = torch.rand(1, C) * (TARGETS[:1] == 0)
    cls = int(drawn.argmax())
    blended = feats[1].clone()
    blended[
        0, cls] = 0.7 * blended[0, cls] + 0.3 * maps[cls, shifted[0, cls]].sum(
            (0, 1))
    target = TARGETS[:1].clone()
    target[0, cls] = 1 - 0.7
    torch.testing.assert_close(losses['loss_plrb'],
                               ref_bce(head.classify(blended), target))
    # Its own partner: the instance copy is the image itself.
    torch.testing.assert_close(losses['loss_ilrb'], losses['loss_cls'])


def test_prototype_gather_keeps_every_axis():
    """D4: one class, three images: (B, 1, D), each image its quadrant."""
    prototypes = torch.arange(4 * 2.).view(1, 4, 2)
    quadrants = torch.tensor([[3], [0], [2]])
    gathered = quadrant_prototype_features(prototypes, quadrants)
    assert gathered.shape == (3, 1, 2)
    torch.testing.assert_close(gathered[:, 0], prototypes[0, [3, 0, 2]])
    # A 1 x 1 map: its one position is in the lower right half-planes.
    assert peak_quadrants(torch.ones(2, 1, 1, 1)).tolist() == [[3], [3]]
