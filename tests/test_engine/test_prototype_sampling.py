"""Prototype pass with bounded memory: bottom-k sample per class, the same
for any batch size, worker count or world size."""
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmengine.dataset import pseudo_collate
from mmengine.dist import get_dist_info
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, DistributedSampler

from sarb_mm.engine.hooks import PrototypeHook
from sarb_mm.engine.hooks.prototype_sampling import (BottomKPositives,
                                                     ShardSampler, class_seed,
                                                     pair_keys, pass_indices,
                                                     select_bottom_k)
from sarb_mm.models.utils import kmeans
from sarb_mm.utils.errors import InvalidInputError
from tests.gloo import free_port, gloo_group
from tests.test_engine.test_prototype_hook import _batch, fake_runner
from tests.tiny_sarb import build_tiny_sarb

C, D, K = 5, 8, 3  # classes, feature size, prototypes per class
NUM_IMAGES = 23
CAP = 4


# The published pass, as it was before the cap existed (copied verbatim but
# for the runner plumbing): the uncapped hook must give the same bits.
def _old_collect_positives(model, dataloader):
    was_training = model.training
    model.eval()
    features, keys = [], []
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        category_features = model.extract_feat(data['inputs'])[-1]
        samples = data['data_samples']
        targets = torch.stack([s.gt_score
                               for s in samples]).to(category_features.device)
        sample_idx = torch.tensor([s.sample_idx for s in samples],
                                  device=targets.device)
        image, cls = torch.nonzero(targets > 0, as_tuple=True)
        features.append(category_features[image, cls].float().cpu())
        keys.append(torch.stack([sample_idx[image], cls], dim=1).cpu())
    model.train(was_training)
    return torch.cat(features), torch.cat(keys)


@torch.no_grad()
def _old_prototypes(model, batches, seed, epoch, n_init=10):
    head = model.head
    features, keys = _old_collect_positives(model, batches)
    prototypes = torch.zeros_like(head.prototypes)
    mask = torch.zeros_like(head.prototype_mask, dtype=torch.uint8)
    generator = torch.Generator().manual_seed(seed + epoch)
    for cls in range(head.num_classes):
        members = keys[:, 1] == cls
        rows, images = features[members], keys[members, 0]
        order = torch.argsort(images, stable=True)
        rows, images = rows[order], images[order]
        first = torch.ones_like(images, dtype=torch.bool)
        first[1:] = images[1:] != images[:-1]
        rows = rows[first]
        if len(rows):
            prototypes[cls] = kmeans(
                rows, head.num_prototypes, generator, n_init=n_init)
            mask[cls] = 1
    return prototypes, mask.bool()


def test_uncapped_pass_is_the_published_one_bit_for_bit():
    torch.manual_seed(0)
    model = build_tiny_sarb(4, blend_start_epoch=5)
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(-1, 2, (14, 4), generator=generator)
    labels[:, 3] = 0  # a class never known positive
    indices = list(range(14)) + [0, 1]  # padded as DistributedSampler does
    batches = [
        _batch(indices[i:i + 4], labels[indices[i:i + 4]].tolist(), generator)
        for i in range(0, 16, 4)
    ]
    expected, expected_mask = _old_prototypes(model, batches, 3, 5)
    assert expected_mask.tolist() == [True, True, True, False]
    hook = PrototypeHook(seed=3, max_points_per_class=None)
    hook.update_prototypes(fake_runner(model, epoch=5, loader=batches), 5)
    assert torch.equal(model.head.prototype_mask, expected_mask)
    assert torch.equal(model.head.prototypes, expected)


# A model whose category feature of an image does not depend on the other
# images of its batch (a real backbone's do in the last bits).
class _PerImageModel:
    training = True

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def data_preprocessor(self, data, training):
        return dict(
            inputs=torch.stack(data['inputs']),
            data_samples=data['data_samples'])

    def extract_feat(self, inputs):
        return (inputs.view(len(inputs), C, D) * 2 - 1, )


def _labels(seed=0):
    labels = torch.randint(
        -1, 2, (NUM_IMAGES, C), generator=torch.Generator().manual_seed(seed))
    labels[:, 0] = 1  # more positives than the cap
    labels[:3, 1], labels[3:, 1] = 1, 0  # fewer positives than the cap
    labels[:, 2] = 0  # none
    return labels


class _Dataset(torch.utils.data.Dataset):

    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        feature = torch.rand(
            C * D, generator=torch.Generator().manual_seed(100 + i))
        sample = DataSample(metainfo=dict(sample_idx=i))
        return dict(
            inputs=feature,
            data_samples=sample.set_gt_score(self.labels[i].float()))


def _head():
    return SimpleNamespace(
        num_classes=C,
        num_prototypes=K,
        prototypes=torch.zeros(C, K, D),
        prototype_mask=torch.zeros(C, dtype=torch.bool))


