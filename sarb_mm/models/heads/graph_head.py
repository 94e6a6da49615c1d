"""The graph interaction and element-wise classifier shared by the heads."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.heads import MultiLabelClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from sarb_mm.utils.validation import check_int
from ..utils import GatedGraphPropagation
from ..utils.graph import masked_rows_linear


class GraphClassifierHead(MultiLabelClsHead):
    """Gated graph propagation over the classes and a per-class classifier.

    The part that SARB and SST share: T steps of gated propagation over the
    label co-occurrence matrix of the training partial labels (a buffer set
    by ``LabelGraphHook`` or ``PrototypeHook``, saved in checkpoints), then
    ``tanh(fc([h; f]))`` and one linear unit per class. Subclasses add their
    training branches in :meth:`loss`.

    Args:
        num_classes (int): Number of categories C.
        in_channels (int): Category feature width D. Defaults to 1024.
        out_channels (int): Classifier width D_out. Defaults to 1024.
        num_steps (int): Graph propagation steps T. Defaults to 3.
        loss (dict): Partial-label loss of the main branch.
        contrastive_loss (dict, optional): Category-wise contrastive term
            (``CategoryContrastiveLoss``); None disables it.
        thr (float): Score threshold of ``pred_label``. Defaults to 0.5.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 1024,
                 out_channels: int = 1024,
                 num_steps: int = 3,
                 loss: dict = dict(type='PartialBCELoss'),
                 contrastive_loss: Optional[dict] = None,
                 thr: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(loss=loss, thr=thr, init_cfg=init_cfg)
        self.contrastive_loss = (
            MODELS.build(contrastive_loss)
            if contrastive_loss is not None else None)
        name = type(self).__name__
        self.num_classes = check_int(num_classes, f'{name} num_classes')
        in_channels = check_int(in_channels, f'{name} in_channels')
        out_channels = check_int(out_channels, f'{name} out_channels')
        num_steps = check_int(num_steps, f'{name} num_steps')
        self.graph = GatedGraphPropagation(in_channels, num_steps)
        self.fc = nn.Linear(2 * in_channels, out_channels)
        bound = 1 / math.sqrt(out_channels)
        self.class_weight = nn.Parameter(
            torch.empty(num_classes, out_channels).uniform_(-bound, bound))
        self.class_bias = nn.Parameter(
            torch.empty(num_classes).uniform_(-bound, bound))
        self.register_buffer('cooccurrence',
                             torch.zeros(num_classes, num_classes))
        self.progress: Optional[Tuple[int, int, int]] = None

    def set_progress(self, epoch: int, iter_in_epoch: int,
                     iters_per_epoch: int) -> None:
        """Tell the head where training is (schedules, warm-ups)."""
        self.progress = (epoch, iter_in_epoch, iters_per_epoch)

    def _require_progress(self) -> Tuple[int, int, int]:
        if self.progress is None:
            raise RuntimeError(
                f'{type(self).__name__} does not know the training progress: '
                "add dict(type='LabelGraphHook') (or PrototypeHook for SARB) "
                'to custom_hooks.')
        return self.progress

    def warmup(self) -> float:
        """The published first-epoch ramp: iteration / iterations per epoch
        in epoch 0, then 1."""
        epoch, iter_in_epoch, iters_per_epoch = self._require_progress()
        return iter_in_epoch / iters_per_epoch if epoch == 0 else 1.0

    def add_contrastive_term(self, losses: dict, features: torch.Tensor,
                             targets: torch.Tensor) -> None:
        """``losses['loss_con']``: the contrastive term with the published
        first-epoch ramp, if the head has one."""
        if self.contrastive_loss is not None:
            losses['loss_con'] = self.warmup() * self.contrastive_loss(
                features, targets)

    def idle_parameters(self) -> List[nn.Parameter]:
        """Parameters that take no part in the current step's loss (their
        zero gradient is dropped before the optimizer step)."""
        return []

    def classify(
        self,
        features: torch.Tensor,
        variants: Sequence[Tuple[torch.Tensor, torch.Tensor]] = ()
    ) -> torch.Tensor:
        """Logits of category features (B, C, D) and of blended variants.

        Args:
            features (Tensor): Category features F (B, C, D).
            variants: ``(delta, mask)`` pairs for ``F + delta`` with delta
                zero outside the bool (B, C) mask; they share F's work
                where the math allows (see ``GatedGraphPropagation``).

        Returns:
            Tensor: Logits ((1 + len(variants)) * B, C), F's first.
        """
        nodes = self.graph(features, self.cooccurrence, variants)
        width = features.shape[-1]
        # fc([h; f]) = W_h h + W_f f + b, and W_f (F + delta) = W_f F +
        # W_f delta with delta nonzero on the masked rows only.
        own = F.linear(features, self.fc.weight[:, width:])
        own = torch.cat([own] + [
            own + masked_rows_linear(delta, mask, self.fc.weight[:, width:])
            for delta, mask in variants
        ])
        hidden = torch.tanh(
            F.linear(nodes, self.fc.weight[:, :width], self.fc.bias) + own)
        return (hidden * self.class_weight).sum(-1) + self.class_bias

    def pre_logits(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return feats[-1]

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Main-branch logits; the scores are their sigmoid."""
        return self.classify(self.pre_logits(feats))

    def _get_predictions(self, cls_score: torch.Tensor,
                         data_samples: List[DataSample]):
        # float32 sigmoid is exactly 1.0 from logit ~16.6 on, which would tie
        # confident images in the mAP ranking; float64 keeps their order.
        return super()._get_predictions(cls_score.double(), data_samples)

    def _partial_targets(self, data_samples: List[DataSample],
                         device: torch.device) -> torch.Tensor:
        if 'gt_score' not in data_samples[0]:
            raise ValueError(
                f'{type(self).__name__} needs -1/0/1 partial labels '
                '(gt_score) in the data '
                'samples: wrap the training dataset in '
                "dict(type='PartialLabelDataset', ...).")
        targets = torch.stack([s.gt_score for s in data_samples])
        return targets.to(device=device, dtype=torch.float32)


class ClassPrototypes:
    """K prototypes per class, computed from the training set by
    ``PrototypeHook`` (K-means of the known-positive category features) and
    kept in buffers, so checkpoints carry them.

    A mixin for graph heads: ``_register_prototypes`` in ``__init__``;
    ``prototype_start_epoch`` and ``uses_prototypes`` tell the hook when
    the head needs them.
    """

    def _register_prototypes(self, num_prototypes: int, channels: int) -> None:
        self.num_prototypes = check_int(
            num_prototypes, f'{type(self).__name__} num_prototypes')
        self.register_buffer(
            'prototypes',
            torch.zeros(self.num_classes, self.num_prototypes, channels))
        self.register_buffer('prototype_mask',
                             torch.zeros(self.num_classes, dtype=torch.bool))

    @property
    def has_prototypes(self) -> bool:
        return bool(self.prototype_mask.any())

    def set_prototypes(self, prototypes: torch.Tensor,
                       mask: torch.Tensor) -> None:
        self.prototypes.copy_(prototypes)
        self.prototype_mask.copy_(mask)
