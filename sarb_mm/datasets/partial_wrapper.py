"""Dataset wrapper that turns a fully labelled dataset into a partial one."""
import copy
from typing import Callable, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset, Compose
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS, TRANSFORMS

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.paths import atomic_path
from .partial_labels import (load_partial_labels, make_partial_labels,
                             split_fingerprint, validate_known_ratio,
                             validate_seed)
from .sparse_labels import SparseLabels


def full_label_matrix(dataset, rows: Optional[range] = None) -> np.ndarray:
    """Build the (N_img, C) matrix of 1 / -1 (and 0 for ignored) labels.

    Works for any mmpretrain multi-label dataset whose data infos carry
    ``gt_label`` (positive class indices) and optionally
    ``gt_label_difficult`` (classes to leave unknown).

    Args:
        dataset: The dataset.
        rows (range, optional): Only these images. Defaults to all.
    """
    rows = range(len(dataset)) if rows is None else rows
    known = getattr(dataset, 'known_labels', None)
    if known is not None:  # a natively partial dataset: its packed rows
        return known().to_dense(rows.start, rows.stop)
    num_classes = len(dataset.metainfo['classes'])
    labels = -np.ones((len(rows), num_classes), dtype=np.int8)
    for row, idx in enumerate(rows):
        info = dataset.get_data_info(idx)
        difficult = info.get('gt_label_difficult', [])
        labels[row, np.asarray(difficult, dtype=np.int64)] = 0
        labels[row, np.asarray(info['gt_label'], dtype=np.int64)] = 1
    return labels


def sparse_label_matrix(dataset) -> SparseLabels:
    """:func:`full_label_matrix` in compressed sparse rows.

    A natively partial dataset gives its own rows (no copy, no dense
    matrix); other datasets are converted a chunk of images at a time.
    """
    known = getattr(dataset, 'known_labels', None)
    if known is not None:
        return known()
    step = 8192
    chunks = [
        SparseLabels.from_dense(
            full_label_matrix(dataset,
                              range(start, min(start + step, len(dataset)))))
        for start in range(0, len(dataset), step)
    ]
    return SparseLabels.concatenate(chunks, len(dataset.metainfo['classes']))


