"""Checks that data and model agree, and records the partial-label split."""
import os.path as osp
from typing import Optional

import numpy as np
from mmengine.dist import (all_gather_object, broadcast_object_list,
                           is_main_process)
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

from sarb_mm.datasets.partial_labels import split_fingerprint
from sarb_mm.utils.errors import InvalidInputError

SPLIT_FILE = 'partial_labels.npy'


def unwrap_model(model):
    """The bare model behind DDP / other mmengine wrappers and behind a
    test-time-augmentation wrapper (``--tta``)."""
    if is_model_wrapper(model):
        model = model.module
    return model.module if isinstance(model, BaseTTAModel) else model


def model_num_classes(model):
    """Number of classes the model predicts, or None if it does not say."""
    model = unwrap_model(model)
    counts = {
        name: getattr(getattr(model, name, None), 'num_classes', None)
        for name in ('neck', 'head')
    }
    if None not in counts.values() and counts['neck'] != counts['head']:
        raise InvalidInputError(
            f"model.neck.num_classes={counts['neck']} differs from "
            f"model.head.num_classes={counts['head']}; set both to the "
            "dataset's number of classes.")
    return counts['head']


def built_dataset(runner, split: str):
    """The dataset of a loop the runner has built, else None (never builds
    one, so a test run does not load the training annotations)."""
    loop = getattr(runner, f'_{split}_loop', None)
    return loop.dataloader.dataset if isinstance(loop, BaseLoop) else None


@HOOKS.register_module()
class PartialLabelHook(Hook):
    """Fail early on a class-count mismatch; record and guard the split.

    - Before any iteration, every built loop's dataset must have as many
      classes as the model's head; otherwise training would crash with a
      shape error mid-epoch or, worse, evaluate against shifted classes.
    - The training split (-1/0/1 matrix) is part of the experiment: every
      rank must hold the same one, it is written to
      ``<work_dir>/partial_labels.npy`` (auditable, reusable through
      ``partial_file``), and a file of another split already there is never
      overwritten: that is an error (resume with the same split, or use
      another work dir).
    - Checkpoints record the split's fingerprint (``meta.partial_labels``);
      resuming with a different split is an error naming both.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        num_classes = model_num_classes(runner.model)
        for name in ('train', 'val', 'test'):
            dataset = built_dataset(runner, name)
            if dataset is None:
                continue
            classes = dataset.metainfo.get('classes')
            if (num_classes is not None and classes is not None
                    and len(classes) != num_classes):
                raise InvalidInputError(
                    f'The {name} dataset ({type(dataset).__name__}) has '
                    f'{len(classes)} classes but the model head predicts '
                    f'{num_classes}. Set model.head.num_classes (and the '
                    f'neck\'s num_classes for SARB) to {len(classes)} in the '
                    'config, or point the dataset at the right annotations.')
            if name != 'train' and getattr(dataset, 'partial_labels',
                                           None) is not None:
                raise InvalidInputError(
                    f'The {name} dataset is a PartialLabelDataset: its '
                    'hidden labels would count as negatives and the metrics '
                    f'would be wrong. Evaluate on the fully labelled '
                    f'dataset: set {name}_dataloader.dataset to the '
                    'wrapped dataset (the PartialLabelDataset\'s `dataset`).')
        dataset = built_dataset(runner, 'train')
        if getattr(dataset, 'partial_labels', None) is not None:
            self._record_split(runner, dataset)

    def _record_split(self, runner, dataset) -> None:
        fingerprints = all_gather_object(_fingerprint(dataset))
        if len(set(fingerprints)) > 1:
            raise InvalidInputError(
                'The ranks hold different training splits (fingerprints '
                f'{sorted(set(f[:12] for f in fingerprints))}): every process '
                'must read the same annotations and partial_file, or draw '
                'with the same known_ratio and seed.')
        problem = [None]
        if is_main_process():
            problem[0] = self._save_or_compare(runner, dataset)
        broadcast_object_list(problem)
        if problem[0] is not None:
            raise InvalidInputError(problem[0])

    @staticmethod
    def _save_or_compare(runner, dataset) -> Optional[str]:
        path = osp.join(runner.work_dir, SPLIT_FILE)
        current = _fingerprint(dataset)
        if osp.exists(path):
            try:
                previous = split_fingerprint(np.load(path, allow_pickle=False))
            except Exception as err:  # unreadable: still never overwrite
                previous = f'unreadable ({type(err).__name__})'
            if previous == current:
                runner.logger.info(f'The training split matches {path}.')
                return None
            return (
                f'{path} holds the training split of an earlier run '
                f'(fingerprint {previous[:12]}), but this run trains on '
                f'{_source(dataset)} (fingerprint {current[:12]}). The file '
                'is never overwritten: resume with the earlier split (e.g. '
                f'train_dataloader.dataset.partial_file={path} with '
                'known_ratio=None), or start this run in another work_dir.')
        dataset.save(path)
        runner.logger.info(f'Saved the training partial labels '
                           f'{dataset.partial_labels.shape} '
                           f'({_source(dataset)}) to {path}')
        return None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        dataset = built_dataset(runner, 'train')
        if not _has_split(dataset):
            return
        checkpoint.setdefault('meta', {})['partial_labels'] = dict(
            fingerprint=_fingerprint(dataset),
            source=_source(dataset),
            shape=list(_shape(dataset)))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Fine-tuning from another run's weights (load_from) may change the
        # split; continuing a run (resume) may not.
        if not getattr(runner, '_resume', False):
            return
        saved = (checkpoint.get('meta') or {}).get('partial_labels')
        dataset = built_dataset(runner, 'train')
        if not _has_split(dataset):
            return
        if saved is None:
            runner.logger.warning(
                'The checkpoint records no training split (it was saved '
                'without PartialLabelHook or by an older version), so this '
                f'resume cannot check that {_source(dataset)} is the split '
                'it was trained on.')
            return
        current = _fingerprint(dataset)
        if saved['fingerprint'] != current:
            raise InvalidInputError(
                'Cannot resume: the checkpoint was trained on the split '
                f"{saved['source']} (fingerprint {saved['fingerprint'][:12]})"
                f', but this run trains on {_source(dataset)} (fingerprint '
                f'{current[:12]}). Resume with the same known_ratio / seed / '
                'partial_file (or, for a natively partial dataset, the same '
                'annotation files), or start a new run in another work_dir.')


def _has_split(dataset) -> bool:
    """A partial-label split (the wrapper's) or natively partial labels
    (whose record is their annotation file: checked, not saved again)."""
    return (getattr(dataset, 'partial_labels', None) is not None
            or hasattr(dataset, 'known_labels'))


def _shape(dataset) -> tuple:
    partial = getattr(dataset, 'partial_labels', None)
    return (partial if partial is not None else dataset.known_labels()).shape


def _fingerprint(dataset) -> str:
    fingerprint = getattr(dataset, 'fingerprint', None)
    return fingerprint or split_fingerprint(dataset.partial_labels)


def _source(dataset) -> str:
    return getattr(dataset, 'source', type(dataset).__name__)
