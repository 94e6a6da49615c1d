"""HST head: SST's transfers with learnable margins and class prototypes."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from sarb_mm.utils.validation import check_int, check_weight
from ..losses.partial_bce import partial_bce
from ..utils.pseudo_labels import pair_asymmetric_loss
from ..utils.soft_pseudo_labels import (merge_pseudo_labels,
                                        prototype_contrastive_loss,
                                        prototype_similarity,
                                        soft_cross_image_scores,
                                        soft_intra_image_scores)
from .graph_head import ClassPrototypes
from .pair_branch_head import PairBranchHead


@MODELS.register_module()
class HSTHead(ClassPrototypes, PairBranchHead):
    """Heterogeneous Semantic Transfer (Chen et al., IJCV 2024).

    The graph classifier and pair branch of :class:`PairBranchHead`, with:

    - the pair branch's asymmetric loss and the category-wise contrastive
      term, both ramped up over the first epoch, as in SST;
    - from ``pseudo_label_epoch`` on, soft intra-image scores (pair
      co-occurrence with the known positives) and cross-image scores (mean
      similarity to the class prototypes) minus learnable margins, clamped
      into [0, 1]. An unknown entry with a positive score is a positive of
      two extra main-branch losses (one per transfer); a BCE of the scores
      against the known labels trains the margins; and a prototype
      contrastive term compares every category feature with its class's
      prototypes.

    The prototypes (K-means of the known-positive category features over
    the training set) are made by ``PrototypeHook`` at the start of the
    epochs ``pseudo_label_epoch + k * interval``.

    Args:
        num_classes (int): Number of categories C.
        in_channels (int): Category feature width D. Defaults to 1024.
        out_channels (int): Classifier width D_out. Defaults to 1024.
        pair_channels (int): Width of the pair branch's reduction.
            Defaults to 512.
        num_steps (int): Graph propagation steps T. Defaults to 3.
        pseudo_label_epoch (int): First epoch (from 0) with pseudo labels
            and prototypes. Defaults to 5.
        num_prototypes (int): Prototypes per class K. Defaults to 10.
        intra_margin (float): Initial intra-image margin. Defaults to 1.
        learn_intra_margin (bool): Train it. Defaults to True.
        inter_margin (float): Initial cross-image margin. Defaults to 1.
        learn_inter_margin (bool): Train it. Defaults to True.
        loss (dict): Partial-label loss of the main branch (all three
            targets).
        intra_loss_weight (float): Weight of the BCE of the intra-image
            scores. Defaults to 0.1.
        pair_loss_weight (float): Weight of the pair co-occurrence loss.
            Defaults to 10.
        inter_loss_weight (float): Weight of the BCE of the cross-image
            scores. Defaults to 0.1.
        contrastive_loss (dict, optional): Category-wise (instance)
            contrastive term; None disables it.
        prototype_loss_weight (float): Weight of the prototype contrastive
            term. Defaults to 0.05.
        thr (float): Score threshold of ``pred_label``. Defaults to 0.5.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 1024,
                 out_channels: int = 1024,
                 pair_channels: int = 512,
                 num_steps: int = 3,
                 pseudo_label_epoch: int = 5,
                 num_prototypes: int = 10,
                 intra_margin: float = 1.0,
                 learn_intra_margin: bool = True,
                 inter_margin: float = 1.0,
                 learn_inter_margin: bool = True,
                 loss: dict = dict(type='PartialBCELoss'),
                 intra_loss_weight: float = 0.1,
                 pair_loss_weight: float = 10.0,
                 inter_loss_weight: float = 0.1,
                 contrastive_loss: Optional[dict] = dict(
                     type='CategoryContrastiveLoss', loss_weight=0.05),
                 prototype_loss_weight: float = 0.05,
                 thr: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            num_classes,
            in_channels,
            out_channels,
            pair_channels,
            num_steps,
            loss=loss,
            contrastive_loss=contrastive_loss,
            thr=thr,
            init_cfg=init_cfg)
        self.pseudo_label_epoch = check_int(
            pseudo_label_epoch, 'HSTHead pseudo_label_epoch', minimum=0)
        self.weights = {
            name: check_weight(value, f'HSTHead {name}_loss_weight')
            for name, value in (('intra', intra_loss_weight),
                                ('pair', pair_loss_weight),
                                ('inter', inter_loss_weight),
                                ('proto', prototype_loss_weight))
        }
        # 0-d parameters: the layer-decay constructor exempts them from
        # weight decay; the published Adam decays them (weight_decay 5e-4).
        self.intra_margin = nn.Parameter(
            torch.tensor(float(intra_margin)),
            requires_grad=bool(learn_intra_margin))
        self.inter_margin = nn.Parameter(
            torch.tensor(float(inter_margin)),
            requires_grad=bool(learn_inter_margin))
        self._register_prototypes(num_prototypes, in_channels)

    @property
    def prototype_start_epoch(self) -> int:
        return self.pseudo_label_epoch

    @property
    def uses_prototypes(self) -> bool:
        return True

    def transferring(self) -> bool:
        """Whether the current step uses pseudo labels."""
        return self.progress is not None and \
            self.progress[0] >= self.pseudo_label_epoch

    def idle_parameters(self) -> List[nn.Parameter]:
        """The learnable margins before ``pseudo_label_epoch``: the
        published optimizer skips them (no gradient), so weight decay must
        not move them either (see ``LabelGraphHook``)."""
        if self.transferring():
            return []
        return [
            p for p in (self.intra_margin, self.inter_margin)
            if p.requires_grad
        ]

    def loss(self, feats: Sequence[torch.Tensor],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        features = self.pre_logits(feats)
        targets = self._partial_targets(data_samples, features.device)
        self._require_progress()
        logits = self.classify(features)
        pair_logits = self.pair_logits(features)

        losses = dict(loss_cls=self.loss_module(logits, targets))
        # Every key from the first iteration on (0 until the transfers
        # start), so log tools find every curve.
        for name in ('loss_intra_cls', 'loss_inter_cls', 'loss_intra',
                     'loss_inter', 'loss_proto'):
            losses[name] = logits.new_zeros(())
        if self.transferring():
            if not self.has_prototypes:
                raise RuntimeError(
                    'HSTHead has no prototypes at epoch '
                    f'{self.progress[0]}: add '
                    "dict(type='PrototypeHook', interval=5) to custom_hooks.")
            intra = soft_intra_image_scores(pair_logits, targets,
                                            self.intra_margin)
            similarity = prototype_similarity(features, self.prototypes)
            inter = soft_cross_image_scores(similarity, self.inter_margin)
            losses['loss_intra_cls'] = self.loss_module(
                logits, merge_pseudo_labels(targets, intra))
            losses['loss_inter_cls'] = self.loss_module(
                logits, merge_pseudo_labels(targets, inter))
            losses['loss_intra'] = self.weights['intra'] * partial_bce(
                intra, targets)
            losses['loss_inter'] = self.weights['inter'] * partial_bce(
                inter, targets)
            losses['loss_proto'] = self.weights[
                'proto'] * prototype_contrastive_loss(similarity, targets)
        idle = self.idle_parameters()
        if idle:
            # Keeps DDP from waiting for their gradients; the zero
            # gradient is dropped before the optimizer step.
            losses['loss_cls'] = losses['loss_cls'] + 0.0 * sum(idle)
        warmup = self.warmup()
        losses['loss_pair'] = warmup * self.weights['pair'] * \
            pair_asymmetric_loss(pair_logits, targets)
        self.add_contrastive_term(losses, features, targets)
        losses['intra_margin'] = self.intra_margin.detach()
        losses['inter_margin'] = self.inter_margin.detach()
        return losses
