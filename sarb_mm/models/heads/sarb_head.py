"""SARB head: graph interaction, classifier and the two blending branches."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from sarb_mm.utils.validation import check_int, check_weight
from ..utils import (blend_entries, draw_prototype_classes, instance_blend,
                     instance_blend_mask, prototype_blend_mask)
from .graph_head import ClassPrototypes, GraphClassifierHead


@MODELS.register_module()
class SARBHead(ClassPrototypes, GraphClassifierHead):
    """Graph interaction + per-class classifier, with ILRB and PLRB.

    The main branch classifies the category features; in training, from
    ``blend_start_epoch`` on, the instance- (ILRB) and prototype-level
    (PLRB) blended copies go through the same weights in one batch of 3B.
    The co-occurrence matrix, the prototypes and the training progress are
    set by ``PrototypeHook``.

    Args:
        num_classes (int): Number of categories C.
        in_channels (int): Category feature width D. Defaults to 1024.
        out_channels (int): Classifier width D_out. Defaults to 1024.
        num_steps (int): Graph propagation steps T. Defaults to 3.
        num_prototypes (int): Prototypes per class K. Defaults to 10.
        blend_start_epoch (int): First epoch (from 0) with blending.
            Defaults to 5.
        use_ilrb (bool): Train the ILRB branch. Defaults to True.
        use_plrb (bool): Train the PLRB branch. Defaults to True.
        loss (dict): Partial-label loss of every branch.
        ilrb_loss_weight (float): Weight of the ILRB loss. Defaults to 1.
        plrb_loss_weight (float): Weight of the PLRB loss. Defaults to 1.
        contrastive_loss (dict, optional): Category-wise contrastive term;
            None disables it.
        thr (float): Score threshold of ``pred_label``. Defaults to 0.5.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 1024,
                 out_channels: int = 1024,
                 num_steps: int = 3,
                 num_prototypes: int = 10,
                 blend_start_epoch: int = 5,
                 use_ilrb: bool = True,
                 use_plrb: bool = True,
                 loss: dict = dict(type='PartialBCELoss'),
                 ilrb_loss_weight: float = 1.0,
                 plrb_loss_weight: float = 1.0,
                 contrastive_loss: Optional[dict] = dict(
                     type='CategoryContrastiveLoss', loss_weight=0.05),
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
        self.blend_start_epoch = check_int(
            blend_start_epoch, 'SARBHead blend_start_epoch', minimum=0)
        self.use_ilrb = use_ilrb
        self.use_plrb = use_plrb
        self.ilrb_loss_weight = check_weight(ilrb_loss_weight,
                                             'SARBHead ilrb_loss_weight')
        self.plrb_loss_weight = check_weight(plrb_loss_weight,
                                             'SARBHead plrb_loss_weight')

        # Learnable blending weights, clamped into [0, 1] at every blending
        # step (clamp_blend_weights).
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.beta = nn.Parameter(torch.tensor(0.5))
        self._register_prototypes(num_prototypes, in_channels)

    @property
    def prototype_start_epoch(self) -> int:
        return self.blend_start_epoch

    @property
    def uses_prototypes(self) -> bool:
        return self.use_plrb

    def blending_active(self) -> Tuple[bool, bool]:
        """Whether the ILRB and the PLRB branch run at the current step."""
        if self.progress is None:
            return False, False
        started = self.progress[0] >= self.blend_start_epoch
        return (started and self.use_ilrb, started and self.use_plrb
                and self.has_prototypes)

    def idle_parameters(self) -> List[nn.Parameter]:
        """Parameters that take no part in the current step's loss.

        alpha before ILRB runs, beta before PLRB runs (or with the branch
        off). The published optimizer skips them because their gradient is
        missing; ``PrototypeHook`` drops the zero gradient they get here
        (see :meth:`loss`) right before each optimizer step, so that weight
        decay and momentum leave them and their state untouched too.
        """
        ilrb, plrb = self.blending_active()
        return [
            p for p, active in ((self.alpha, ilrb), (self.beta, plrb))
            if not active
        ]

    @torch.no_grad()
    def clamp_blend_weights(self) -> None:
        """Clamp alpha and beta into [0, 1] in place, as the published
        forward does at every step from the blending epoch on.

        The loss then uses them as they are, so their gradient is taken at
        the clamped value; a clamp where they are used would give none once
        the optimizer has moved a stored value out of [0, 1] (and none at
        exactly 0 or 1), and the weight would stay there.
        """
        self.alpha.clamp_(0, 1)
        self.beta.clamp_(0, 1)

    def prototype_partners(
            self, feats: Sequence[torch.Tensor],
            targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """PLRB's draw: one of the K prototypes for the whole batch and one
        unknown class per image (see ``draw_prototype_classes``).

        Returns:
            tuple[Tensor, Tensor]: The prototypes to blend with,
            broadcastable to (B, C, D), and the bool (B, C) entries.
        """
        index = int(torch.randint(self.num_prototypes, (1, )))
        classes = draw_prototype_classes(targets, self.prototype_mask)
        return (self.prototypes[:, index].unsqueeze(0),
                prototype_blend_mask(classes, self.num_classes))

    def loss(self, feats: Sequence[torch.Tensor],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        features = self.pre_logits(feats)
        targets = self._partial_targets(data_samples, features.device)
        self._require_progress()
        run_ilrb, run_plrb = self.blending_active()

        if self.progress[0] >= self.blend_start_epoch:
            self.clamp_blend_weights()
        names, variants, branch_targets = ['loss_cls'], [], [targets]
        if run_ilrb:
            blended, soft = instance_blend(features, targets, self.alpha)
            names.append('loss_ilrb')
            variants.append((blended - features, instance_blend_mask(targets)))
            branch_targets.append(soft)
        if run_plrb:
            others, mask = self.prototype_partners(feats, targets)
            blended, soft = blend_entries(features, targets, others, mask,
                                          self.beta)
            names.append('loss_plrb')
            variants.append((blended - features, mask))
            branch_targets.append(soft)

        # The (up to) 3B copies go through the same weights in one batch;
        # the blended ones only differ from F on their masked entries.
        logits = self.classify(features, variants).split(features.shape[0])
        weights = dict(
            loss_cls=1.0,
            loss_ilrb=self.ilrb_loss_weight,
            loss_plrb=self.plrb_loss_weight)
        # Every key from the first iteration on (0 while a branch is idle),
        # as the published logs have them, so log tools find every curve.
        losses = {name: features.new_zeros(()) for name in weights}
        for name, branch_logits, target in zip(names, logits, branch_targets):
            losses[name] = weights[name] * self.loss_module(
                branch_logits, target)
        idle = self.idle_parameters()
        if idle:
            # A zero-weighted use keeps DDP from waiting for their grads
            # (without find_unused_parameters); the zero gradient is dropped
            # before the optimizer step (see idle_parameters).
            losses['loss_cls'] = losses['loss_cls'] + 0.0 * sum(idle)
        self.add_contrastive_term(losses, features, targets)
        losses['alpha'] = self.alpha.detach().clone()
        losses['beta'] = self.beta.detach().clone()
        return losses
