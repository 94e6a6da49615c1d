"""Validate a prepared dataset as a config describes it.

The logic behind ``tools/misc/check_data.py``: build each split's dataset
from the config, read every image with the pipeline's own loader, and
count labels per class, so that a broken download or a wrong path shows up
in minutes instead of as a crash in the middle of an epoch.
"""
import copy
import functools
import multiprocessing
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.registry import DefaultScope
from mmengine.utils import ProgressBar
from mmpretrain.registry import DATASETS

from sarb_mm.utils.errors import InvalidInputError
from .partial_wrapper import sparse_label_matrix
from .transforms import CheckedLoadImageFromFile

SPLITS = ('train', 'val', 'test')


@dataclass
class SplitReport:
    """What the check found for one split.

    Attributes:
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        description (str): The dataset, e.g. its type and data root.
        classes (list[str]): Class names in index order.
        num_images (int): Images the dataset lists.
        positives, negatives, ignored (np.ndarray): Per class, images
            where it is a positive, a negative, or left out of the labels
            (VOC difficult-only objects with ``difficult='ignore'``).
        images_without_positive (int): Images with no positive class.
        partial_source (str, optional): How a partial-label split is made
            (``known_ratio=0.1, seed=0``); None for fully labelled data.
        known_positives, known_negatives, unknown (np.ndarray, optional):
            Per class, entries of the partial-label split.
        images_without_known_positive (int): Images of the split with no
            known positive.
        missing (list[str]): Image files that do not exist.
        unreadable (list[tuple[str, str]]): Image files that exist but
            cannot be read or decoded, or that the loader refuses, with
            the loader's message.
        images_checked (bool): Whether the image files were looked at.
        decoded (bool): Whether they were decoded (not only found).
        error (str, optional): Why the dataset could not be built.
        same_as (str, optional): The split whose dataset this one repeats
            (checked once).
        skipped (str, optional): Why the split was not checked.
    """
    split: str
    description: str = ''
    classes: List[str] = field(default_factory=list)
    num_images: int = 0
    positives: Optional[np.ndarray] = None
    negatives: Optional[np.ndarray] = None
    ignored: Optional[np.ndarray] = None
    images_without_positive: int = 0
    partial_source: Optional[str] = None
    known_positives: Optional[np.ndarray] = None
    known_negatives: Optional[np.ndarray] = None
    unknown: Optional[np.ndarray] = None
    images_without_known_positive: int = 0
    missing: List[str] = field(default_factory=list)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)
    images_checked: bool = False
    decoded: bool = False
    error: Optional[str] = None
    same_as: Optional[str] = None
    skipped: Optional[str] = None

    @property
    def classes_without_positive(self) -> List[int]:
        if self.positives is None:
            return []
        return np.flatnonzero(self.positives == 0).tolist()

    @property
    def classes_without_known_positive(self) -> List[int]:
        if self.known_positives is None:
            return []
        return np.flatnonzero(self.known_positives == 0).tolist()

    @property
    def problems(self) -> List[str]:
        """One line per kind of problem; empty when the split is fine."""
        if self.error is not None:
            return ['the dataset cannot be built']
        if self.same_as is not None or self.skipped is not None:
            return []
        found = []
        if self.num_images == 0:
            found.append('no image')
        if self.missing:
            found.append(f'{len(self.missing)} missing image file(s)')
        if self.unreadable:
            found.append(f'{len(self.unreadable)} unreadable image(s)')
        if self.classes_without_positive:
            found.append(f'{len(self.classes_without_positive)} class(es) '
                         'without any positive image')
        return found

    def to_dict(self) -> dict:
        """JSON-serialisable form (arrays as lists)."""
        out = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value,
                                                    np.ndarray) else value
        out['unreadable'] = [list(item) for item in self.unreadable]
        out['classes_without_positive'] = self.classes_without_positive
        out['classes_without_known_positive'] = \
            self.classes_without_known_positive
        out['problems'] = self.problems
        return out


def split_datasets(
        cfg, splits: Sequence[str]
) -> List[Tuple[str, Optional[dict], Optional[str]]]:
    """The dataset config of each requested split.

    Args:
        cfg (Config): The full config.
        splits (Sequence[str]): Among ``'train'``, ``'val'``, ``'test'``.

    Returns:
        list[tuple]: ``(split, dataset_cfg, same_as)``: ``dataset_cfg`` is
        None when the config has no such dataloader; ``same_as`` names an
        earlier split with an identical dataset (e.g. ``test_dataloader =
        val_dataloader``), which is then not checked twice.
    """
    result, seen = [], []
    for split in splits:
        if split not in SPLITS:
            raise InvalidInputError(
                f'Unknown split {split!r}; choose from {SPLITS}.')
        loader = cfg.get(f'{split}_dataloader')
        dataset = loader.get('dataset') if loader else None
        same_as = next((name for name, seen_cfg in seen
                        if dataset is not None and seen_cfg == dataset), None)
        if dataset is not None and same_as is None:
            seen.append((split, dataset))
        result.append((split, dataset, same_as))
    return result


