"""SSTHead: one training step (logits, every loss term, gradients) equal to
the published SST model and training loop on the same weights and batch.

The reference below transcribes HCP-MLR-PL's model/SST.py (graph part,
classifier, pair branch, ``updateFeature``), model/GraphNeuralNetwork.py and
the loss lines of SST.py's ``Train`` (loss/SST.py's functions come from
test_pseudo_labels.py), with the ``.cuda()`` calls removed.
"""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.models.heads import sst_margin
from sarb_mm.models.losses import category_contrastive_loss
from .test_pseudo_labels import (ref_concat_index, ref_inter_pseudo_label,
                                 ref_intra_asymmetric_loss,
                                 ref_intra_pseudo_label, ref_update_feature)

B, C, D, I, DOUT, BANK = 6, 5, 8, 4, 7, 3


def ref_ggnn(head, nodes, in_matrix, out_matrix, steps=3):
    g = head.graph
    batch, num = nodes.shape[0], in_matrix.shape[0]
    in_m = in_matrix.repeat(batch, 1).view(batch, num, -1)
    out_m = out_matrix.repeat(batch, 1).view(batch, num, -1)
    for _ in range(steps):
        a_c = torch.cat((torch.bmm(in_m, nodes), torch.bmm(out_m, nodes)), 2)
        a_c = a_c.contiguous().view(batch * num, -1)
        flat = nodes.reshape(batch * num, -1)
        z_c = torch.sigmoid(g.update_msg(a_c) + g.update_node(flat))
        r_c = torch.sigmoid(g.reset_msg(a_c) + g.reset_node(flat))
        h_c = torch.tanh(g.candidate_msg(a_c) + g.candidate_node(r_c * flat))
        flat = (1 - z_c) * flat + z_c * h_c
        nodes = flat.view(batch, num, -1)
    return nodes


def ref_forward(head, semantic):
    """model/SST.py forward after the semantic decoupling."""
    batch = semantic.size(0)
    feature = ref_ggnn(head, semantic, head.cooccurrence, head.cooccurrence.T)
    output = torch.tanh(
        head.fc(
            torch.cat((feature.view(batch * C, -1), semantic.view(-1, D)), 1)))
    output = output.contiguous().view(batch, C, DOUT)
    result = torch.sum(output * head.class_weight, 2) + head.class_bias
    index = ref_concat_index(C)
    intra = head.pair_reduce(semantic)
    intra = torch.cat((intra[:, index[0], :], intra[:, index[1], :]), 2)
    output = torch.relu(head.pair_fc1(intra))
    output = head.pair_fc2(output)
    intra_cooccurrence = torch.sum(output * head.pair_weight,
                                   2) + head.pair_bias
    return result, intra_cooccurrence


def ref_bce(input, target, margin=0.0):
    """loss/SST.py BCELoss(reduce=True, size_average=True)."""
    positive_mask = (target > margin).float()
    negative_mask = (target < -margin).float()
    bce = nn.BCEWithLogitsLoss(reduction='none')
    loss = positive_mask * bce(input, target) + negative_mask * bce(
        -input, -target)
    if torch.sum(positive_mask + negative_mask) != 0:
        return torch.mean(loss[(positive_mask > 0) | (negative_mask > 0)])
    return torch.mean(loss)


def ref_step_losses(head, semantic, target, pos_feature, epoch, batch_index,
                    iters, intra_margin, inter_margin, generator):
    """The loss lines of SST.py Train with the shipped script's weights."""
    output, intra_cooccurrence = ref_forward(head, semantic)
    ref_update_feature(pos_feature, semantic, target, BANK)
    generate = epoch >= 5
    intra_target = ref_intra_pseudo_label(intra_cooccurrence, target,
                                          intra_margin) if generate else target
    inter_target = ref_inter_pseudo_label(semantic, target, pos_feature,
                                          inter_margin) if generate else target
    ramp = 1.0 if epoch >= 1 else batch_index / float(iters)
    losses = dict(
        loss_cls=ref_bce(output, target),
        loss_intra=(1.0 if generate else 0.0) *
        ref_bce(output, intra_target, intra_margin),
        loss_pair=10.0 *
        ref_intra_asymmetric_loss(intra_cooccurrence, target) * ramp,
        loss_inter=(1.0 if generate else 0.0) *
        ref_bce(output, inter_target, inter_margin),
        # ContrastiveLoss of loss/SST.py is SARB's category-wise term,
        # checked against its own transcription in test_losses.py.
        loss_con=0.05 *
        category_contrastive_loss(semantic, target, generator) * ramp)
    return output, losses


def _head():
    head = MODELS.build(
        dict(
            type='SSTHead',
            num_classes=C,
            in_channels=D,
            out_channels=DOUT,
            pair_channels=I,
            bank_size=BANK))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        cooc = torch.rand(C, C, generator=gen)
        cooc.fill_diagonal_(0)
        head.cooccurrence.copy_(cooc)
    return head


