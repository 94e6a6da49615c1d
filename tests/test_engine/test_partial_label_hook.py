import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmengine.runner import BaseLoop

from sarb_mm.engine.hooks import PartialLabelHook


class _Loop(BaseLoop):

    def run(self):
        """Never run: the hook only reads the loop's dataloader."""


class _Dataset:

    def __init__(self, num_classes, partial=None):
        self.metainfo = dict(classes=[f'c{i}' for i in range(num_classes)])
        self.partial_labels = partial

    def save(self, path):
        np.save(path, self.partial_labels)


def _runner(tmp_path, head_classes, neck_classes=None, train_classes=3,
            val_classes=3):
    model = SimpleNamespace(
        head=SimpleNamespace(num_classes=head_classes),
        neck=SimpleNamespace(num_classes=neck_classes)
        if neck_classes else None)
    runner = SimpleNamespace(
        model=model, work_dir=str(tmp_path),
        logger=MMLogger.get_instance('plh-test'))
    partial = np.array([[1, 0, -1], [0, 0, 1]], dtype=np.int8)
    runner._train_loop = _Loop(
        runner, SimpleNamespace(dataset=_Dataset(train_classes, partial)))
    runner._val_loop = _Loop(
        runner, SimpleNamespace(dataset=_Dataset(val_classes)))
    runner._test_loop = dict(type='TestLoop')  # not built: not checked
    return runner


def test_consistent_run_saves_partial_labels(tmp_path):
    PartialLabelHook().before_run(_runner(tmp_path, 3, 3))
    saved = np.load(osp.join(tmp_path, 'partial_labels.npy'))
    np.testing.assert_array_equal(saved, [[1, 0, -1], [0, 0, 1]])


@pytest.mark.parametrize('kwargs, match', [
    (dict(head_classes=5), 'train dataset .* 3 classes .* predicts 5'),
    (dict(head_classes=3, val_classes=4), 'val dataset .* 4 classes'),
    (dict(head_classes=3, neck_classes=2), 'neck.num_classes=2'),
])
def test_class_count_mismatch_is_reported(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PartialLabelHook().before_run(_runner(tmp_path, **kwargs))
