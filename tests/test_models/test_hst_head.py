"""HSTHead: one training step (logits, every loss term, gradients of every
parameter, the learnable margins included) equal to the published HST model
and training loop on the same weights, batch and prototypes.

The reference transcribes the loss lines of HCP-MLR-PL's HST.py ``Train``
and loss/HST.py's ``getIntraPseudoLabel``, ``getInterPseudoLabel`` and
``PrototypeContrastiveLoss`` (the ``.cuda()`` calls removed). model/HST.py's
forward is model/SST.py's (test_sst_head.py's ``ref_forward``); loss/HST.py's
``BCELoss`` and ``intraAsymmetricLoss`` are loss/SST.py's, and its
``InstanceContrastiveLoss`` is loss/SARB.py's ``ContrastiveLoss`` word for
word: the reference uses our ``category_contrastive_loss`` for it, which
test_losses.py checks against a plain loop.
"""
import pytest
import torch
from mmpretrain.registry import MODELS

import sarb_mm  # noqa: F401
from sarb_mm.models.losses import category_contrastive_loss
from sarb_mm.models.utils.soft_pseudo_labels import (
    merge_pseudo_labels, prototype_contrastive_loss, prototype_similarity,
    soft_cross_image_scores, soft_intra_image_scores)
from .test_pseudo_labels import ref_intra_asymmetric_loss
from .test_sst_head import DOUT, B, C, D, I, _batch, ref_bce, ref_forward

K = 3


def ref_intra_pseudo_label(intra_cooccurrence, target, margin):
    """loss/HST.py getIntraPseudoLabel."""
    batch, num = target.size(0), target.size(1)
    prob = torch.sigmoid(intra_cooccurrence)
    start, end, pseudo = 0, 0, torch.zeros((batch, num, num))
    for i in range(num):
        pseudo[:, i, i] = 1
        start = end
        end += num - i - 1
        pseudo[:, i, i + 1:] = prob[:, start:end]
        pseudo[:, i + 1:, i] = prob[:, start:end]
    target_ = target.detach().clone()
    target_[target_ != 1] = 0
    pseudo = torch.sum(
        pseudo * target_.view(batch, 1, num).repeat(1, num, 1), dim=2)
    pseudo = pseudo / torch.clamp(
        torch.sum(target_, dim=1), min=1).view(batch, 1).repeat(1, num)
    return torch.clamp(pseudo - margin, min=0, max=1)


def ref_inter_pseudo_label(feature, target, prototype, margin):
    """loss/HST.py getInterPseudoLabel."""
    cos = torch.nn.CosineSimilarity(dim=3, eps=1e-9)
    prototype = prototype.unsqueeze(0).repeat(feature.size(0), 1, 1, 1)
    distance = cos(
        feature.unsqueeze(2).repeat(1, 1, prototype.size(2), 1), prototype)
    return torch.clamp(torch.mean(distance, dim=2) - margin, min=0, max=1)


def ref_prototype_contrastive(input, target, prototype):
    """loss/HST.py PrototypeContrastiveLoss(reduce=True, size_average=True)."""
    cos = torch.nn.CosineSimilarity(dim=3, eps=1e-9)
    batch, num = input.size(0), prototype.size(1)
    input = input.unsqueeze(2).repeat(1, 1, num, 1)
    prototype = prototype.unsqueeze(0).repeat(batch, 1, 1, 1)
    distance = torch.mean(cos(input, prototype), 2)
    return torch.mean(distance * target.float() + 1)


def ref_step_losses(head, feature, target, epoch, batch_index, iters):
    """The loss lines of HST.py Train with the shipped script's weights."""
    output, intra_cooccurrence = ref_forward(head, feature)
    generate = epoch >= 5
    if generate:
        intra_target = ref_intra_pseudo_label(intra_cooccurrence, target,
                                              head.intra_margin)
        inter_target = ref_inter_pseudo_label(feature, target, head.prototypes,
                                              head.inter_margin)
    else:
        intra_target = inter_target = target
    merged_intra = target + torch.eq(target, 0).float() * torch.where(
        intra_target.detach().clone() > 0, torch.ones_like(target),
        torch.zeros_like(target))
    merged_inter = target + torch.eq(target, 0).float() * torch.where(
        inter_target.detach().clone() > 0, torch.ones_like(target),
        torch.zeros_like(target))
    ramp = 1.0 if epoch >= 1 else batch_index / float(iters)
    loss1 = ref_bce(
        output, target) if not generate else (ref_bce(output, target) +
                                              ref_bce(output, merged_intra) +
                                              ref_bce(output, merged_inter))
    losses = dict(
        loss1=loss1,
        loss_intra=(0.1 if generate else 0.0) * ref_bce(intra_target, target),
        loss_pair=10.0 *
        ref_intra_asymmetric_loss(intra_cooccurrence, target) * ramp,
        loss_inter=(0.1 if generate else 0.0) * ref_bce(inter_target, target),
        loss_con=0.05 * category_contrastive_loss(feature, target) * ramp,
        loss_proto=0.05 *
        ref_prototype_contrastive(feature, target, head.prototypes)
        if generate else 0 * loss1)
    return output, losses