def _batch(seed):
    gen = torch.Generator().manual_seed(seed)
    semantic = torch.randn(B, C, D, generator=gen)
    target = torch.randint(0, 2, (B, C), generator=gen) * 2. - 1
    target[torch.rand(B, C, generator=gen) > 0.5] = 0
    target[:, 0] = 1  # a positive in every image: pseudo labels appear
    samples = [DataSample(gt_score=t) for t in target]
    return semantic, target, samples


def test_margin_schedule_as_published():
    # SST.py: after every epoch >= generateLabelEpoch, max(0.75, m - 0.025)
    margin, published = 0.95, []
    for epoch in range(20):
        published.append(margin)
        if epoch >= 5:
            margin = max(0.75, margin - 0.025)
    assert [sst_margin(e, 5, 0.95, 0.025, 0.75)
            for e in range(20)] == published
    assert published[5] == 0.95 and published[6] == pytest.approx(0.925)
    assert published[13] == pytest.approx(0.75) and published[-1] == 0.75


@pytest.mark.parametrize('epoch,batch_index', [(0, 3), (2, 0), (5, 1), (6, 2),
                                               (12, 0)])
def test_one_step_equals_the_published(epoch, batch_index):
    iters = 10
    ours, ref = _head(), _head()
    ref.load_state_dict(ours.state_dict())
    pos_feature = torch.zeros(C, BANK, D)
    margin = sst_margin(epoch, 5, 0.95, 0.025, 0.75)
    # Two earlier batches fill the banks the same way.
    for seed in (11, 12):
        semantic, target, _ = _batch(seed)
        ref_update_feature(pos_feature, semantic, target, BANK)
        ours.set_progress(epoch, batch_index, iters)
        with torch.no_grad():
            ours.loss([semantic], _batch(seed)[2])
    torch.testing.assert_close(ours.feature_bank, pos_feature)

    semantic, target, samples = _batch(1)
    ours_in = semantic.clone().requires_grad_()
    ref_in = semantic.clone().requires_grad_()
    ours.set_progress(epoch, batch_index, iters)
    torch.manual_seed(7)
    ours_losses = ours.loss([ours_in], samples)
    torch.manual_seed(7)
    ref_logits, ref_losses = ref_step_losses(ref, ref_in, target, pos_feature,
                                             epoch, batch_index, iters, margin,
                                             margin, None)
    torch.testing.assert_close(ours.classify(semantic), ref_logits)
    assert set(ours_losses) == set(ref_losses)
    for name, value in ref_losses.items():
        torch.testing.assert_close(
            ours_losses[name], value, msg=f'{name} differs')
    torch.testing.assert_close(ours.feature_bank, pos_feature)
    if epoch >= 6:
        assert float(ref_losses['loss_intra'].detach()) > 0
        assert float(ref_losses['loss_inter'].detach()) > 0

    sum(ours_losses.values()).backward()
    sum(ref_losses.values()).backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        if q.grad is None:
            assert p.grad is None or not p.grad.any(), name
        else:
            torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_predict_uses_the_main_branch_only():
    head = _head()
    semantic, _, samples = _batch(3)
    predicted = head.predict([semantic], samples)
    torch.testing.assert_close(
        torch.stack([s.pred_score for s in predicted]).float(),
        torch.sigmoid(ref_forward(head, semantic)[0]).detach())


def test_without_a_progress_hook_the_error_names_it():
    head = _head()
    _, _, samples = _batch(0)
    with pytest.raises(RuntimeError, match='LabelGraphHook'):
        head.loss([torch.randn(B, C, D)], samples)


def _bank_worker(rank, port, out_dir):
    from tests.gloo import gloo_group
    with gloo_group(rank, port):
        head = _head()
        head.set_progress(0, 1, 10)
        semantic, _, samples = _batch(21)
        half = slice(0, 3) if rank == 0 else slice(3, 6)
        with torch.no_grad():
            head.loss([semantic[half]], samples[half])
        torch.save(head.feature_bank, f'{out_dir}/bank{rank}.pt')


@pytest.mark.slow
def test_two_ranks_fill_the_bank_as_one_process_with_both_halves(tmp_path):
    import torch.multiprocessing as mp

    from tests.gloo import free_port
    head = _head()
    head.set_progress(0, 1, 10)
    semantic, _, samples = _batch(21)
    with torch.no_grad():
        head.loss([semantic], samples)
    mp.spawn(_bank_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        torch.testing.assert_close(
            torch.load(tmp_path / f'bank{rank}.pt'), head.feature_bank)
    assert head.feature_bank.abs().sum() > 0
