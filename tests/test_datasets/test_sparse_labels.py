"""Sparse known labels: every statistic equal to the dense matrix's."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sarb_mm.datasets import sparse_labels as sparse_module
from sarb_mm.datasets import split_fingerprint
from sarb_mm.datasets.partial_wrapper import (full_label_matrix,
                                              sparse_label_matrix)
from sarb_mm.datasets.sparse_labels import (ImageLabels, ImageLabelsBuilder,
                                            SparseLabels, subset_positions)
from sarb_mm.evaluation.metrics import pack_targets, unpack_targets
from sarb_mm.models.utils import cooccurrence_matrix
from .test_openimages import ROWS, build, expected_labels, write_openimages


def random_labels(num_images=700, num_classes=23, seed=0):
    """A -1/0/1 matrix with rows of every kind: none known, no positive,
    many positives."""
    rng = np.random.default_rng(seed)
    dense = rng.choice([-1, 0, 0, 1], size=(num_images, num_classes))
    dense[:5] = 0
    dense[5:9] = -1
    dense[9:12] = 1
    return dense.astype(np.int8)


def test_statistics_equal_the_dense_matrix(monkeypatch):
    dense = random_labels()
    labels = SparseLabels.from_dense(dense)
    np.testing.assert_array_equal(labels.to_dense(), dense)
    assert labels.classes.dtype == np.uint16
    np.testing.assert_array_equal(labels.positive_counts(), (dense > 0).sum(0))
    np.testing.assert_array_equal(labels.negative_counts(), (dense < 0).sum(0))
    assert labels.images_with_positive() == int((dense > 0).any(1).sum())
    assert labels.known_count() == int((dense != 0).sum())
    # P.T @ P by a plain loop over images.
    pairs = np.zeros((23, 23), dtype=np.int64)
    for row in dense:
        pos = np.flatnonzero(row > 0)
        for a in pos:
            for b in pos:
                pairs[a, b] += 1
    np.testing.assert_array_equal(labels.positive_pair_counts(), pairs)
    # The co-occurrence the head is given: the same bits either way.
    assert torch.equal(cooccurrence_matrix(labels), cooccurrence_matrix(dense))
    # Chunked hashing: the fingerprint of the dense matrix, also when the
    # rows span several chunks.
    monkeypatch.setattr(sparse_module, '_CHUNK_ROWS', 64)
    assert labels.fingerprint() == split_fingerprint(dense)


def test_subsets_follow_mmengine_indices():
    dense = random_labels(50, 7)
    labels = SparseLabels.from_dense(dense)
    for indices in (10, -10, 0, 80, [3, 1, 49, 3], [-1, 0], []):
        positions = subset_positions(indices, 50)
        expected = list(range(50))
        expected = (
            expected[:indices] if isinstance(indices, int)
            and indices >= 0 else expected[indices:] if isinstance(
                indices, int) else [expected[i] for i in indices])
        assert positions.tolist() == expected
        np.testing.assert_array_equal(
            labels.subset(positions).to_dense().reshape(-1, 7),
            dense[expected].reshape(-1, 7))
    with pytest.raises(IndexError):
        subset_positions([50], 50)
    empty = labels.subset(np.arange(0))
    parts = [
        empty,
        labels.subset(np.arange(20)), empty,
        labels.subset(np.arange(20, 50))
    ]
    np.testing.assert_array_equal(
        SparseLabels.concatenate(parts, 7).to_dense(), dense)
    assert len(SparseLabels.concatenate([empty, empty], 7)) == 0


def test_image_names_and_rows_packed_and_subset():
    names = ['a.jpg', 'dir/b.jpg', 'ünïcode.jpg', 'c.jpg']
    builder = ImageLabelsBuilder(num_classes=5)
    builder.append(names[0], [3, 1], [0])
    builder.append(names[1], [], [])
    builder.append(names[2], [4], [2, 0])
    builder.append(names[3], [0], [])
    images = builder.build()
    assert len(builder) == 0 and len(images) == 4
    assert [images.name(i) for i in range(4)] == names
    name, pos, neg = images[2]
    assert (name, pos.tolist(), neg.tolist()) == ('ünïcode.jpg', [4], [0, 2])
    expected = np.array([[-1, 1, 0, 1, 0], [0] * 5, [-1, 0, -1, 0, 1],
                         [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(images.labels.to_dense(), expected)
    sub = images.subset(np.array([2, 0]))
    assert [sub.name(i) for i in range(2)] == ['ünïcode.jpg', 'a.jpg']
    np.testing.assert_array_equal(sub.labels.to_dense(), expected[[2, 0]])
    same = ImageLabels.from_names(names, images.labels)
    assert [same.name(i) for i in range(4)] == names


def test_native_dataset_keeps_its_rows_packed(tmp_path):
    write_openimages(str(tmp_path))
    dataset = build(tmp_path)
    mids = [m for m in dataset.label_names]
    order, expected = expected_labels(ROWS, mids)
    labels = sparse_label_matrix(dataset)
    assert labels is dataset.known_labels()  # no copy
    np.testing.assert_array_equal(labels.to_dense(), expected)
    np.testing.assert_array_equal(full_label_matrix(dataset), expected)
    assert dataset.fingerprint == split_fingerprint(expected)
    for idx, image_id in enumerate(order):
        info = dataset.get_data_info(idx)
        assert info['img_path'].endswith(f'train/{image_id}.jpg')
        np.testing.assert_array_equal(info['gt_score'], expected[idx])
        assert info['gt_label'] == np.flatnonzero(expected[idx] > 0).tolist()
        assert info['sample_idx'] == idx
    n = len(order)
    assert dataset.get_data_info(-n)['sample_idx'] == 0
    for outside in (n, -n - 1):
        with pytest.raises(IndexError):
            dataset.get_data_info(outside)
    # mmengine's subset API and the indices argument.
    subset = dataset.get_subset([2, 0])
    np.testing.assert_array_equal(subset.known_label_matrix(), expected[[2,
                                                                         0]])
    assert len(dataset) == len(order)
    first = build(tmp_path, indices=2)
    np.testing.assert_array_equal(first.known_label_matrix(), expected[:2])
    dataset.get_subset_(-1)
    np.testing.assert_array_equal(dataset.known_label_matrix(), expected[-1:])
    assert dataset.fingerprint == split_fingerprint(expected[-1:])


def test_metric_targets_are_stored_sparse():
    rng = np.random.default_rng(0)
    label = rng.random(600) < 0.01
    partial = np.zeros(600, dtype=bool)
    partial[rng.choice(600, 6, replace=False)] = True
    partial |= label
    full = np.ones(600, dtype=bool)
    full[:3] = False
    for valid in (partial, full):
        packed = pack_targets(label, valid)
        assert sum(v.nbytes for v in packed.values()) <= 2 * 20
        labels, valids = unpack_targets([packed], 600)
        np.testing.assert_array_equal(labels[0], label)
        np.testing.assert_array_equal(valids[0], valid)


# 2,000,000 images x 600 classes: a dense int8 matrix would be 1.2 GB.
_SCALE_CHILD = textwrap.dedent(r'''
    import json, resource, sys, tracemalloc
    import numpy as np
    from sarb_mm.datasets import OpenImagesPartialDataset
    from sarb_mm.datasets.partial_wrapper import sparse_label_matrix
    from sarb_mm.engine.hooks.partial_label_hook import _fingerprint, _shape
    from sarb_mm.models.utils import cooccurrence_matrix
    root = sys.argv[1]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    dataset = OpenImagesPartialDataset(
        data_root=root, ann_file='labels.csv', class_file='classes.csv',
        data_prefix='images', missing_images='unchecked')
    build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    labels = sparse_label_matrix(dataset)
    matrix = cooccurrence_matrix(labels)
    fingerprint = _fingerprint(dataset)
    shape = _shape(dataset)
    counts = labels.positive_counts(), labels.negative_counts()
    info = dataset.get_data_info(len(dataset) - 1)
    traced = tracemalloc.get_traced_memory()[1]
    print(json.dumps(dict(
        images=len(dataset), shape=list(shape),
        build_peak_per_image=(build_peak - base) / len(dataset),
        held_per_image=dataset._images.nbytes / len(dataset),
        traced_after_build=traced,
        diagonal=matrix.diagonal().sum().item(),
        positives=int(counts[0].sum()), last=info['gt_label'])))
''')


@pytest.mark.slow
def test_two_million_images_never_make_a_dense_matrix(tmp_path):
    """Build, statistics, fingerprint and co-occurrence of a native
    dataset of 2,000,000 images x 600 classes: the build peaks under 512
    bytes per image and keeps under 256, and nothing afterwards allocates
    than a few bytes per image (the dense matrix: 600, 1.2 GB)."""
    num_images, num_classes = 2_000_000, 600
    with open(tmp_path / 'classes.csv', 'w') as f:
        f.writelines(f'/m/c{i},Class {i}\n' for i in range(num_classes))
    rng = np.random.default_rng(0)
    cls = rng.integers(num_classes, size=num_images).tolist()
    positive = (rng.random(num_images) < 0.5).astype(int).tolist()
    with open(tmp_path / 'labels.csv', 'w') as f:
        f.write('ImageID,Source,LabelName,Confidence\n')
        f.writelines(f'{i:016x},verification,/m/c{c},{p}\n'
                     for i, c, p in zip(range(num_images), cls, positive))
    out = subprocess.run([sys.executable, '-c', _SCALE_CHILD,
                          str(tmp_path)],
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(result)
    assert result['images'] == num_images
    assert result['shape'] == [num_images, num_classes]
    assert result['positives'] == sum(positive)
    assert result['diagonal'] == len(
        set(c for c, p in zip(cls, positive) if p))
    assert result['held_per_image'] <= 256
    assert result['build_peak_per_image'] <= 512
    # Temporary index arrays of a few bytes per image; the dense matrix
    # would be num_classes bytes per image.
    assert result['traced_after_build'] < num_images * 64
    assert result['last'] == ([cls[-1]] if positive[-1] else [])


class _Listed:
    """A fully labelled dataset as full_label_matrix reads one."""

    def __init__(self, dense):
        self.dense = dense
        self.metainfo = dict(classes=[str(i) for i in range(dense.shape[1])])

    def __len__(self):
        return len(self.dense)

    def get_data_info(self, idx):
        return dict(
            gt_label=np.flatnonzero(self.dense[idx] > 0).tolist(),
            gt_label_difficult=np.flatnonzero(self.dense[idx] == 0).tolist())


def test_other_datasets_are_converted_chunk_by_chunk(monkeypatch):
    dense = random_labels(20000, 9)  # more than two chunks of 8192 images
    rows = sparse_label_matrix(_Listed(dense))
    np.testing.assert_array_equal(rows.to_dense(), dense)
    np.testing.assert_array_equal(full_label_matrix(_Listed(dense)), dense)
