"""Multi-label metric matching the published SARB evaluation protocol."""
import numbers
from collections import Counter
from collections.abc import Mapping
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric, DumpResults
from mmengine.fileio import dump
from mmengine.logging import MMLogger, print_log
from mmengine.structures import BaseDataElement
from mmpretrain.registry import METRICS

from sarb_mm.utils.paths import atomic_path
from .functional import (_to_numpy, multilabel_prf, split_partial_targets,
                         voc_average_precision)
from .report import (format_report_table, per_class_report, report_summary,
                     write_report_csv)

_PRF_NAMES = ('OP', 'OR', 'OF1', 'CP', 'CR', 'CF1')


def pack_targets(label: np.ndarray, valid: np.ndarray) -> dict:
    """One sample's targets as class indices, not two (C,) vectors.

    Kept per evaluated sample (and gathered from every rank), so they are
    stored sparse: the positive classes, and the entries left out of the
    metric or, where that is shorter (a natively partial dataset, where
    most entries are unknown), the entries it counts.
    """
    index = np.uint16 if len(label) <= 2**16 else np.uint32
    packed = dict(positives=np.flatnonzero(label).astype(index))
    if 2 * int(valid.sum()) < len(valid):
        packed['counted'] = np.flatnonzero(valid).astype(index)
    else:
        packed['ignored'] = np.flatnonzero(~valid).astype(index)
    return packed