def _head(intra_margin=1.0, inter_margin=1.0):
    head = MODELS.build(
        dict(
            type='HSTHead',
            num_classes=C,
            in_channels=D,
            out_channels=DOUT,
            pair_channels=I,
            num_prototypes=K))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        head.intra_margin.fill_(intra_margin)
        head.inter_margin.fill_(inter_margin)
        cooc = torch.rand(C, C, generator=gen)
        cooc.fill_diagonal_(0)
        head.cooccurrence.copy_(cooc)
        # Prototypes near the batch's features, so that the cross-image
        # scores pass a margin below 1.
        semantic = _batch(1)[0]
        head.set_prototypes(
            semantic[:K].transpose(0, 1) +
            0.3 * torch.randn(C, K, D, generator=gen),
            torch.ones(C, dtype=torch.bool))
    return head


@pytest.mark.parametrize('epoch,batch_index,intra_margin,inter_margin',
                         [(0, 3, 1.0, 1.0), (2, 0, 1.0, 1.0), (5, 1, 1.0, 1.0),
                          (5, 1, 0.6, 0.2), (9, 2, 0.8, 0.5)])
def test_one_step_equals_the_published(epoch, batch_index, intra_margin,
                                       inter_margin):
    iters = 10
    ours = _head(intra_margin, inter_margin)
    ref = _head(intra_margin, inter_margin)
    semantic, target, samples = _batch(1)
    ours_in = semantic.clone().requires_grad_()
    ref_in = semantic.clone().requires_grad_()
    ours.set_progress(epoch, batch_index, iters)
    torch.manual_seed(7)
    ours_losses = ours.loss([ours_in], samples)
    torch.manual_seed(7)
    ref_logits, ref_losses = ref_step_losses(ref, ref_in, target, epoch,
                                             batch_index, iters)
    torch.testing.assert_close(ours.classify(semantic), ref_logits)
    torch.testing.assert_close(
        ours_losses['loss_cls'] + ours_losses['loss_intra_cls'] +
        ours_losses['loss_inter_cls'], ref_losses['loss1'])
    for name, value in ref_losses.items():
        if name == 'loss1':
            continue
        torch.testing.assert_close(
            ours_losses[name], value, msg=f'{name} differs')
    if (intra_margin, inter_margin) != (1.0, 1.0):
        # The transfers select entries and train the margins.
        assert ours_losses['loss_intra_cls'] != ours_losses['loss_cls']
        assert ours_losses['loss_inter_cls'] != ours_losses['loss_cls']

    total = sum(v for k, v in ours_losses.items() if k.startswith('loss'))
    total.backward()
    sum(ref_losses.values()).backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        if q.grad is None:
            assert p.grad is None or not p.grad.any(), name
        else:
            torch.testing.assert_close(p.grad, q.grad, msg=name)
    if (intra_margin, inter_margin) != (1.0, 1.0):
        assert ref.intra_margin.grad != 0 and ref.inter_margin.grad != 0
    if epoch < 5:
        assert set(
            ours.idle_parameters()) == {ours.intra_margin, ours.inter_margin}


def test_scores_by_hand():
    # Two classes: one pair, probability sigmoid(0) = 0.5. Image 0 knows
    # class 0 positive: scores (1, 0.5); image 1 knows nothing: (0, 0).
    logits = torch.zeros(2, 1)
    targets = torch.tensor([[1., 0.], [0., -1.]])
    scores = soft_intra_image_scores(logits, targets, torch.tensor(0.4))
    torch.testing.assert_close(scores, torch.tensor([[0.6, 0.1], [0., 0.]]))
    merged = merge_pseudo_labels(targets, scores)
    torch.testing.assert_close(merged, torch.tensor([[1., 1.], [0., -1.]]))

    # Cosines 1 and 0 to the two prototypes of class 0: mean 0.5.
    features = torch.tensor([[[1., 0.], [0., 1.]]])
    prototypes = torch.tensor([[[2., 0.], [0., 3.]], [[0., 1.], [0., 1.]]])
    torch.testing.assert_close(
        soft_cross_image_scores(
            prototype_similarity(features, prototypes), torch.tensor(0.25)),
        torch.tensor([[0.25, 0.75]]))
    # 1 + t * s over the entries: (1 + 0.5) and (1 - 1) -> 0.75.
    torch.testing.assert_close(
        prototype_contrastive_loss(
            prototype_similarity(features, prototypes),
            torch.tensor([[1., -1.]])), torch.tensor(0.75))


def test_without_prototypes_the_error_names_the_hook():
    head = MODELS.build(
        dict(
            type='HSTHead',
            num_classes=C,
            in_channels=D,
            out_channels=DOUT,
            pair_channels=I))
    head.set_progress(5, 0, 10)
    with pytest.raises(RuntimeError, match='PrototypeHook'):
        head.loss([torch.randn(B, C, D)], _batch(0)[2])
