import re

import numpy as np
import pytest
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

import sarb_mm  # noqa: F401
from sarb_mm.datasets import PartialLabelDataset, make_partial_labels
from sarb_mm.utils.errors import InvalidInputError
from tests.log_capture import collect_warnings
from .fixtures import COCO_CLASSES, write_coco, write_voc

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _coco_cfg(root):
    return dict(
        type='CocoMultiLabelDataset',
        data_root=str(root),
        ann_file='annotations/instances_train2014.json',
        data_prefix='train2014',
        pipeline=PIPELINE)


def test_samples_carry_partial_labels_only(tmp_path):
    full = 2 * write_coco(str(tmp_path)) - 1
    dataset = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            dataset=_coco_cfg(tmp_path),
            known_ratio=0.5,
            seed=1))
    expected = make_partial_labels(full, 0.5, seed=1)
    np.testing.assert_array_equal(dataset.partial_labels, expected)
    assert len(dataset) == full.shape[0]
    assert dataset.metainfo['classes'] == dataset.dataset.metainfo['classes']
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        np.testing.assert_array_equal(sample.gt_score.numpy(), expected[idx])
        # No hidden positive leaks through gt_label.
        assert sorted(sample.gt_label.tolist()) == np.flatnonzero(
            expected[idx] > 0).tolist()


def test_partial_file_round_trip(tmp_path):
    full = 2 * write_coco(str(tmp_path)) - 1
    first = PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=0.7)
    path = tmp_path / 'split.npy'
    first.save(str(path))
    second = PartialLabelDataset(_coco_cfg(tmp_path), partial_file=str(path))
    np.testing.assert_array_equal(second.partial_labels, first.partial_labels)
    assert second.partial_labels.shape == full.shape


def test_voc_ignored_difficult_stays_unknown(tmp_path):
    root = tmp_path / 'VOC2007'
    labels, difficult_only = write_voc(str(root), return_difficult=True)
    dataset = PartialLabelDataset(
        dict(
            type='VOC2007MultiLabelDataset',
            data_root=str(root),
            difficult='ignore',
            pipeline=PIPELINE),
        known_ratio=1.0)
    assert difficult_only.any()
    expected = np.where(labels > 0, 1, np.where(difficult_only > 0, 0, -1))
    np.testing.assert_array_equal(dataset.partial_labels, expected)


@pytest.mark.parametrize(
    'kwargs', [dict(), dict(known_ratio=0.1, partial_file='x.npy')])
def test_needs_exactly_one_source(tmp_path, kwargs):
    with pytest.raises(ValueError, match='exactly one'):
        PartialLabelDataset(_coco_cfg(tmp_path), **kwargs)


def test_wrong_partial_file_shape_fails_at_build(tmp_path):
    write_coco(str(tmp_path))
    np.save(tmp_path / 'p.npy', np.zeros((2, 2), dtype=np.int8))
    with pytest.raises(ValueError, match='shape'):
        PartialLabelDataset(
            _coco_cfg(tmp_path), partial_file=str(tmp_path / 'p.npy'))


def test_empty_dataset_is_an_error(tmp_path):
    write_coco(str(tmp_path), images=[], annotations=[])
    (tmp_path / 'train2014').mkdir(exist_ok=True)
    with pytest.raises(ValueError, match='instances_train2014.json'):
        PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=0.5)


def test_split_without_known_entries_is_an_error(tmp_path):
    write_coco(str(tmp_path))
    with pytest.raises(
            InvalidInputError,
            match=r'split \(known_ratio=1e-12, seed=0\) leaves '
            r'no label known among 4 images x 4 classes.*loss '
            r'would be 0.*raise known_ratio'):
        PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=1e-12)
    path = str(tmp_path / 'zeros.npy')
    np.save(path, np.zeros((4, 4), dtype=np.int8))
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f'split (partial_file={path}) leaves '
                            'no label known') + r'.*holds only zeros'):
        PartialLabelDataset(_coco_cfg(tmp_path), partial_file=path)


def test_classes_without_known_positive_are_warned(tmp_path):
    full = 2 * write_coco(str(tmp_path)) - 1
    # Classes (bicycle, cat, stop sign, toothbrush): keep only the known
    # positives of bicycle and cat, and every negative.
    partial = np.where(full < 0, -1, 0).astype(np.int8)
    partial[:, :2] = full[:, :2]
    path = str(tmp_path / 'p.npy')
    np.save(path, partial)
    with collect_warnings() as seen:
        PartialLabelDataset(_coco_cfg(tmp_path), partial_file=path)
    assert seen == [
        f'Partial labels (partial_file={path}): 2 of 4 classes have no known '
        'positive in this split: stop sign, toothbrush. They get no '
        'prototype and an all-zero co-occurrence row, and learn only from '
        'negatives. A higher known_ratio or more images gives them '
        'positives.'
    ]
    # Every positive known: nothing to warn about.
    with collect_warnings() as seen:
        PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=1.0)
    assert seen == []
    # A drawn split: the classes a plain numpy count finds without one.
    drawn = make_partial_labels(full, 0.4, seed=2)
    missing = [
        name for k, name in enumerate(COCO_CLASSES)
        if not (drawn[:, k] == 1).any()
    ]
    assert missing  # the seed is chosen so that some class has none
    with collect_warnings() as seen:
        PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=0.4, seed=2)
    assert len(seen) == 1
    assert f'{len(missing)} of 4 classes' in seen[0]
    assert f'split: {", ".join(missing)}.' in seen[0]


def test_wrapper_errors_are_invalid_input_errors(tmp_path):
    write_coco(str(tmp_path))
    with pytest.raises(InvalidInputError, match='exactly one'):
        PartialLabelDataset(_coco_cfg(tmp_path))
    with pytest.raises(InvalidInputError, match='PartialLabelDataset seed'):
        PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=0.5, seed=-1)
    with pytest.raises(FileNotFoundError, match='nope.npy') as err:
        PartialLabelDataset(
            _coco_cfg(tmp_path), partial_file=str(tmp_path / 'nope.npy'))
    assert isinstance(err.value, InvalidInputError)

    class Empty(BaseDataset):
        METAINFO = dict(classes=('a', 'b'))

        def load_data_list(self):
            return []

    with pytest.raises(InvalidInputError, match=r'empty dataset \(Empty\)'):
        PartialLabelDataset(
            Empty(lazy_init=True, serialize_data=False), known_ratio=0.5)