def image_loader(dataset) -> CheckedLoadImageFromFile:
    """A checked loader configured like the dataset's pipeline loader.

    The first ``LoadImageFromFile`` of the pipeline gives the colour
    type, decoder backend and file backend; a
    :class:`CheckedLoadImageFromFile` keeps its size and pixel limits.
    Missing or undecodable files always raise here (``ignore_empty`` is
    turned off), because reporting them is the point.
    """
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', [])
    found = next((t for t in transforms if isinstance(t, LoadImageFromFile)),
                 None)
    if isinstance(found, CheckedLoadImageFromFile):
        loader = copy.copy(found)
    elif found is not None:
        loader = CheckedLoadImageFromFile(
            color_type=found.color_type,
            imdecode_backend=found.imdecode_backend,
            backend_args=found.backend_args)
    else:
        loader = CheckedLoadImageFromFile()
    loader.ignore_empty = False
    return loader


def check_image(loader: CheckedLoadImageFromFile, decode: bool,
                path: str) -> Tuple[str, Optional[str]]:
    """Read (and decode) one image.

    Args:
        loader (CheckedLoadImageFromFile): From :func:`image_loader`.
        decode (bool): Decode the image; False only checks that a regular
            file exists.
        path (str): The image path.

    Returns:
        tuple[str, str | None]: ``('ok', None)``, ``('missing', None)`` or
        ``('unreadable', message)``.
    """
    if not decode:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return 'missing', None
        except (OSError, ValueError) as err:
            return 'unreadable', f'Cannot access image file {path} ({err}).'
        if not stat.S_ISREG(info.st_mode):
            return 'unreadable', f'Image file {path} is not a regular file.'
        return 'ok', None
    try:
        loader.transform({'img_path': path})
    except FileNotFoundError:
        return 'missing', None
    except Exception as err:  # every decoder failure is a finding here
        return 'unreadable', str(err)
    return 'ok', None


def check_split(split: str,
                dataset_cfg: dict,
                decode: bool = True,
                check_images: bool = True,
                workers: int = 1,
                progress: bool = True,
                scope: Optional[str] = 'mmpretrain') -> SplitReport:
    """Build one split's dataset and check its images and labels.

    Args:
        split (str): Name of the split, for the report.
        dataset_cfg (dict): The dataloader's ``dataset`` config.
        decode (bool): Decode every image (else only check the files
            exist). Defaults to True.
        check_images (bool): Look at the image files at all. Defaults to
            True.
        workers (int): Processes that read images. Defaults to 1 (this
            process).
        progress (bool): Show mmengine's progress bar. Defaults to True.
        scope (str, optional): Registry scope the pipelines are built in
            (the config's ``default_scope``). Defaults to 'mmpretrain'.

    Returns:
        SplitReport: The findings; a dataset that cannot be built gives a
        report with ``error`` set.
    """
    report = SplitReport(split)
    try:
        # Pipelines name mmpretrain's transforms without a scope prefix.
        with DefaultScope.overwrite_default_scope(scope):
            dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
            dataset.full_init()  # a lazy_init dataset reads its files now
    except Exception as err:  # the message names the file and the fix
        report.error = f'{type(err).__name__}: {err}'
        return report
    partial = getattr(dataset, 'partial_labels', None)
    base = dataset.dataset if partial is not None else dataset
    report.description = _describe(dataset, base)
    report.classes = [str(c) for c in base.metainfo.get('classes', ())]
    report.num_images = len(base)

    full = sparse_label_matrix(base)
    report.positives = full.positive_counts()
    report.negatives = full.negative_counts()
    report.ignored = len(full) - report.positives - report.negatives
    report.images_without_positive = len(full) - full.images_with_positive()
    if partial is not None:
        report.partial_source = getattr(dataset, 'source', None)
        report.known_positives = (partial > 0).sum(0)
        report.known_negatives = (partial < 0).sum(0)
        report.unknown = (partial == 0).sum(0)
        report.images_without_known_positive = int(
            (~(partial > 0).any(1)).sum())

    if check_images and report.num_images:
        paths = [
            base.get_data_info(i)['img_path'] for i in range(report.num_images)
        ]
        check = functools.partial(check_image, image_loader(base), decode)
        results = list(_map(check, paths, workers, progress))
        for path, (status, message) in zip(paths, results):
            if status == 'missing':
                report.missing.append(path)
            elif status == 'unreadable':
                report.unreadable.append((path, message))
        report.images_checked = True
        report.decoded = decode
    return report


