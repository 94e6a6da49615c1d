from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import load_checkpoint, save_checkpoint
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.engine.hooks import PrototypeHook
from sarb_mm.models.utils import cooccurrence_matrix, kmeans
from tests.tiny_sarb import build_tiny_sarb

C = 4


def tiny_sarb(blend_start_epoch=5, use_plrb=True):
    return build_tiny_sarb(
        C, blend_start_epoch=blend_start_epoch, use_plrb=use_plrb)


def fake_runner(model, epoch=0, loader=(), labels=None, max_epochs=20):
    dataset = SimpleNamespace(partial_labels=labels)
    loader = list(loader)
    optimizer = torch.optim.Adam(model.parameters())
    return SimpleNamespace(
        model=model,
        epoch=epoch,
        max_epochs=max_epochs,
        optim_wrapper=SimpleNamespace(optimizer=optimizer),
        train_dataloader=SimpleNamespace(dataset=dataset, __iter__=None)
        if not loader else _Loader(loader, dataset),
        logger=MMLogger.get_instance('proto-test'))


class _Loader(list):

    def __init__(self, batches, dataset):
        super().__init__(batches)
        self.dataset = dataset


def recomputed_epochs(model,
                      epochs,
                      interval=5,
                      drop_at=None,
                      hook_type=PrototypeHook):
    hook = hook_type(interval=interval)
    seen = []

    def fake_update(runner, epoch):
        seen.append(epoch)
        runner.model.head.set_prototypes(
            torch.ones_like(runner.model.head.prototypes),
            torch.ones(C, dtype=torch.bool))

    hook.update_prototypes = fake_update
    for epoch in epochs:
        if epoch == drop_at:  # e.g. weights loaded from an old checkpoint
            model.head.prototype_mask.zero_()
        hook.before_train_epoch(fake_runner(model, epoch))
    return seen


def test_schedule_of_published_run():
    assert recomputed_epochs(tiny_sarb(), range(20)) == [5, 10, 15]


def test_schedule_other_start_and_interval():
    assert recomputed_epochs(
        tiny_sarb(blend_start_epoch=0), range(7), interval=2) == [0, 2, 4, 6]


def test_missing_prototypes_are_computed_at_once():
    assert recomputed_epochs(
        tiny_sarb(), range(5, 12), drop_at=7) == [5, 7, 10]


def test_no_prototypes_without_plrb():
    assert recomputed_epochs(tiny_sarb(use_plrb=False), range(20)) == []


def test_cooccurrence_set_before_training():
    model = tiny_sarb()
    labels = torch.tensor([[1, 1, 0, -1], [1, -1, 0, 0], [0, 1, 1, -1]])
    PrototypeHook().before_train(fake_runner(model, labels=labels.numpy()))
    torch.testing.assert_close(model.head.cooccurrence,
                               cooccurrence_matrix(labels))


def _batch(indices, targets, generator):
    samples = []
    for idx, target in zip(indices, targets):
        sample = DataSample(metainfo=dict(sample_idx=idx))
        samples.append(sample.set_gt_score(torch.tensor(target).float()))
    images = [
        torch.randint(
            0, 255, (3, 32, 32), generator=generator, dtype=torch.uint8)
        for _ in indices
    ]
    return dict(inputs=images, data_samples=samples)


def test_prototypes_from_known_positives_once_per_image():
    torch.manual_seed(0)
    model = tiny_sarb()
    generator = torch.Generator().manual_seed(0)
    # Class 3 is never a known positive; image 0 comes twice, as a padded
    # distributed sampler would repeat it.
    targets = [[1, 0, -1, 0], [1, 1, 0, -1], [0, 1, 1, 0], [1, -1, 0, 0],
               [1, 0, -1, 0]]
    batches = [
        _batch([0, 1, 2], targets[:3], generator),
        _batch([3, 0], targets[3:], generator)
    ]
    # Reference: features as the hook must see them (eval mode, no grad),
    # one per (image, known positive class), in (image, class) order.
    model.eval()
    by_key = {}
    with torch.no_grad():
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            out = model.extract_feat(data['inputs'])[-1]
            for b, sample in enumerate(data['data_samples']):
                for c in torch.nonzero(sample.gt_score > 0).flatten():
                    by_key.setdefault((sample.sample_idx, int(c)), out[b, c])
    model.train()
    keys = sorted(by_key)
    assert len(keys) == 6
    generator = torch.Generator().manual_seed(0 + 5)
    expected = torch.zeros(C, 3, 8)
    for cls in range(C):
        members = [by_key[k] for k in keys if k[1] == cls]
        if members:
            expected[cls] = kmeans(
                torch.stack(members), 3, generator, n_init=10)
    expected_mask = torch.tensor([True, True, True, False])

    runner = fake_runner(model, epoch=5, loader=batches)
    PrototypeHook(seed=0).update_prototypes(runner, 5)
    assert model.training
    assert model.head.prototype_mask.tolist() == [True, True, True, False]
    torch.testing.assert_close(model.head.prototype_mask, expected_mask)
    torch.testing.assert_close(model.head.prototypes, expected)
    assert model.head.prototypes[3].abs().sum() == 0


def test_checkpoint_round_trip_keeps_sarb_state(tmp_path):
    model = tiny_sarb()
    head = model.head
    head.cooccurrence.copy_(torch.rand(C, C))
    head.set_prototypes(
        torch.randn_like(head.prototypes),
        torch.tensor([True, False, True, True]))
    with torch.no_grad():
        head.alpha.fill_(0.3)
        head.beta.fill_(0.8)
    path = str(tmp_path / 'sarb.pth')
    save_checkpoint({'state_dict': model.state_dict()}, path)

    restored = tiny_sarb()
    load_checkpoint(restored, path, map_location='cpu', strict=True)
    for name in ('cooccurrence', 'prototypes', 'prototype_mask', 'alpha',
                 'beta'):
        torch.testing.assert_close(
            getattr(restored.head, name), getattr(head, name))
    assert restored.head.has_prototypes


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'PrototypeHook interval must be an integer >= 1'),
    (dict(interval=1.5), 'PrototypeHook interval'),
    (dict(seed=-1), 'PrototypeHook seed must be an integer >= 0'),
    (dict(seed=None), 'PrototypeHook seed'),
    (dict(seed=2**63), 'PrototypeHook seed must be below'),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    from sarb_mm.utils.errors import InvalidInputError
    with pytest.raises(InvalidInputError, match=match):
        PrototypeHook(**kwargs)