@DATASETS.register_module()
class PartialLabelDataset:
    """Hide part of a multi-label dataset's labels (the published protocol).

    Each sample gets ``gt_score``, its -1/0/1 partial-label vector, which
    mmpretrain's ``PackInputs`` puts into the data sample; ``gt_label`` is
    replaced by the known positives so no hidden label reaches the model.

    Args:
        dataset (dict | BaseDataset): The fully labelled dataset.
        known_ratio (float, optional): Proportion of labels kept, in (0, 1].
            Entries the wrapped dataset leaves unknown (VOC difficult
            objects in 'ignore' mode, the unknown labels of a natively
            partial dataset such as ``JsonLinesPartialDataset``) stay
            unknown, so of such a dataset this proportion of the *known*
            labels is kept.
        seed (int): Seed of the hiding draw, in [0, 2**32 - 1]. Defaults
            to 0 (published). None is refused: every run and every process
            must train on the same, recorded split.
        partial_file (str, optional): A saved (N_img, C) ``.npy`` matrix of
            -1/0/1 used instead of ``known_ratio``.
        pipeline (Sequence[dict | Callable], optional): Transforms applied
            to each partial-label sample. The published configs give it
            here rather than to the wrapped dataset, because mmpretrain's
            ``tools/misc/verify_dataset.py`` reads
            ``train_dataloader.dataset.pipeline``. Defaults to None: the
            wrapped dataset's own pipeline. An empty list runs no transform
            (tools use it to read the annotations alone); a non-empty one
            given in both places is an error.
        lazy_init (bool): Defer loading annotations. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 known_ratio: Optional[float] = None,
                 seed: int = 0,
                 partial_file: Optional[str] = None,
                 pipeline: Optional[Sequence[Union[dict, Callable]]] = None,
                 lazy_init: bool = False) -> None:
        if (known_ratio is None) == (partial_file is None):
            raise InvalidInputError(
                'PartialLabelDataset needs exactly one of known_ratio (e.g. '
                f'0.1) or partial_file (.npy), got known_ratio={known_ratio!r}'
                f', partial_file={partial_file!r}.')
        if known_ratio is not None:
            known_ratio = validate_known_ratio(known_ratio)
        self.known_ratio = known_ratio
        # A saved split needs no seed.
        self.seed = (
            validate_seed(seed, 'PartialLabelDataset seed')
            if partial_file is None else seed)
        self.partial_file = partial_file
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        if pipeline is not None:
            self._take_pipeline(pipeline)
        self.partial_labels: Optional[np.ndarray] = None
        self.fingerprint: Optional[str] = None
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self.dataset.metainfo)

    @property
    def pipeline(self) -> Callable:
        """The wrapped dataset's pipeline, which every sample goes through.

        It can be replaced (mmpretrain's ``browse_dataset.py`` swaps in a
        pipeline that records every intermediate image).
        """
        return self.dataset.pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Callable) -> None:
        self.dataset.pipeline = pipeline

    def _take_pipeline(self, pipeline: Sequence) -> None:
        if not isinstance(pipeline, Sequence) or isinstance(pipeline, str):
            raise InvalidInputError(
                'PartialLabelDataset pipeline must be a list of transforms '
                f'(dicts or callables), but got {pipeline!r}.')
        inner = getattr(self.dataset.pipeline, 'transforms', None)
        if pipeline and inner:
            raise InvalidInputError(
                'PartialLabelDataset got a pipeline, and so did the dataset '
                f'it wraps ({type(self.dataset).__name__}). Give it in one '
                'place only: train_dataloader.dataset.pipeline (where '
                "mmpretrain's tools look for it) or "
                'train_dataloader.dataset.dataset.pipeline.')
        # Built like mmpretrain's datasets build theirs, so that the types
        # resolve in the mmpretrain registry whatever the default scope.
        self.dataset.pipeline = Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
        ])

    def full_init(self) -> None:
        """Load the wrapped dataset and fix its partial-label matrix."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        if len(self.dataset) == 0:
            raise InvalidInputError(
                'PartialLabelDataset wraps an empty dataset '
                f'({type(self.dataset).__name__}); check its annotation file '
                'and split.')
        full = full_label_matrix(self.dataset)
        self._num_wrapped_known = int(np.count_nonzero(full))
        if self.partial_file is not None:
            self.partial_labels = load_partial_labels(
                self.partial_file, full.shape, full_labels=full)
        else:
            self.partial_labels = make_partial_labels(full, self.known_ratio,
                                                      self.seed)
        self._check_known_entries()
        self.fingerprint = split_fingerprint(self.partial_labels)
        self._fully_initialized = True
        self._log_summary()

    @property
    def source(self) -> str:
        """How the split was made, e.g. ``known_ratio=0.1, seed=0``."""
        if self.partial_file is not None:
            return f'partial_file={self.partial_file}'
        return f'known_ratio={self.known_ratio}, seed={self.seed}'

    def _check_known_entries(self) -> None:
        """Refuse a split without any known entry; warn about classes
        without a known positive."""
        num_images, num_classes = self.partial_labels.shape
        if not self.partial_labels.any():
            if self.partial_file is not None:
                fix = ('The file holds only zeros (all unknown); give a '
                       'split with known -1/1 entries, or use known_ratio.')
            else:
                expected = self.known_ratio * self._num_wrapped_known
                fix = (f'About {expected:.3g} entries were expected to '
                       'stay known; raise '
                       'known_ratio (the published runs use 0.1 to 0.9) or '
                       'use more images.')
            raise InvalidInputError(
                f'The partial-label split ({self.source}) leaves no label '
                f'known among {num_images} images x {num_classes} classes: '
                'training would see no label and its loss would be 0. '
                f'{fix}')
        without = np.flatnonzero(~(self.partial_labels > 0).any(axis=0))
        if len(without):
            classes = self.dataset.metainfo['classes']
            names = ', '.join(str(classes[i]) for i in without)
            MMLogger.get_current_instance().warning(
                f'Partial labels ({self.source}): {len(without)} of '
                f'{num_classes} classes have no known positive in this '
                f'split: {names}. They get no prototype and an all-zero '
                'co-occurrence row, and learn only from negatives. A higher '
                'known_ratio or more images gives them positives.')

    def _log_summary(self) -> None:
        known = self.partial_labels != 0
        no_positive = int((~(self.partial_labels > 0).any(axis=1)).sum())
        MMLogger.get_current_instance().info(
            f'Partial labels ({self.source}): {len(self.partial_labels)} '
            f'images x {self.partial_labels.shape[1]} classes, realised known '
            f'ratio {known.mean():.4f}, {no_positive} images without a known '
            f'positive, split fingerprint {self.fingerprint[:12]}.')

    def save(self, path: str) -> None:
        """Write the partial-label matrix as ``.npy`` for auditing/reuse
        (through a temporary file: a crash leaves no truncated split)."""
        with atomic_path(path) as tmp, open(tmp, 'wb') as f:
            np.save(f, self.partial_labels)

    def get_data_info(self, idx: int) -> dict:
        info = self.dataset.get_data_info(idx)
        partial = self.partial_labels[idx]
        info['gt_score'] = partial.astype(np.float32)
        info['gt_label'] = np.flatnonzero(partial > 0).tolist()
        info.pop('gt_label_difficult', None)
        return info

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        return self.dataset.pipeline(self.get_data_info(idx))

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return len(self.dataset)

    def __repr__(self) -> str:
        return (f'PartialLabelDataset({self.source},\n  '
                f'dataset={self.dataset!r})')