def _map(func: Callable, items: List, workers: int, progress: bool):
    """``map`` in order, in this process or a pool, with a progress bar."""
    bar = ProgressBar(len(items)) if progress else None
    # At most ~1000 redraws: a log file gets one line per redraw.
    step, pending = max(1, len(items) // 1000), 0

    def advance(done: bool = False) -> None:
        nonlocal pending
        pending += not done
        if bar is not None and pending and (pending >= step or done):
            bar.update(pending)
            pending = 0

    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            for result in pool.imap(func, items, chunksize=16):
                yield result
                advance()
    else:
        for item in items:
            yield func(item)
            advance()
    advance(done=True)
    if bar is not None:
        bar.file.write('\n')
        bar.file.flush()


def _describe(dataset, base) -> str:
    root = getattr(base, 'data_root', None)
    text = type(base).__name__ + (f' under {root}' if root else '')
    if dataset is not base:
        text = f'{type(dataset).__name__}({dataset.source}) of {text}'
    return text


def format_report(report: SplitReport, max_listed: int = 20) -> str:
    """A readable account of one split: files, then per-class counts."""
    lines = [f'== {report.split}: {report.description or "(not built)"}']
    if report.skipped is not None:
        return f'== {report.split}: skipped ({report.skipped})'
    if report.same_as is not None:
        return (f'== {report.split}: the same dataset as {report.same_as}, '
                'checked once')
    if report.error is not None:
        lines.append(f'The dataset cannot be built: {report.error}')
        return '\n'.join(lines)
    lines.append(f'{report.num_images} images, {len(report.classes)} '
                 'classes')
    if report.images_checked:
        how = 'read and decoded' if report.decoded else 'found'
        ok = report.num_images - len(report.missing) - len(report.unreadable)
        lines.append(f'{ok} of {report.num_images} images {how}')
        lines += _listing('Missing image files', report.missing, max_listed)
        lines += _listing('Unreadable images',
                          [message for _, message in report.unreadable],
                          max_listed)
    lines.append(_class_table(report))
    lines.append(f'Images without any positive class: '
                 f'{report.images_without_positive}')
    if report.partial_source is not None:
        lines.append(
            f'Partial labels ({report.partial_source}): known ratio '
            f'{_known_ratio(report):.4f}, '
            f'{report.images_without_known_positive} images without a known '
            'positive')
    if report.classes_without_positive:
        lines.append('Classes without any positive image: ' +
                     _names(report, report.classes_without_positive))
    if report.classes_without_known_positive:
        lines.append('Classes without a known positive in the partial-label '
                     'split (a warning: they get no prototype): ' +
                     _names(report, report.classes_without_known_positive))
    return '\n'.join(lines)


def format_summary(reports: Sequence[SplitReport]) -> str:
    """One line per split, then the verdict."""
    lines = ['Summary:']
    total = 0
    for report in reports:
        if report.skipped is not None:
            state = f'skipped ({report.skipped})'
        elif report.same_as is not None:
            state = f'same dataset as {report.same_as}'
        else:
            problems = report.problems
            total += len(problems)
            state = '; '.join(problems) if problems else 'OK'
            if report.error is None:
                state = f'{report.num_images} images: {state}'
        lines.append(f'  {report.split}: {state}')
    lines.append(
        f'{total} problem(s) found.' if total else 'No problem found.')
    return '\n'.join(lines)


def _listing(title: str, items: List[str], max_listed: int) -> List[str]:
    if not items:
        return []
    lines = [f'{title}: {len(items)}']
    lines += [f'  {item}' for item in items[:max_listed]]
    if len(items) > max_listed:
        lines.append(f'  ... and {len(items) - max_listed} more (raise '
                     '--max-listed, or use --out for the full list)')
    return lines


def _class_table(report: SplitReport) -> str:
    columns = [('positive', report.positives), ('negative', report.negatives)]
    if report.ignored is not None and report.ignored.any():
        columns.append(('ignored', report.ignored))
    if report.partial_source is not None:
        columns += [('known+', report.known_positives),
                    ('known-', report.known_negatives),
                    ('unknown', report.unknown)]
    width = max([5] + [len(c) for c in report.classes])
    header = f'  {"index":>5}  {"class":<{width}}' + ''.join(
        f'  {title:>8}' for title, _ in columns)
    rows = [header]
    for i, name in enumerate(report.classes):
        rows.append(f'  {i:>5}  {name:<{width}}' +
                    ''.join(f'  {int(values[i]):>8}' for _, values in columns))
    return 'Per-class image counts:\n' + '\n'.join(rows)


def _names(report: SplitReport, indices: List[int]) -> str:
    return ', '.join(f'{i} ({report.classes[i]})' for i in indices)


def _known_ratio(report: SplitReport) -> float:
    known = report.known_positives.sum() + report.known_negatives.sum()
    total = known + report.unknown.sum()
    return float(known / total) if total else 0.0
