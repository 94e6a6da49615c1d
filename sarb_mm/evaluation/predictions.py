"""Prediction files: the plain-data ``.npz`` format and safe ``.pkl`` reads.

``tools/test.py --out preds.npz`` writes :class:`DumpPredictionArrays`'
archive: plain arrays that ``np.load(allow_pickle=False)`` reads, safe to
send to others. ``--out preds.pkl`` keeps mmengine's ``DumpResults``
pickle (what mmpretrain's tools read); this project reads such pickles
only through :func:`~sarb_mm.utils.safe_pickle.load_pickle_data`, which
refuses anything but plain data.

The ``.npz`` archive holds:

- ``scores``: (N, C) float64, the model's score of every class;
- ``targets``: (N, C) int8, 1 positive, 0 negative, -1 left out of that
  class's evaluation (difficult, or an unknown partial label);
- ``classes``: (C,) str, the class names;
- ``img_paths``: (N,) str, the image of each row (``''`` when unknown).
"""
import os
import zipfile
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.npy import read_npy_header
from sarb_mm.utils.paths import atomic_path, check_input_file
from sarb_mm.utils.safe_pickle import load_pickle_data
from .metrics import InterpolatedMultiLabelMetric, unpack_targets

ARRAY_KEYS = ('scores', 'targets', 'classes', 'img_paths')
# A deflated member that claims to expand more than this is a zip bomb,
# not scores (random floats barely compress; the sparse int8 targets of
# real datasets stay far below it).
MAX_EXPANSION = 1024


def save_prediction_arrays(path: str, scores: np.ndarray, targets: np.ndarray,
                           classes: Sequence[str],
                           img_paths: Sequence[str]) -> None:
    """Write the ``.npz`` prediction archive (atomically: a full disk
    leaves no truncated file)."""
    arrays = dict(
        scores=np.asarray(scores, dtype=np.float64),
        targets=np.asarray(targets, dtype=np.int8),
        classes=np.asarray([str(c) for c in classes], dtype=str),
        img_paths=np.asarray([str(p) for p in img_paths], dtype=str))
    # Through a file object: np.savez appends '.npz' to a name that does
    # not end in it (e.g. 'preds.NPZ').
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.savez(f, **arrays)


