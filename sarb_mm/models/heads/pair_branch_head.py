"""The pair co-occurrence branch that SST and HST add to the graph head."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from sarb_mm.utils.validation import check_int
from ..utils.pseudo_labels import class_pairs
from .graph_head import GraphClassifierHead


class PairBranchHead(GraphClassifierHead):
    """:class:`GraphClassifierHead` plus a pair co-occurrence branch.

    For every class pair i < j (ordered as :func:`class_pairs`), the branch
    predicts from the category features whether both classes occur in the
    image: ``w_ij . fc2(relu(fc1([R f_i; R f_j]))) + b_ij`` with a shared
    reduction R. Subclasses train it and read pseudo labels from it.

    Args:
        num_classes (int): Number of categories C.
        in_channels (int): Category feature width D. Defaults to 1024.
        out_channels (int): Classifier width D_out. Defaults to 1024.
        pair_channels (int): Width of the pair branch's reduction.
            Defaults to 512.
        num_steps (int): Graph propagation steps T. Defaults to 3.
        loss (dict): Partial-label loss of the main branch.
        contrastive_loss (dict, optional): Category-wise contrastive term;
            None disables it.
        thr (float): Score threshold of ``pred_label``. Defaults to 0.5.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 1024,
                 out_channels: int = 1024,
                 pair_channels: int = 512,
                 num_steps: int = 3,
                 loss: dict = dict(type='PartialBCELoss'),
                 contrastive_loss: Optional[dict] = None,
                 thr: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            num_classes,
            in_channels,
            out_channels,
            num_steps,
            loss=loss,
            contrastive_loss=contrastive_loss,
            thr=thr,
            init_cfg=init_cfg)
        pair_channels = check_int(pair_channels,
                                  f'{type(self).__name__} pair_channels')
        num_pairs = num_classes * (num_classes - 1) // 2
        self.pair_reduce = nn.Linear(in_channels, pair_channels)
        self.pair_fc1 = nn.Linear(2 * pair_channels, out_channels)
        self.pair_fc2 = nn.Linear(out_channels, out_channels)
        bound = 1 / math.sqrt(out_channels)
        self.pair_weight = nn.Parameter(
            torch.empty(num_pairs, out_channels).uniform_(-bound, bound))
        self.pair_bias = nn.Parameter(
            torch.empty(num_pairs).uniform_(-bound, bound))

    def pair_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Co-occurrence logits (B, C(C-1)/2) of the class pairs i < j."""
        first, second = class_pairs(self.num_classes, features.device)
        reduced = self.pair_reduce(features)
        pairs = torch.cat([reduced[:, first], reduced[:, second]], dim=2)
        hidden = self.pair_fc2(F.relu(self.pair_fc1(pairs)))
        return (hidden * self.pair_weight).sum(-1) + self.pair_bias
