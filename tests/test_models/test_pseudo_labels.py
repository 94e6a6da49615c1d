"""SST's pseudo labels, feature bank and pair loss against a copy of the
published arithmetic (HCP-MLR-PL loss/SST.py and model/SST.py, with the
``.cuda()`` calls removed)."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from sarb_mm.models.utils.pseudo_labels import (above_margin, class_pairs,
                                                cross_image_pseudo_labels,
                                                intra_image_pseudo_labels,
                                                pair_asymmetric_loss,
                                                pair_targets,
                                                update_feature_bank)

# ---------------------------------------------------------------------------
# Reference: the published functions, transcribed line by line.
# ---------------------------------------------------------------------------


def ref_intra_pseudo_label(intra, target, margin):
    batch, num = target.size(0), target.size(1)
    prob = torch.sigmoid(intra)
    start, end, pseudo = 0, 0, torch.zeros((batch, num, num))
    for i in range(num):
        pseudo[:, i, i] = 1
        start = end
        end += num - i - 1
        pseudo[:, i, i + 1:] = prob[:, start:end]
        pseudo[:, i + 1:, i] = prob[:, start:end]
    known = target.detach().clone()
    known[known != 1] = 0
    pseudo = torch.sum(
        pseudo * known.view(batch, 1, num).repeat(1, num, 1), dim=2)
    pseudo = pseudo / torch.clamp(
        torch.sum(known, dim=1), min=1).view(batch, 1).repeat(1, num)
    pseudo = torch.clamp(pseudo, min=-1, max=1)
    pseudo[pseudo >= margin] = 1
    pseudo[pseudo <= margin] = 0
    pseudo[target != 0] = 0
    return target.detach().clone() + pseudo


def ref_inter_pseudo_label(feature, target, pos_feature, margin):
    _, _, dim = feature.size()
    examples, pseudo = pos_feature.size(1), target.detach().clone()
    cos = nn.CosineSimilarity(dim=2, eps=1e-9)
    feature1 = feature[target == 0].view(-1, 1, dim).repeat(1, examples, 1)
    feature2 = pos_feature[np.where(target == 0)[1]]
    distance = torch.mean(cos(feature1, feature2), dim=1)
    distance[distance >= margin] = 1
    distance[distance <= margin] = 0
    pseudo[target == 0] = distance
    return pseudo


def ref_update_feature(pos_feature, feature, target, examples):
    feature = feature.detach().clone()
    for c in range(pos_feature.shape[0]):
        positives = feature[:, c][target[:, c] == 1]
        pos_feature[c] = torch.cat((positives, pos_feature[c]),
                                   dim=0)[:examples]


def ref_concat_index(num):
    res = [[], []]
    for index in range(num - 1):
        res[0] += [index for i in range(num - index - 1)]
        res[1] += [i for i in range(index + 1, num)]
    return res


def ref_intra_asymmetric_loss(intra,
                              target,
                              gamma_neg=2,
                              gamma_pos=1,
                              clip=0.05,
                              eps=1e-8):
    index = ref_concat_index(target.shape[1])
    target = target.cpu().data.numpy()
    target1, target2 = target[:, index[0]], target[:, index[1]]
    target1, target2 = (target1 > 0).astype(float), (target2 > 0).astype(float)
    target = torch.Tensor(target1 * target2)
    sig = torch.sigmoid(intra)
    sig_pos, sig_neg = sig, 1 - sig
    if clip is not None and clip > 0:
        sig_neg = (sig_neg + clip).clamp(max=1)
    loss_pos = target * torch.log(sig_pos.clamp(min=eps))
    loss_neg = (1 - target) * torch.log(sig_neg.clamp(min=eps))
    loss = -1 * (loss_pos + loss_neg)
    if gamma_neg > 0 or gamma_pos > 0:
        prob = sig_pos * target + sig_neg * (1 - target)
        gamma = gamma_pos * target + gamma_neg * (1 - target)
        loss *= torch.pow(1 - prob, gamma)
    return torch.mean(loss)


# ---------------------------------------------------------------------------


def _batch(seed, batch=6, classes=7, known=0.6):
    gen = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 2, (batch, classes), generator=gen) * 2. - 1
    targets[torch.rand(batch, classes, generator=gen) > known] = 0
    targets[0] = 0  # an image with nothing known
    targets[1] = -1  # and one without a known positive
    return gen, targets


def test_pairs_follow_the_published_order():
    first, second = class_pairs(6)
    assert [first.tolist(), second.tolist()] == ref_concat_index(6)
    targets = torch.tensor([[1., 1., 0., -1.], [1., 0., 1., 1.]])
    # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert pair_targets(targets).tolist() == [[1, 0, 0, 0, 0, 0],
                                              [0, 1, 1, 0, 0, 1]]


def test_a_margin_of_one_selects_nothing():
    scores = torch.tensor([0.2, 0.75, 0.9, 1.0])
    assert above_margin(scores, 1.0).tolist() == [0, 0, 0, 0]
    assert above_margin(scores, 0.975).tolist() == [0, 0, 0, 1]
    assert above_margin(scores, 0.75).tolist() == [0, 1, 1, 1]


@pytest.mark.parametrize('margin', [1.0, 0.975, 0.8, 0.75, 0.5, 0.3])
@pytest.mark.parametrize('seed', range(4))
def test_intra_image_pseudo_labels_equal_the_published(seed, margin):
    gen, targets = _batch(seed)
    pairs = targets.shape[1] * (targets.shape[1] - 1) // 2
    logits = torch.randn(targets.shape[0], pairs, generator=gen) * 3
    ours = intra_image_pseudo_labels(logits, targets, margin)
    torch.testing.assert_close(
        ours, ref_intra_pseudo_label(logits, targets, margin), rtol=0, atol=0)
    if margin <= 0.5:
        assert (ours[targets == 0] == 1).any()  # the rule is exercised


@pytest.mark.parametrize('margin', [1.0, 0.9, 0.5, 0.0])
@pytest.mark.parametrize('seed', range(4))
def test_cross_image_pseudo_labels_equal_the_published(seed, margin):
    gen, targets = _batch(seed)
    features = torch.randn(6, 7, 5, generator=gen)
    # A bank of features close to a shared direction per class, with empty
    # (zero) slots as at the start of training.
    direction = torch.randn(7, 1, 5, generator=gen)
    bank = direction + 0.3 * torch.randn(7, 4, 5, generator=gen)
    bank[:, 3:] = 0
    bank[2] = 0
    features[2] = direction[:, 0] + 0.1 * torch.randn(7, 5, generator=gen)
    ours = cross_image_pseudo_labels(features, targets, bank, margin)
    torch.testing.assert_close(
        ours,
        ref_inter_pseudo_label(features, targets, bank, margin),
        rtol=0,
        atol=0)
    if margin == 0.5:
        assert (ours[targets == 0] == 1).any()


def test_feature_bank_equals_the_published_updates():
    bank, ref_bank = torch.zeros(5, 4, 3), torch.zeros(5, 4, 3)
    for seed in range(6):
        gen, targets = _batch(seed, batch=3, classes=5)
        features = torch.randn(3, 5, 3, generator=gen)
        update_feature_bank(bank, features, targets)
        ref_update_feature(ref_bank, features, targets, 4)
        torch.testing.assert_close(bank, ref_bank, rtol=0, atol=0)
    assert (bank.abs().sum(-1) > 0).any()


@pytest.mark.parametrize('seed', range(4))
def test_pair_asymmetric_loss_equals_the_published(seed):
    gen, targets = _batch(seed)
    logits = torch.randn(6, 21, generator=gen, requires_grad=True) * 4
    ours = pair_asymmetric_loss(logits, targets)
    ref = ref_intra_asymmetric_loss(logits, targets)
    torch.testing.assert_close(ours, ref)
    grad, = torch.autograd.grad(ours, logits)
    ref_grad, = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(grad, ref_grad)


def test_pair_asymmetric_loss_by_hand():
    # One image, classes 0 and 1 known positive: pair (0,1) positive.
    targets = torch.tensor([[1., 1., 0.]])
    logits = torch.tensor([[0., 2., -1.]])
    p = torch.sigmoid(logits)[0]
    positive = -torch.log(p[0]) * (1 - p[0])
    negatives = [
        -torch.log(min(1 - q + 0.05, torch.tensor(1.))) *
        (1 - min(1 - q + 0.05, torch.tensor(1.)))**2 for q in p[1:]
    ]
    expected = (positive + sum(negatives)) / 3
    torch.testing.assert_close(pair_asymmetric_loss(logits, targets), expected)