def load_prediction_arrays(path: str) -> Dict[str, np.ndarray]:
    """Read and check a ``.npz`` prediction archive.

    Every member's ``.npy`` header is checked before its data is
    allocated (dtype, shape against the other members, declared size
    against the archive), and nothing is unpickled.

    Returns:
        dict: ``scores`` (N, C) float64, ``labels`` and ``valid`` (N, C)
        bool, ``classes`` (list of str) and ``img_paths`` (list of str).

    Raises:
        InvalidInputError: Naming the file and what is wrong with it.
    """
    check_input_file(path, 'Predictions file')
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = _read_members(archive, path, os.path.getsize(path))
    except MemoryError:
        raise InvalidInputError(
            f'Predictions file {path} declares more data than fits in '
            'memory; it is not a predictions file of tools/test.py.') from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise InvalidInputError(
            f'Predictions file {path} is not a readable .npz archive '
            f'({err}); give the .npz that tools/test.py --out wrote.'
        ) from None
    scores, targets = arrays['scores'], arrays['targets']
    if scores.ndim != 2 or targets.shape != scores.shape or 0 in scores.shape:
        raise InvalidInputError(
            f'Predictions file {path}: scores {scores.shape} and targets '
            f'{targets.shape} must both be (images, classes), at least one '
            'of each.')
    num_classes = scores.shape[1]
    if arrays['classes'].shape != (num_classes, ):
        raise InvalidInputError(
            f'Predictions file {path}: {arrays["classes"].shape[0]} class '
            f'names for {num_classes} score columns.')
    if arrays['img_paths'].shape != (scores.shape[0], ):
        raise InvalidInputError(
            f'Predictions file {path}: {arrays["img_paths"].shape[0]} image '
            f'paths for {scores.shape[0]} score rows.')
    bad = ~np.isin(targets, (-1, 0, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InvalidInputError(
            f'Predictions file {path}: targets[{row}, {col}] is '
            f'{targets[row, col]}; targets are 1 (positive), 0 (negative) '
            'or -1 (left out).')
    return dict(
        scores=scores.astype(np.float64),
        labels=targets == 1,
        valid=targets != -1,
        classes=[str(c) for c in arrays['classes']],
        img_paths=[str(p) for p in arrays['img_paths']])


def _read_members(archive: zipfile.ZipFile, path: str, file_size: int) -> dict:
    members = {info.filename: info for info in archive.infolist()}
    missing = [k for k in ARRAY_KEYS if f'{k}.npy' not in members]
    if missing:
        raise InvalidInputError(
            f'Predictions file {path} lacks the array(s) {missing}; it holds '
            f'{sorted(members)}. Give the .npz that tools/test.py --out '
            'wrote.')
    kinds = dict(scores='fiu', targets='iu', classes='U', img_paths='U')
    # The sizes in the zip directory are the file's own claims: bound them
    # by the real file size.
    stored = sum(members[f'{k}.npy'].compress_size for k in ARRAY_KEYS)
    expanded = sum(members[f'{k}.npy'].file_size for k in ARRAY_KEYS)
    if stored > file_size or expanded > MAX_EXPANSION * max(file_size, 1):
        raise InvalidInputError(
            f'Predictions file {path}: its arrays claim {expanded} bytes '
            f'({stored} stored) in a file of {file_size}; refused as forged '
            'or a zip bomb.')
    arrays = {}
    for key in ARRAY_KEYS:
        info = members[f'{key}.npy']
        if (info.compress_type != zipfile.ZIP_STORED and info.file_size
                > MAX_EXPANSION * max(info.compress_size, 1)):
            raise InvalidInputError(
                f'Predictions file {path}: {key}.npy claims to expand '
                f'{info.file_size} bytes from {info.compress_size}; refused '
                'as a zip bomb.')
        with archive.open(info) as f:
            shape, dtype = read_npy_header(f)
            if (dtype.kind not in kinds[key] or dtype.fields is not None
                    or dtype.itemsize == 0):
                raise InvalidInputError(
                    f'Predictions file {path}: {key} has dtype {dtype}; '
                    'expected ' +
                    ('numbers' if key in ('scores', 'targets') else 'text') +
                    ' (object arrays are pickles and are never loaded).')
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared > info.file_size:
                raise InvalidInputError(
                    f'Predictions file {path}: {key}.npy declares shape '
                    f'{shape} ({declared} bytes) but holds '
                    f'{info.file_size} bytes; it is truncated or forged.')
        with archive.open(info) as f:
            arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    return arrays


def load_prediction_pickle(path: str) -> List[dict]:
    """The per-sample dicts of an mmengine ``DumpResults`` pickle, loaded
    without running code (see :mod:`sarb_mm.utils.safe_pickle`)."""
    samples = load_pickle_data(path, 'Predictions file')
    if (not isinstance(samples, list) or not samples
            or not all(isinstance(s, dict) for s in samples)):
        raise InvalidInputError(
            f'{path} does not hold a non-empty list of prediction dicts; '
            'give the .pkl that tools/test.py --out wrote (not one written '
            'with --out-item metrics).')
    return samples


def samples_to_arrays(samples: List[dict],
                      classes: Optional[Sequence[str]] = None,
                      partial_labels: bool = False,
                      where: str = 'predictions') -> Dict[str, np.ndarray]:
    """Scores, labels and validity (N, C) of per-sample prediction dicts,
    checked and converted as :class:`InterpolatedMultiLabelMetric` does.

    Raises:
        InvalidInputError: A malformed sample, naming ``where``.
    """
    metric = InterpolatedMultiLabelMetric(topk=None)
    meta = dict(partial_labels=partial_labels)
    if classes is not None:
        meta['classes'] = tuple(classes)
    metric.dataset_meta = meta
    try:
        metric.process(None, samples)
    except ValueError as err:
        raise InvalidInputError(f'{where}: {err}') from None
    results = metric.results
    scores = np.stack([r['pred_score'] for r in results])
    labels, valid = unpack_targets(results, scores.shape[1])
    return dict(scores=scores, labels=labels, valid=valid)


@METRICS.register_module()
class DumpPredictionArrays(BaseMetric):
    """Write the test predictions as a plain-data ``.npz`` archive.

    The scores and targets are converted exactly as
    :class:`InterpolatedMultiLabelMetric` evaluates them (difficult and
    unknown entries become -1), so the archive reproduces the metric's
    numbers. Returns no metric.

    Args:
        out_file_path (str): The ``.npz`` file.
        collect_device (str): Device used to collect results across ranks.
            Defaults to 'cpu'.
        collect_dir (str, optional): Directory for collecting results across
            ranks when ``collect_device='cpu'``. Defaults to None.
    """

    default_prefix: Optional[str] = 'dump'

    def __init__(self,
                 out_file_path: str,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device, collect_dir=collect_dir)
        if not str(out_file_path).lower().endswith('.npz'):
            raise InvalidInputError(
                f'DumpPredictionArrays: out_file_path {out_file_path} must '
                'end with .npz.')
        self.out_file_path = os.fspath(out_file_path)

    def process(self, data_batch, data_samples: Sequence) -> None:
        meta = self.dataset_meta or {}
        samples = [
            s.to_dict() if hasattr(s, 'to_dict') else s for s in data_samples
        ]
        arrays = samples_to_arrays(samples, meta.get('classes'),
                                   bool(meta.get('partial_labels')),
                                   'DumpPredictionArrays')
        for i, sample in enumerate(samples):
            self.results.append(
                dict(
                    pred_score=arrays['scores'][i],
                    target=np.where(arrays['valid'][i],
                                    arrays['labels'][i].astype(np.int8),
                                    np.int8(-1)),
                    img_path=str(sample.get('img_path') or '')))

    def compute_metrics(self, results: list) -> dict:
        scores = np.stack([r['pred_score'] for r in results])
        classes = (self.dataset_meta or {}).get('classes')
        if classes is None:
            classes = [str(i) for i in range(scores.shape[1])]
        save_prediction_arrays(self.out_file_path, scores,
                               np.stack([r['target'] for r in results]),
                               classes, [r['img_path'] for r in results])
        print_log(
            f'Predictions written to {self.out_file_path}.', logger='current')
        return {}