def _capped_pass(loader, epoch=7, **options):
    """Kept sample indices and points per class, prototypes, mask."""
    hook = PrototypeHook(seed=11, max_points_per_class=CAP, **options)
    loader, _ = hook._pass_loader(loader, epoch)
    sample = hook.collect_sample(_PerImageModel(), loader, _head(), epoch)
    # The buffers are bounded by C x k x D whatever the data size.
    assert tuple(sample.features.shape) == (C, CAP, D)
    assert tuple(sample.keys.shape) == tuple(
        sample.sample_idx.shape) == (C, CAP)
    assert int(sample.counts.max()) <= CAP
    merged = [sample.merged_class(c, torch.device('cpu')) for c in range(C)]
    prototypes, mask, stats = hook.cluster_sample(sample, _head(), epoch)
    return dict(
        indices=[m[1] for m in merged],
        points=[m[0] for m in merged],
        prototypes=prototypes,
        mask=mask,
        kept=stats['kept'],
        seen=stats['seen'])


def _loader(batch_size, num_workers, labels=None):
    return DataLoader(
        _Dataset(_labels() if labels is None else labels),
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=True,
        drop_last=True,  # the published loader: the pass must not drop
        collate_fn=pseudo_collate)


def _sharded_batches(rank, world_size, batch_size=3):
    """A rank's batches as DistributedSampler gives them (shuffled,
    padded by repeating images)."""
    dataset = _Dataset(_labels())
    sampler = DistributedSampler(
        dataset, world_size, rank, shuffle=True, seed=5)
    indices = list(sampler)
    return [
        pseudo_collate([dataset[i] for i in indices[j:j + batch_size]])
        for j in range(0, len(indices), batch_size)
    ]


def _assert_same(a, b):
    for x, y in zip(a['indices'] + a['points'], b['indices'] + b['points']):
        assert torch.equal(x, y)
    for name in ('prototypes', 'mask', 'kept'):
        assert torch.equal(a[name], b[name]), name


def _expected_sample(labels, seed=11, epoch=7):
    """Bottom-k of every class's positives by key, ordered by index."""
    result = []
    for cls in range(C):
        images = torch.nonzero(labels[:, cls] > 0).flatten()
        keys = torch.from_numpy(
            pair_keys(seed, epoch, images.numpy(), np.full(len(images), cls)))
        result.append(images[torch.argsort(keys)[:CAP]].sort().values)
    return result


def test_sample_and_prototypes_ignore_batch_size_and_workers():
    reference = _capped_pass(_loader(2, 0))
    _assert_same(reference, _capped_pass(_loader(5, 2)))
    expected = _expected_sample(_labels())
    for cls in range(C):
        assert torch.equal(reference['indices'][cls], expected[cls])
    positives = (_labels() > 0).sum(0)
    assert reference['kept'].tolist() == torch.clamp(
        positives, max=CAP).tolist()
    assert reference['mask'].tolist() == [1, 1, 0, 1, 1]
    # A fake iterable of batches (with padded repeats) is used as given.
    _assert_same(reference, _capped_pass(_sharded_batches(0, 1)))


def test_class_kmeans_uses_its_own_generator():
    result = _capped_pass(_loader(4, 0))
    for cls in range(C):
        points = result['points'][cls]
        if len(points):
            generator = torch.Generator().manual_seed(class_seed(11, 7, cls))
            assert torch.equal(result['prototypes'][cls],
                               kmeans(points, K, generator, n_init=10))
        else:
            assert result['prototypes'][cls].abs().sum() == 0


def _worker(rank, port, out_dir):
    with gloo_group(rank, port):
        torch.set_num_threads(1)
        assert get_dist_info() == (rank, 2)
        results = dict(
            sharded=_capped_pass(_sharded_batches(rank, 2)),
            loader=_capped_pass(_loader(3, 0)))
        torch.save(results, osp.join(out_dir, f'rank{rank}.pth'))


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    """The ranks merge their samples into the one-process sample and
    cluster the classes in parallel into the one-process prototypes."""
    single = _capped_pass(_loader(2, 0))
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2)
    seen = []
    for rank in (0, 1):
        results = torch.load(tmp_path / f'rank{rank}.pth')
        _assert_same(single, results['sharded'])
        _assert_same(single, results['loader'])
        seen.append(results['loader']['seen'])
    # Each rank saw its half (and one repeat) of the positives only.
    total = (_labels() > 0).sum(0)
    assert (seen[0] < total).any() and (seen[1] < total).any()
    assert (seen[0] + seen[1] >= total).all()


