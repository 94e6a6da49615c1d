"""Multi-label metric matching the published SARB evaluation protocol."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.structures import BaseDataElement
from mmpretrain.registry import METRICS

from .functional import _to_numpy, multilabel_prf, voc_average_precision

_PRF_NAMES = ('OP', 'OR', 'OF1', 'CP', 'CR', 'CF1')


@METRICS.register_module()
class InterpolatedMultiLabelMetric(BaseMetric):
    """VOC interpolated mAP plus overall / per-class precision, recall, F1.

    Unlike mmpretrain's ``AveragePrecision`` (non-interpolated), this uses
    the PASCAL VOC 2010+ all-point interpolated AP that the published numbers
    report. All values are returned x 100.

    Args:
        thr (float): Threshold on ``pred_score``. Scores are sigmoid
            probabilities, so 0.5 is the same as logit >= 0. Defaults to 0.5.
        topk (int, optional): Also report the P/R/F1 metrics with only each
            image's ``topk`` highest-scoring classes eligible, under keys
            suffixed ``_top{topk}``. None disables them. Defaults to 3.
        per_class (bool): Also report ``AP_<classname>`` for every class
            (class index when ``dataset_meta`` has no ``classes``).
            Defaults to False.
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to None,
            meaning ``'interp-multi-label'`` (mmpretrain's ``AveragePrecision``
            uses ``'multi-label'`` for a different, non-interpolated mAP).
        collect_dir (str, optional): Directory for collecting results across
            ranks when ``collect_device='cpu'``. Defaults to None.
    """

    default_prefix: Optional[str] = 'interp-multi-label'

    def __init__(self,
                 thr: float = 0.5,
                 topk: Optional[int] = 3,
                 per_class: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        if topk is not None and topk < 1:
            raise ValueError(f'`topk` must be None or >= 1, got {topk}.')
        self.thr = thr
        self.topk = topk
        self.per_class = per_class

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each sample's scores, one-hot labels and validity mask.

        One result per sample keeps ``collect_results`` able to drop the
        samples that the distributed sampler padded.

        Args:
            data_batch: A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs, each with
                ``pred_score`` (C,), ``gt_label`` (indices of positives) and
                optionally ``gt_label_difficult`` (indices to leave out of
                that class's evaluation unless also in ``gt_label``).
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            score = _to_numpy(sample['pred_score']).astype(np.float32)
            num_classes = score.shape[-1]
            label = np.zeros(num_classes, dtype=bool)
            label[self._indices(sample['gt_label'])] = True
            valid = np.ones(num_classes, dtype=bool)
            difficult = sample.get('gt_label_difficult')
            if difficult is not None:
                valid[self._indices(difficult)] = False
                # As in the VOC devkit, an image with a non-difficult object
                # of the class stays a positive even if it also has a
                # difficult one; only "difficult-only" entries are ignored.
                valid |= label
            self.results.append(
                dict(pred_score=score, gt_label=label, valid=valid))

    @staticmethod
    def _indices(value) -> np.ndarray:
        return _to_numpy(value).astype(np.int64).reshape(-1)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute mAP and the P/R/F1 metrics over all collected samples.

        Args:
            results (list[dict]): Per-sample results from :meth:`process`.

        Returns:
            dict[str, float]: Metric values x 100.
        """
        scores = np.stack([r['pred_score'] for r in results])
        labels = np.stack([r['gt_label'] for r in results])
        valid = np.stack([r['valid'] for r in results])
        names = self._class_names(scores.shape[1])

        ap = voc_average_precision(scores, labels, valid)
        missing = np.isnan(ap)
        if missing.any():
            MMLogger.get_current_instance().warning(
                f'{int(missing.sum())} class(es) have no positive sample in '
                'the evaluated set and are left out of mAP: ' +
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
            for name, value in zip(names, ap):
                metrics[f'AP_{name}'] = float(value * 100)
        return metrics

    def _prf(self, scores, labels, valid, topk, suffix) -> Dict[str, float]:
        values = multilabel_prf(
            scores, labels, thr=self.thr, topk=topk, valid=valid)
        return {
            name + suffix: float(v * 100)
            for name, v in zip(_PRF_NAMES, values)
        }

    def _class_names(self, num_classes: int) -> List[str]:
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None and len(classes) == num_classes:
            return [str(c) for c in classes]
        return [str(i) for i in range(num_classes)]
