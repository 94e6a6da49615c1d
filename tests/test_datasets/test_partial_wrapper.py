import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import sarb_mm  # noqa: F401
from sarb_mm.datasets import PartialLabelDataset, make_partial_labels
from .fixtures import write_coco, write_voc

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
        dict(type='PartialLabelDataset', dataset=_coco_cfg(tmp_path),
             known_ratio=0.5, seed=1))
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
        dict(type='VOC2007MultiLabelDataset', data_root=str(root),
             difficult='ignore', pipeline=PIPELINE),
        known_ratio=1.0)
    assert difficult_only.any()
    expected = np.where(labels > 0, 1, np.where(difficult_only > 0, 0, -1))
    np.testing.assert_array_equal(dataset.partial_labels, expected)


@pytest.mark.parametrize('kwargs', [dict(), dict(known_ratio=0.1,
                                                 partial_file='x.npy')])
def test_needs_exactly_one_source(tmp_path, kwargs):
    with pytest.raises(ValueError, match='exactly one'):
        PartialLabelDataset(_coco_cfg(tmp_path), **kwargs)


def test_wrong_partial_file_shape_fails_at_build(tmp_path):
    write_coco(str(tmp_path))
    np.save(tmp_path / 'p.npy', np.zeros((2, 2), dtype=np.int8))
    with pytest.raises(ValueError, match='shape'):
        PartialLabelDataset(_coco_cfg(tmp_path),
                            partial_file=str(tmp_path / 'p.npy'))


def test_empty_dataset_is_an_error(tmp_path):
    write_coco(str(tmp_path), images=[], annotations=[])
    (tmp_path / 'train2014').mkdir(exist_ok=True)
    with pytest.raises(ValueError, match='instances_train2014.json'):
        PartialLabelDataset(_coco_cfg(tmp_path), known_ratio=0.5)
