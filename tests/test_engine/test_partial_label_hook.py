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


def _runner(tmp_path,
            head_classes,
            neck_classes=None,
            train_classes=3,
            val_classes=3):
    model = SimpleNamespace(
        head=SimpleNamespace(num_classes=head_classes),
        neck=SimpleNamespace(
            num_classes=neck_classes) if neck_classes else None)
    runner = SimpleNamespace(
        model=model,
        work_dir=str(tmp_path),
        logger=MMLogger.get_instance('plh-test'))
    partial = np.array([[1, 0, -1], [0, 0, 1]], dtype=np.int8)
    runner._train_loop = _Loop(
        runner, SimpleNamespace(dataset=_Dataset(train_classes, partial)))
    runner._val_loop = _Loop(runner,
                             SimpleNamespace(dataset=_Dataset(val_classes)))
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


def test_split_file_of_another_run_is_never_overwritten(tmp_path):
    runner = _runner(tmp_path, 3)
    PartialLabelHook().before_run(runner)
    path = osp.join(tmp_path, 'partial_labels.npy')
    before = open(path, 'rb').read()
    # The same split again (e.g. a resume): fine, file untouched.
    PartialLabelHook().before_run(_runner(tmp_path, 3))
    other = _runner(tmp_path, 3)
    other._train_loop.dataloader.dataset.partial_labels = np.array(
        [[1, 0, 0], [0, 0, 1]], dtype=np.int8)
    with pytest.raises(ValueError, match='never overwritten') as err:
        PartialLabelHook().before_run(other)
    assert path in str(err.value)
    assert open(path, 'rb').read() == before


def test_checkpoint_records_the_split_and_resume_checks_it(tmp_path):
    hook = PartialLabelHook()
    runner = _runner(tmp_path, 3)
    runner._train_loop.dataloader.dataset.source = 'known_ratio=0.1, seed=0'
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    saved = checkpoint['meta']['partial_labels']
    assert saved['shape'] == [2, 3]
    assert saved['source'] == 'known_ratio=0.1, seed=0'

    resumed = _runner(tmp_path, 3)
    resumed._resume = True
    hook.after_load_checkpoint(resumed, checkpoint)  # same split: fine
    dataset = resumed._train_loop.dataloader.dataset
    dataset.partial_labels = np.array([[1, 0, 0], [0, 0, 1]], dtype=np.int8)
    dataset.source = 'known_ratio=0.5, seed=0'
    with pytest.raises(ValueError, match='Cannot resume') as err:
        hook.after_load_checkpoint(resumed, checkpoint)
    assert 'known_ratio=0.1, seed=0' in str(err.value)
    assert 'known_ratio=0.5, seed=0' in str(err.value)
    # Loading weights to fine-tune on another split is not a resume.
    resumed._resume = False
    hook.after_load_checkpoint(resumed, checkpoint)


def test_evaluating_on_partial_labels_is_refused(tmp_path):
    runner = _runner(tmp_path, 3)
    runner._val_loop.dataloader.dataset.partial_labels = np.zeros(
        (2, 3), dtype=np.int8)
    with pytest.raises(ValueError, match='val dataset is a PartialLabel'):
        PartialLabelHook().before_run(runner)


def test_resume_without_recorded_split_warns(tmp_path):
    runner = _runner(tmp_path, 3)
    runner._resume = True
    warnings = []
    runner.logger = SimpleNamespace(warning=warnings.append)
    PartialLabelHook().after_load_checkpoint(runner, {'meta': {}})
    assert len(warnings) == 1 and 'records no training split' in warnings[0]


def test_native_labels_are_recorded_and_checked_on_resume(tmp_path):
    """A natively partial training set has no split file (its annotation
    file is the record), but checkpoints carry its fingerprint."""
    from sarb_mm.datasets import split_fingerprint
    from ..test_datasets.test_openimages import ROWS, build, write_openimages
    write_openimages(str(tmp_path))
    native = build(tmp_path)
    runner = _runner(tmp_path, len(native.metainfo['classes']))
    runner._train_loop.dataloader.dataset = native
    runner._val_loop = None
    hook = PartialLabelHook()
    hook.before_run(runner)
    assert not osp.exists(osp.join(tmp_path, 'partial_labels.npy'))
    checkpoint = {'meta': {}}
    hook.before_save_checkpoint(runner, checkpoint)
    saved = checkpoint['meta']['partial_labels']
    assert saved['fingerprint'] == split_fingerprint(
        native.known_label_matrix())
    assert saved['shape'] == list(native.known_label_matrix().shape)
    runner._resume = True
    hook.after_load_checkpoint(runner, checkpoint)  # same labels: fine
    # The label file changed between the runs: one label flipped.
    flipped = [list(r) for r in ROWS]
    flipped[0][3] = '0' if flipped[0][3] == '1' else '1'
    write_openimages(str(tmp_path), rows=flipped, images=False)
    runner._train_loop.dataloader.dataset = build(tmp_path)
    with pytest.raises(ValueError, match='Cannot resume') as err:
        hook.after_load_checkpoint(runner, checkpoint)
    assert 'OpenImages labels of' in str(err.value)