def unpack_targets(results: Sequence[dict],
                   num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """The (N, C) boolean labels and validity of packed results."""
    labels = np.zeros((len(results), num_classes), dtype=bool)
    valid = np.ones((len(results), num_classes), dtype=bool)
    for row, result in enumerate(results):
        labels[row, result['positives']] = True
        if 'counted' in result:
            valid[row] = False
            valid[row, result['counted']] = True
        else:
            valid[row, result['ignored']] = False
    return labels, valid


@METRICS.register_module()
class InterpolatedMultiLabelMetric(BaseMetric):
    """VOC interpolated mAP plus overall / per-class precision, recall, F1.

    Unlike mmpretrain's ``AveragePrecision`` (non-interpolated), this uses
    the PASCAL VOC 2010+ all-point interpolated AP that the published numbers
    report. All values are returned x 100.

    Scores stay in float64 from the head through :meth:`process`, the
    collection across ranks (pickled as they are, with either
    ``collect_device``) and :meth:`compute_metrics`: in float32 the sigmoid
    is exactly 1.0 from a logit of about 16.6 on, which would tie confident
    images.

    Tied scores are one operating point of the precision/recall curve, as
    in scikit-learn's ``precision_recall_curve``: TP and FP are counted after
    the whole tie group, and the group's recall gain is weighted by its
    interpolated precision (see
    :func:`~sarb_mm.evaluation.voc_average_precision`). The top-k selection
    breaks ties by class index. So no metric depends on the order of the
    images. ``+-inf`` scores are ranked first / last.

    Every sample is checked in :meth:`process`, and a bad one raises a
    ``ValueError`` that names it (by ``sample_idx`` when its metainfo has
    one): missing ``pred_score`` / ``gt_label``, a ``pred_score`` that is not
    1-D, holds NaN, or whose width differs from the earlier samples, the
    ``num_classes`` of the sample or the ``classes`` of ``dataset_meta``;
    class indices that are negative (such as -1) or out of range; a
    multi-hot vector given as ``gt_label``; a ``gt_score`` with values
    other than -1 / 0 / 1 or that disagrees with ``gt_label``. Evaluating
    no sample at all is an error too.

    Partially labelled test data (samples with a -1/0/1 ``gt_score`` from a
    dataset whose metainfo sets ``partial_labels=True``, as the natively
    partial datasets such as ``JsonLinesPartialDataset`` do) is evaluated
    over the known entries only: an unknown (0) entry
    takes no part in its class's AP and P/R/F1, neither as a positive nor
    as a negative. A class without any known positive is left out of mAP
    and of the CP / CR means, with a warning, as a class without positives
    in a fully labelled set.

    Args:
        thr (float): Threshold on ``pred_score``. Scores are sigmoid
            probabilities, so 0.5 is the same as logit >= 0. Defaults to 0.5.
        topk (int, optional): Also report the P/R/F1 metrics with only each
            image's ``topk`` highest-scoring classes eligible, under keys
            suffixed ``_top{topk}``. None disables them. Defaults to 3.
        per_class (bool): Also report the AP of every class under
            ``AP_<classname>`` (class index when ``dataset_meta`` has no
            ``classes``). Classes that share a name get ``AP_<name>[<index>]``
            instead, with a warning. Defaults to False.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to None,
            meaning ``'interp-multi-label'`` (mmpretrain's ``AveragePrecision``
            uses ``'multi-label'`` for a different, non-interpolated mAP).
        collect_dir (str, optional): Directory for collecting results across
            ranks when ``collect_device='cpu'``. Defaults to None.
        report_file (str, optional): Also log a per-class table (class,
            AP, positives, predictions, TP, precision / recall / F1 at
            ``thr``; sorted by AP, classes without a positive last, marked
            excluded) and write it to this ``.csv`` file, overwritten at
            every evaluation (see :func:`~sarb_mm.evaluation.report.
            per_class_report`). Defaults to None (no report).
    """

    default_prefix: Optional[str] = 'interp-multi-label'

    def __init__(self,
                 thr: float = 0.5,
                 topk: Optional[int] = 3,
                 per_class: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 report_file: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if topk is not None and (isinstance(topk, bool)
                                 or not isinstance(topk, numbers.Integral)
                                 or topk < 1):
            raise ValueError('InterpolatedMultiLabelMetric: `topk` must be '
                             f'None or an integer >= 1, got {topk!r}.')
        if (isinstance(thr, bool) or not isinstance(thr, numbers.Real)
                or np.isnan(thr)):
            raise ValueError('InterpolatedMultiLabelMetric: `thr` must be a '
                             f'real number, got {thr!r}.')
        if not isinstance(per_class, bool):
            raise ValueError('InterpolatedMultiLabelMetric: `per_class` must '
                             f'be True or False, got {per_class!r}.')
        is_csv = isinstance(report_file,
                            str) and report_file.lower().endswith('.csv')
        if report_file is not None and not is_csv:
            raise ValueError('InterpolatedMultiLabelMetric: `report_file` '
                             'must be None or the path of a .csv file, got '
                             f'{report_file!r}.')
        self.thr = float(thr)
        self.report_file = report_file
        self.topk = None if topk is None else int(topk)
        self.per_class = per_class
        # Width of the first pred_score since the last evaluate(); every
        # later sample must match it.
        self._num_classes: Optional[int] = None
        self._num_seen = 0

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Check and store each sample's scores, labels and validity mask.

        One result per sample keeps ``collect_results`` able to drop the
        samples that the distributed sampler padded.

        Args:
            data_batch: A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs, each with
                ``pred_score`` (C,), ``gt_label`` (indices of positives) and
                optionally ``gt_label_difficult`` (indices to leave out of
                that class's evaluation unless also in ``gt_label``) and
                ``gt_score`` (partial labels, 1 / -1 / 0; the 0 entries,
                unknown, are left out of their class's evaluation).

        Raises:
            ValueError: If a sample is malformed (see the class docstring);
                the message names the sample.
        """
        checked, entries = [], []
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            if not isinstance(sample, Mapping):
                raise ValueError(
                    'InterpolatedMultiLabelMetric: each data sample must be '
                    'a DataSample or a dict with pred_score and gt_label, '
                    f'got {type(sample).__name__}.')
            where = self._describe(sample, self._num_seen)
            self._num_seen += 1
            score = self._check_score(sample, where)
            num_classes = score.shape[0]
            label = np.zeros(num_classes, dtype=bool)
            label[self._check_indices(sample, 'gt_label', num_classes,
                                      where)] = True
            valid = np.ones(num_classes, dtype=bool)
            if sample.get('gt_label_difficult') is not None:
                valid[self._check_indices(sample, 'gt_label_difficult',
                                          num_classes, where)] = False
                # As in the VOC devkit, an image with a non-difficult object
                # of the class stays a positive even if it also has a
                # difficult one; only "difficult-only" entries are ignored.
                valid |= label
            # Only a natively partial dataset's gt_score holds partial
            # labels: mmpretrain's data preprocessor (with num_classes) fills
            # gt_score with one-hot targets, whose 0s are negatives.
            if (sample.get('gt_score') is not None
                    and (self.dataset_meta or {}).get('partial_labels')):
                valid &= self._check_partial(sample, label, where)
            checked.append((where, score))
            entries.append(
                dict(pred_score=score, **pack_targets(label, valid)))
        # A batch is stored whole or not at all.
        self._check_nan(checked)
        self.results.extend(entries)

    def evaluate(self, size: int) -> dict:
        """Collect the results of all ranks and compute the metrics.

        Args:
            size (int): Length of the whole evaluated dataset.

        Returns:
            dict[str, float]: The metrics, keys prefixed.

        Raises:
            ValueError: If ``size`` is 0 or no sample was processed.
        """
        try:
            # Every rank sees the same size, so all of them stop here
            # together instead of leaving the others waiting.
            if size == 0:
                raise ValueError(self._empty_message())
            return super().evaluate(size)
        finally:
            self._num_classes = None
            self._num_seen = 0

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute mAP and the P/R/F1 metrics over all collected samples.

        Args:
            results (list[dict]): Per-sample results from :meth:`process`.

        Returns:
            dict[str, float]: Metric values x 100.

        Raises:
            ValueError: If ``results`` is empty or the samples (possibly
                from different ranks) have different numbers of classes.
        """
        if not results:
            raise ValueError(self._empty_message())
        widths = Counter(r['pred_score'].shape[0] for r in results)
        if len(widths) > 1:
            raise ValueError(
                'InterpolatedMultiLabelMetric: the collected samples have '
                'pred_score of different widths (number of samples per '
                f'width: {dict(widths)}); every sample must have one score '
                'per class of the dataset.')
        # float64 all along: np.stack keeps the dtype process() stored.
        scores = np.stack([r['pred_score'] for r in results])
        labels, valid = unpack_targets(results, scores.shape[1])
        names = self._class_names(scores.shape[1])

        ap = voc_average_precision(scores, labels, valid)
        missing = np.isnan(ap)
        if missing.any():
            MMLogger.get_current_instance().warning(
                f'{int(missing.sum())} class(es) have no (known) positive '
                'sample in the evaluated set and are left out of mAP: ' +
                ', '.join(names[i] for i in np.flatnonzero(missing)))
        # nanmean of an all-NaN array warns; NaN is the honest answer here.
        mean_ap = float('nan') if missing.all() else float(
            np.nanmean(ap) * 100)

        metrics = {'mAP': mean_ap}
        metrics.update(self._prf(scores, labels, valid, None, ''))
        if self.topk is not None:
            metrics.update(
                self._prf(scores, labels, valid, self.topk,
                          f'_top{self.topk}'))
        if self.per_class:
            for key, value in zip(self._per_class_keys(names), ap):
                metrics[key] = float(value * 100)
        if self.report_file is not None:
            self._report(scores, labels, valid, names, ap)
        return metrics

    def _report(self, scores, labels, valid, names, ap) -> None:
        """Log the per-class table and write it as CSV."""
        rows = per_class_report(scores, labels, names, self.thr, valid, ap)
        logger = MMLogger.get_current_instance()
        logger.info(format_report_table(rows, report_summary(rows, self.thr)))
        try:
            write_report_csv(rows, self.report_file)
        except OSError as err:
            raise ValueError(
                'InterpolatedMultiLabelMetric: cannot write the per-class '
                f'report to {self.report_file} ({err.strerror or err}); '
                'choose a writable report_file.') from None
        logger.info(f'Per-class report written to {self.report_file}.')

    def _prf(self, scores, labels, valid, topk, suffix) -> Dict[str, float]:
        values = multilabel_prf(
            scores, labels, thr=self.thr, topk=topk, valid=valid)
        return {
            name + suffix: float(v * 100)
            for name, v in zip(_PRF_NAMES, values)
        }

    def _meta_classes(self) -> Optional[List[str]]:
        classes = (self.dataset_meta or {}).get('classes')
        return None if classes is None else [str(c) for c in classes]

    def _class_names(self, num_classes: int) -> List[str]:
        classes = self._meta_classes()
        if classes is None:
            return [str(i) for i in range(num_classes)]
        if len(classes) != num_classes:
            raise ValueError(
                self._width_vs_meta('pred_score', num_classes, len(classes)))
        return classes

    @staticmethod
    def _per_class_keys(names: List[str]) -> List[str]:
        """``AP_<name>``, with ``[<index>]`` added to names used twice."""
        counts = Counter(names)
        duplicated = sorted(n for n, k in counts.items() if k > 1)
        if duplicated:
            MMLogger.get_current_instance().warning(
                'InterpolatedMultiLabelMetric: several classes share the '
                f'name(s) {duplicated}; their per-class AP is reported as '
                'AP_<name>[<class index>].')
        keys = [
            f'AP_{name}[{i}]' if counts[name] > 1 else f'AP_{name}'
            for i, name in enumerate(names)
        ]
        if len(set(keys)) != len(keys):
            # Only if a class is literally named like "dog[3]".
            raise ValueError(
                'InterpolatedMultiLabelMetric: the per-class AP keys are '
                f'ambiguous for the class names {names}; give the classes '
                'distinct names or set per_class=False.')
        return keys

    @staticmethod
    def _describe(sample: dict, position: int) -> str:
        """Name a sample in error messages, e.g. "the sample with
        sample_idx=12 (img_path='a.jpg')"."""
        idx, path = sample.get('sample_idx'), sample.get('img_path')
        if idx is not None and path is not None:
            return f'the sample with sample_idx={idx} (img_path={path!r})'
        if idx is not None:
            return f'the sample with sample_idx={idx}'
        if path is not None:
            return f'the sample with img_path={path!r}'
        return (f'sample #{position} of this process (counted from 0; it '
                'has no sample_idx)')

    def _check_score(self, sample: dict, where: str) -> np.ndarray:
        if sample.get('pred_score') is None:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: {where} has no pred_score. '
                'The model must output one score per class (mmpretrain '
                'heads set it with DataSample.set_pred_score).')
        score = _to_numpy(sample['pred_score'])
        if score.dtype.kind not in 'iuf':
            raise ValueError(
                f'InterpolatedMultiLabelMetric: pred_score of {where} must '
                f'hold real numbers, got dtype {score.dtype}.')
        if score.ndim != 1 or score.shape[0] == 0:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: pred_score of {where} must '
                'be a 1-D array with one score per class, got shape '
                f'{score.shape}.')
        # Never narrow: float32 would tie sigmoid scores near 1.
        score = score.astype(np.promote_types(score.dtype, np.float64))
        width = score.shape[0]
        if self._num_classes is None:
            self._num_classes = width
        elif width != self._num_classes:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: pred_score of {where} has '
                f'{width} scores, but the earlier samples had '
                f'{self._num_classes}. Every sample needs one score per '
                'class of the dataset.')
        declared = sample.get('num_classes')
        if declared is not None and int(declared) != width:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: pred_score of {where} has '
                f'{width} scores, but the sample declares num_classes='
                f'{int(declared)}: the model head and the dataset disagree '
                'on the number of classes.')
        classes = self._meta_classes()
        if classes is not None and len(classes) != width:
            raise ValueError(
                self._width_vs_meta(f'pred_score of {where}', width,
                                    len(classes)))
        return score

    @staticmethod
    def _width_vs_meta(subject: str, width: int, num_meta: int) -> str:
        return (f'InterpolatedMultiLabelMetric: {subject} has {width} '
                f'scores, but the dataset_meta lists {num_meta} classes: '
                'the model head and the dataset disagree on the number of '
                'classes (check num_classes in the model config).')

    @staticmethod
    def _check_indices(sample: dict, key: str, num_classes: int,
                       where: str) -> np.ndarray:
        """Return ``sample[key]`` as int64 class indices in [0, C)."""
        if sample.get(key) is None:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: {where} has no {key}. The '
                'evaluated dataset must provide the labels (DataSample.'
                'set_gt_label with the indices of the positive classes).')
        value = _to_numpy(sample[key])
        if value.ndim > 1:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: {key} of {where} must be a '
                'class index or a 1-D list of class indices, got shape '
                f'{value.shape}.')
        value = value.reshape(-1)
        if value.size == 0:
            return value.astype(np.int64)
        if value.dtype.kind not in 'iu':
            raise ValueError(
                f'InterpolatedMultiLabelMetric: {key} of {where} must hold '
                f'integer class indices, got dtype {value.dtype}. A 0/1 (or '
                'bool) vector over the classes is not an index list; '
                'convert it with np.flatnonzero.')
        if (value.size == num_classes and num_classes > 2
                and np.isin(value, (0, 1)).all()):
            raise ValueError(
                f'InterpolatedMultiLabelMetric: {key} of {where} looks like '
                f'a 0/1 vector over the {num_classes} classes ({value.size} '
                'entries, all 0 or 1), not a list of class indices; convert '
                'it with np.flatnonzero (one-hot scores belong in '
                'gt_score).')
        bad = value[(value < 0) | (value >= num_classes)]
        if bad.size:
            negative = ''
            if (bad < 0).any():
                negative = (' -1 is a label value of the -1/0/1 partial '
                            'labels (gt_score), not a class index; used as '
                            'an index it would silently mark the last class '
                            'positive.')
            raise ValueError(
                f'InterpolatedMultiLabelMetric: {key} of {where} has class '
                f'index(es) {sorted(set(bad.tolist()))} outside [0, '
                f'{num_classes - 1}] (pred_score has {num_classes} classes).' +
                negative)
        return value.astype(np.int64)

    @staticmethod
    def _check_partial(sample: dict, label: np.ndarray,
                       where: str) -> np.ndarray:
        """The known mask of a sample's -1/0/1 ``gt_score``."""
        targets = _to_numpy(sample['gt_score'])
        if targets.shape != label.shape:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: gt_score of {where} has '
                f'shape {targets.shape}, but pred_score has {label.shape[0]} '
                'classes; gt_score must hold one partial label (1 / -1 / 0 '
                'unknown) per class.')
        try:
            positive, known = split_partial_targets(targets)
        except ValueError as err:
            raise ValueError(f'InterpolatedMultiLabelMetric: gt_score of '
                             f'{where}: {err}') from None
        disagree = np.flatnonzero(positive != label)
        if disagree.size:
            raise ValueError(
                f'InterpolatedMultiLabelMetric: gt_label and gt_score of '
                f'{where} disagree on class(es) {disagree.tolist()}: '
                'gt_label must list exactly the classes whose gt_score is '
                '1. The dataset produced inconsistent labels.')
        return known

    @staticmethod
    def _check_nan(checked) -> None:
        """Refuse a batch with NaN scores, saying how many and where."""
        counts = [int(np.isnan(score).sum()) for _, score in checked]
        bad = [i for i, n in enumerate(counts) if n]
        if not bad:
            return
        where, score = checked[bad[0]]
        raise ValueError(
            f'InterpolatedMultiLabelMetric: pred_score of {where} has '
            f'{counts[bad[0]]} NaN value(s) out of {score.shape[0]} '
            f'classes; in this batch {len(bad)} of {len(checked)} sample(s) '
            f'have NaN scores, {sum(counts)} values in all. NaN cannot be '
            'ranked: the model produced NaN (check the checkpoint weights '
            'for NaN/inf, or the run for divergence). +-inf scores are '
            'allowed and ranked first / last.')

    @staticmethod
    def _empty_message() -> str:
        return ('InterpolatedMultiLabelMetric: no sample was evaluated, so '
                'there is nothing to compute metrics on. Check that the '
                'val/test dataset is not empty (its annotation file, split '
                'and data_root) and that the evaluation loop passes the '
                "model's data samples to the metric.")


@METRICS.register_module()
class DumpResultsWithClasses(DumpResults):
    """mmengine's ``DumpResults`` that also stores the class names.

    Every dumped sample dict gets a ``classes`` entry (the dataset's class
    names, one shared tuple, so the pickle holds it once), which lets
    ``tools/analysis/pr_curves.py`` name the classes without the config.
    The other entries are exactly mmengine's, so mmpretrain's tools read
    the file as before. It takes ``DumpResults``' arguments:
    ``out_file_path`` (the ``.pkl`` / ``.pickle`` file), ``collect_device``
    (default ``'cpu'``) and ``collect_dir``.
    """

    # Returns no metric; a prefix only silences mmengine's warning.
    default_prefix: Optional[str] = 'dump'

    def compute_metrics(self, results: list) -> dict:
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None:
            classes = tuple(str(c) for c in classes)
            for result in results:
                result['classes'] = classes
        # mmengine's dump writes in place: a full disk would leave a
        # truncated pickle behind.
        with atomic_path(self.out_file_path) as tmp:
            dump(results, tmp, file_format='pkl')
        print_log(
            f'Results have been saved to {self.out_file_path}.',
            logger='current')
        return {}
