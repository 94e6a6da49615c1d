"""Binary cross-entropy over the known entries of partial labels."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from sarb_mm.utils.validation import check_weight


def partial_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the entries with a known (non-zero) target.

    A positive target t (possibly soft, e.g. ``1 - alpha``) contributes
    ``BCE(x, t)``, a negative one ``BCE(-x, -t)``; unknown entries (t = 0)
    contribute nothing. Computed in float32 so that AMP cannot underflow it.

    Args:
        logits (Tensor): Logits x of shape (B, C).
        targets (Tensor): Targets t in [-1, 1] of shape (B, C).

    Returns:
        Tensor: Scalar loss; 0 (still differentiable) when nothing is known.
    """
    if logits.shape != targets.shape:
        raise ValueError(f'logits {tuple(logits.shape)} and targets '
                         f'{tuple(targets.shape)} must have the same shape.')
    logits = logits.float()
    targets = targets.float()
    sign = torch.sign(targets)
    per_entry = F.binary_cross_entropy_with_logits(
        sign * logits, targets.abs(), reduction='none')
    known = (targets != 0).float()
    return (per_entry * known).sum() / known.sum().clamp(min=1.0)


@MODELS.register_module()
class PartialBCELoss(nn.Module):
    """Partial-label BCE (docs/method.md#losses) as an mmpretrain loss.

    Drop-in for mmpretrain's multi-label heads, which pass the -1/0/1
    ``gt_score`` of each data sample as the target.

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_weight(loss_weight,
                                        'PartialBCELoss loss_weight')

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                avg_factor: Optional[float] = None,
                **kwargs) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (Tensor): Logits (B, C).
            label (Tensor): Partial targets (B, C) in [-1, 1], 0 = unknown.
            avg_factor: Ignored: the mean runs over known entries, which is
                the published normalisation (mmpretrain heads pass the batch
                size here).
        """
        return self.loss_weight * partial_bce(cls_score, label)