def test_streaming_equals_bottom_k_of_the_distinct_pairs():
    generator = torch.Generator().manual_seed(0)
    pairs = torch.nonzero(torch.rand(60, 8, generator=generator) < 0.4)
    pairs = torch.cat([pairs, pairs[:25]])  # repeated images
    features = torch.randn(len(pairs), 3, generator=generator)
    features[len(pairs) - 25:] = features[:25]
    kept = []
    for batch in (1, 7, 1000):
        sample = BottomKPositives(8, 5, 3, seed=2, epoch=1)
        order = torch.randperm(len(pairs), generator=generator)
        for start in range(0, len(order), batch):
            part = order[start:start + batch]
            sample.add(pairs[part, 0], pairs[part, 1], features[part])
        kept.append(sample)
    for cls in range(8):
        rows = torch.nonzero(pairs[:, 1] == cls).flatten()
        keys = torch.from_numpy(
            pair_keys(2, 1, pairs[rows, 0].numpy(), pairs[rows, 1].numpy()))
        chosen = rows[select_bottom_k(keys, pairs[rows, 0], 5)]
        assert len(chosen) == min(5, len(set(pairs[rows, 0].tolist())))
        for sample in kept:
            count = int(sample.counts[cls])
            assert count == len(chosen)
            mine = torch.argsort(sample.sample_idx[cls, :count])
            assert torch.equal(sample.sample_idx[cls, mine], pairs[chosen, 0])
            assert torch.equal(sample.features[cls, mine], features[chosen])


def test_bottom_k_sample_is_uniform():
    """Over 2000 epochs each of n=40 positives is kept k/n of the time, and
    the pair inclusions look independent (chi-square of the counts)."""
    epochs, n, k = 2000, 40, 10
    images = np.arange(n)
    counts = np.zeros((3, n))
    for epoch in range(epochs):
        for cls in range(3):
            keys = pair_keys(4, epoch, images, np.full(n, cls))
            chosen = select_bottom_k(
                torch.from_numpy(keys), torch.from_numpy(images), k)
            assert len(chosen) == k
            counts[cls, chosen.numpy()] += 1
    p = k / n
    # Without replacement the counts vary a bit less than binomials.
    z = (counts - epochs * p) / np.sqrt(epochs * p * (1 - p))
    assert np.abs(z).max() < 4
    chi2 = (z**2).sum(1)  # about n - 1 = 39 each, sd about 9
    assert (chi2 > 15).all() and (chi2 < 75).all(), chi2


def test_subset_of_images_is_seeded_and_rank_independent():
    indices = pass_indices(1000, 30, seed=3, epoch=2)
    assert len(set(indices.tolist())) == 30 and (np.diff(indices) > 0).all()
    np.testing.assert_array_equal(indices, pass_indices(1000, 30, 3, 2))
    assert not np.array_equal(indices, pass_indices(1000, 30, 3, 4))
    np.testing.assert_array_equal(pass_indices(20, 30, 3, 2), np.arange(20))
    for world_size in (1, 2, 4, 7):
        shards = [
            list(ShardSampler(indices, r, world_size))
            for r in range(world_size)
        ]
        assert len({len(s) for s in shards}) == 1
        assert set(sum(shards, [])) == set(indices.tolist())


def test_pass_over_a_subset_logs_what_it_sampled():
    labels = _labels()
    hook = PrototypeHook(
        seed=11, max_points_per_class=CAP, max_images_per_pass=10)
    head = build_tiny_sarb(C, blend_start_epoch=0).head
    model = SimpleNamespace(head=head)
    messages = []
    runner = SimpleNamespace(
        model=model,
        train_dataloader=_loader(3, 0, labels),
        logger=SimpleNamespace(info=messages.append))
    real = _PerImageModel()
    model.eval, model.train = real.eval, real.train
    model.data_preprocessor = real.data_preprocessor
    model.extract_feat = real.extract_feat
    model.training = True
    hook.update_prototypes(runner, 7)
    subset = pass_indices(NUM_IMAGES, 10, 11, 7)
    positives = (labels[subset] > 0).sum(0)
    kept = positives.clamp(max=CAP)
    assert head.prototype_mask.tolist() == (positives > 0).tolist()
    assert messages[0] == (f'Epoch 7: prototypes of {int((kept > 0).sum())}/'
                           f'{C} classes from {int(kept.sum())} kept known '
                           f'positives (at most {CAP} per class).')
    assert f'over 10 of {NUM_IMAGES} training images: 10 images' \
        in messages[1]
    assert f'{int(positives.sum())} known positives seen' in messages[1]
    assert f'kept per class min/median/max {int(kept.min())}/' \
        f'{int(kept.median())}/{int(kept.max())}' in messages[1]
    mib = C * CAP * D * 4 / 2**20
    assert f'MiB in a {mib:.1f} MiB buffer' in messages[1]


@pytest.mark.parametrize('name',
                         ['max_points_per_class', 'max_images_per_pass'])
@pytest.mark.parametrize('value', [0, 2.5, True])
def test_bad_caps_name_the_parameter(name, value):
    with pytest.raises(InvalidInputError, match=f'PrototypeHook {name}'):
        PrototypeHook(**{name: value})
