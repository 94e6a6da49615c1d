"""Category-wise contrastive term of SARB (docs/method.md#losses)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from sarb_mm.utils.validation import check_weight


def _subsample(terms: torch.Tensor, num_pos: int,
               generator: Optional[torch.Generator]) -> torch.Tensor:
    """2P random terms plus the P largest (the published hard mining)."""
    if terms.numel() == 0:
        return terms
    perm = torch.randperm(
        terms.numel(), generator=generator, device=terms.device)
    random_terms = terms[perm[:2 * num_pos]]
    hardest = terms.sort(descending=True).values[:num_pos]
    return torch.cat([random_terms, hardest])


def category_contrastive_loss(
        features: torch.Tensor,
        targets: torch.Tensor,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Contrast each class's features across every image pair i < j.

    With s the cosine similarity of ``F[i,c]`` and ``F[j,c]``: both known
    positive gives ``1 - s``; one positive and one negative, or both
    negative, give ``1 + s``; pairs with an unknown side are ignored. With P
    positive-positive terms, the negative-negative and positive-negative
    terms are each cut to 2P random ones plus their P largest (negatives
    drawn first, in that order); with P = 0 all are kept. Terms are ordered
    pair-major (pairs (0,1), (0,2), ..., then classes) like the published
    code, so equal random draws select equal terms.

    Args:
        features (Tensor): Category features (B, C, D).
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        generator (torch.Generator, optional): Source of the random picks.

    Returns:
        Tensor: Mean of the kept terms in float32; 0 when there is none.
    """
    # float32 even under --amp: autocast would run the bmm in half.
    with torch.autocast(features.device.type, enabled=False):
        return _contrastive(features.float(), targets, generator)


def _contrastive(features: torch.Tensor, targets: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
    batch = features.shape[0]
    normed = F.normalize(features, dim=-1)
    first, second = torch.triu_indices(
        batch, batch, offset=1, device=features.device)
    # All pairs of one class in one batched product, then the i < j entries
    # (unique, so the indexing's backward accumulates deterministically).
    per_class = normed.transpose(0, 1)  # (C, B, D)
    cosine = torch.bmm(per_class, per_class.transpose(1, 2))[:, first,
                                                             second].T
    t_first, t_second = targets[first], targets[second]
    pos_pos = (t_first > 0) & (t_second > 0)
    neg_neg = (t_first < 0) & (t_second < 0)
    pos_neg = ((t_first > 0) & (t_second < 0)) | ((t_first < 0) &
                                                  (t_second > 0))
    pos_terms = (1 - cosine)[pos_pos]
    neg_neg_terms = (1 + cosine)[neg_neg]
    pos_neg_terms = (1 + cosine)[pos_neg]
    num_pos = pos_terms.numel()
    if num_pos > 0:
        neg_neg_terms = _subsample(neg_neg_terms, num_pos, generator)
        pos_neg_terms = _subsample(pos_neg_terms, num_pos, generator)
    terms = torch.cat([pos_terms, pos_neg_terms, neg_neg_terms])
    if terms.numel() == 0:
        return cosine.sum() * 0.0
    return terms.mean()


@MODELS.register_module()
class CategoryContrastiveLoss(nn.Module):
    """Module form of :func:`category_contrastive_loss`.

    Args:
        loss_weight (float): lambda_con. Defaults to 0.05 (published).
    """

    def __init__(self, loss_weight: float = 0.05) -> None:
        super().__init__()
        self.loss_weight = check_weight(loss_weight,
                                        'CategoryContrastiveLoss loss_weight')

    def forward(self, features: torch.Tensor, targets: torch.Tensor,
                **kwargs) -> torch.Tensor:
        return self.loss_weight * category_contrastive_loss(features, targets)
