"""Test-time augmentation whose predicted labels follow the merged score."""
from typing import List

import torch
from mmpretrain.models.tta import AverageClsScoreTTA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def labels_from_score(score: torch.Tensor, thr, topk) -> torch.Tensor:
    """Class indices a multi-label head predicts from ``score``: those at or
    above ``thr``, or else the ``topk`` best (mmpretrain's rule)."""
    if thr is not None:
        return torch.where(score >= thr)[0]
    return score.topk(topk).indices


@MODELS.register_module()
class MultiLabelAverageScoreTTA(AverageClsScoreTTA):
    """mmpretrain's ``AverageClsScoreTTA`` for multi-label heads.

    mmpretrain averages ``pred_score`` over the views but keeps no
    ``pred_label``, so a dumped prediction or a drawn image would show no
    labels (or, for a stale copy, the first view's). Here the labels are
    taken again from the averaged score with the head's ``thr`` / ``topk``.
    """

    def merge_preds(
            self,
            data_samples_list: List[List[DataSample]]) -> List[DataSample]:
        merged = super().merge_preds(data_samples_list)
        head = self.module.head
        for sample in merged:
            sample.set_pred_label(
                labels_from_score(sample.pred_score, head.thr, head.topk))
        return merged
