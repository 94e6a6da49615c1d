"""QuadrantPrototypeHook: DSRB's per-quadrant prototypes equal to the
published ``computePrototype_featuremap`` as repaired (D6: the zero
placeholder map is not averaged in; D7: a class without known positives
gets no prototypes instead of stopping the run), and capped as documented.
"""
import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.engine.hooks import PrototypeHook, QuadrantPrototypeHook
from tests.tiny_sarb import build_tiny_sarb
from .test_prototype_hook import fake_runner, recomputed_epochs

C = 4


def tiny_dsrb(**options):
    return build_tiny_sarb(C, head_type='DSRBHead', **options)


def _batch(indices, targets, generator, size=160):
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_score(
            torch.tensor(t).float()) for i, t in zip(indices, targets)
    ]
    images = [
        torch.randint(
            0, 255, (3, size, size), generator=generator, dtype=torch.uint8)
        for _ in indices
    ]
    return dict(inputs=images, data_samples=samples)


def ref_compute_prototype_featuremap(model, batches):
    """model/DSRB.py computePrototype_featuremap (eval mode, no grad), on
    the (B, H, W, C, D) maps, with D6 and D7."""
    model.eval()
    features = None
    with torch.no_grad():
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            x = model.backbone(data['inputs'])
            fmap, attention, (h, w) = model.neck._decouple(x)
            maps = (attention.unsqueeze(-1) * fmap.unsqueeze(2)).reshape(
                fmap.shape[0], h, w, C, -1)
            target = torch.stack([s.gt_score for s in data['data_samples']])
            if features is None:
                features = [[
                    torch.zeros(1, h, w, maps.size(-1)) for _ in range(4)
                ] for _ in range(C)]
            half = h // 2
            for cls in range(C):
                for b in range(target.size(0)):
                    if target[b, cls] != 1:
                        continue
                    sums = torch.sum(maps[b, :, :, cls], dim=-1)
                    index0 = torch.argmax(torch.max(sums, dim=1)[0])
                    index1 = torch.argmax(torch.max(sums, dim=0)[0])
                    index = 2 * (index0 >= half) + (index1 >= half)
                    if features[cls][index].size(0) <= 100:
                        features[cls][index] = torch.cat(
                            (features[cls][index],
                             maps[b, :, :, cls].clone().unsqueeze(0)), 0)
    model.train()
    prototypes, mask = torch.zeros(C, 4, h, w, maps.size(-1)), []
    for cls in range(C):
        kept = [features[cls][i][1:] for i in range(4)]
        mask.append(sum(len(k) for k in kept) > 0)
        if not mask[-1]:  # D7
            continue
        average = torch.cat(kept, dim=0).mean(0)
        for q in range(4):
            # D6: the mean of the kept maps, placeholder left out.
            prototypes[cls, q] = kept[q].mean(0) if len(kept[q]) else average
    return prototypes, torch.tensor(mask), features


def _data(generator):
    # Class 3 is never a known positive; image 0 comes twice, as a padded
    # distributed sampler would repeat it.
    targets = [[1, 0, -1, 0], [1, 1, 0, -1], [0, 1, 1, 0], [1, -1, 0, 0],
               [1, 1, -1, 0], [1, 0, 1, -1], [1, 0, -1, 0]]
    return [
        _batch([0, 1, 2, 3], targets[:4], generator),
        _batch([4, 5, 0], targets[4:], generator)
    ]


def test_quadrant_prototypes_equal_the_published_pass():
    torch.manual_seed(0)
    model = tiny_dsrb()
    batches = _data(torch.Generator().manual_seed(0))
    expected, mask, kept = ref_compute_prototype_featuremap(
        model, batches[:1] + [_without_repeat(batches[1])])
    # More than one quadrant in use, and an empty one (the class mean).
    used = [[len(kept[c][q]) - 1 for q in range(4)] for c in range(3)]
    assert sum(n > 0 for row in used for n in row) > 3
    assert any(n == 0 for row in used for n in row)

    runner = fake_runner(model, epoch=5, loader=batches)
    QuadrantPrototypeHook().update_prototypes(runner, 5)
    assert model.training
    assert model.head.prototype_mask.tolist() == mask.tolist() == [
        True, True, True, False
    ]
    torch.testing.assert_close(model.head.prototypes, expected.sum((2, 3)))
    assert model.head.prototypes[3].abs().sum() == 0


def _without_repeat(batch):
    return dict(
        inputs=batch['inputs'][:2], data_samples=batch['data_samples'][:2])


def test_cap_keeps_a_sample_per_quadrant():
    torch.manual_seed(0)
    model = tiny_dsrb()
    batches = _data(torch.Generator().manual_seed(0))
    runner = fake_runner(model, epoch=5, loader=batches)
    hook = QuadrantPrototypeHook(max_per_quadrant=1)
    sample = hook.collect_quadrants(model, batches, model.head, 5)
    hook.update_prototypes(runner, 5)
    # Each bucket keeps one known positive, and its prototype is that
    # image's category feature; empty quadrants take the class mean.
    model.eval()
    with torch.no_grad():
        features = {}
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            out = model.extract_feat(data['inputs'])[-1]
            for b, s in enumerate(data['data_samples']):
                features.setdefault(s.sample_idx, out[b])
    for cls in range(3):
        counts = sample.counts[cls * 4:cls * 4 + 4]
        assert counts.max() == 1
        kept = []
        for q in range(4):
            if counts[q]:
                idx = int(sample.sample_idx[cls * 4 + q, 0])
                kept.append(features[idx][cls])
                torch.testing.assert_close(model.head.prototypes[cls, q],
                                           features[idx][cls])
        average = torch.stack(kept).mean(0)
        for q in range(4):
            if not counts[q]:
                torch.testing.assert_close(model.head.prototypes[cls, q],
                                           average)


def test_schedule_and_wrong_hook_for_the_head():
    assert recomputed_epochs(
        tiny_dsrb(), range(20),
        hook_type=QuadrantPrototypeHook) == [5, 10, 15]
    with pytest.raises(TypeError, match='QuadrantPrototypeHook'):
        PrototypeHook().before_train_epoch(fake_runner(tiny_dsrb(), epoch=5))
    with pytest.raises(
            TypeError,
            match="SARBHead's prototypes are made by PrototypeHook"):
        QuadrantPrototypeHook().before_train_epoch(
            fake_runner(build_tiny_sarb(C), epoch=5))


def test_checkpoint_round_trip_keeps_quadrant_prototypes(tmp_path):
    model = tiny_dsrb()
    model.head.set_prototypes(
        torch.randn_like(model.head.prototypes),
        torch.tensor([True, False, True, True]))
    path = str(tmp_path / 'dsrb.pth')
    save_checkpoint({'state_dict': model.state_dict()}, path)
    restored = tiny_dsrb()
    load_checkpoint(restored, path, map_location='cpu', strict=True)
    torch.testing.assert_close(restored.head.prototypes, model.head.prototypes)
    assert restored.head.prototypes.shape == (C, 4, 8)
