"""SST head: graph classifier, pair co-occurrence branch, pseudo labels."""
from typing import Dict, List, Optional, Sequence

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from sarb_mm.utils.distributed import gather_rows
from sarb_mm.utils.validation import check_int, check_weight
from ..losses.partial_bce import partial_bce
from ..utils.pseudo_labels import (cross_image_pseudo_labels,
                                   intra_image_pseudo_labels,
                                   pair_asymmetric_loss, update_feature_bank)
from .pair_branch_head import PairBranchHead


def sst_margin(epoch: int, start_epoch: int, initial: float, step: float,
               floor: float) -> float:
    """The margin of the published schedule during ``epoch`` (from 0).

    Unchanged up to ``start_epoch``; lowered by ``step`` after each epoch
    from ``start_epoch`` on, never below ``floor``.
    """
    margin = initial
    for _ in range(max(0, epoch - start_epoch)):
        margin = max(floor, margin - step)
    return margin


@MODELS.register_module()
class SSTHead(PairBranchHead):
    """Structured Semantic Transfer (Chen et al., AAAI 2022).

    The graph classifier and pair branch of :class:`PairBranchHead`, plus:

    - an asymmetric loss of the pair branch against "both known positive";
      from ``pseudo_label_epoch`` on the branch completes the unknown
      labels (intra-image transfer);
    - a bank of the ``bank_size`` latest known-positive category features
      per class (a buffer, so checkpoints carry it); from
      ``pseudo_label_epoch`` on an unknown entry similar enough to its
      class's bank becomes positive (cross-image transfer);
    - the category-wise contrastive term of SARB.

    Both transfers use a margin that starts at ``initial_margin`` and drops
    by ``margin_step`` after every epoch from ``pseudo_label_epoch`` on,
    down to ``final_margin``; a margin of 1 or more selects nothing. The
    pair loss and the contrastive term ramp up over the first epoch.

    Args:
        num_classes (int): Number of categories C.
        in_channels (int): Category feature width D. Defaults to 1024.
        out_channels (int): Classifier width D_out. Defaults to 1024.
        pair_channels (int): Width of the pair branch's reduction.
            Defaults to 512.
        num_steps (int): Graph propagation steps T. Defaults to 3.
        pseudo_label_epoch (int): First epoch (from 0) with pseudo labels.
            Defaults to 5.
        initial_margin (float): Margin of both transfers at first.
            Defaults to 0.95.
        margin_step (float): Decrease per epoch. Defaults to 0.025.
        final_margin (float): Lowest margin. Defaults to 0.75.
        bank_size (int): Positive features kept per class. Defaults to 100.
        loss (dict): Partial-label loss of the main branch.
        intra_loss_weight (float): Weight of the BCE against the
            intra-image pseudo labels. Defaults to 1.
        pair_loss_weight (float): Weight of the pair co-occurrence loss.
            Defaults to 10.
        inter_loss_weight (float): Weight of the BCE against the
            cross-image pseudo labels. Defaults to 1.
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
                 pseudo_label_epoch: int = 5,
                 initial_margin: float = 0.95,
                 margin_step: float = 0.025,
                 final_margin: float = 0.75,
                 bank_size: int = 100,
                 loss: dict = dict(type='PartialBCELoss'),
                 intra_loss_weight: float = 1.0,
                 pair_loss_weight: float = 10.0,
                 inter_loss_weight: float = 1.0,
                 contrastive_loss: Optional[dict] = dict(
                     type='CategoryContrastiveLoss', loss_weight=0.05),
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
            pseudo_label_epoch, 'SSTHead pseudo_label_epoch', minimum=0)
        self.margin_schedule = tuple(
            check_weight(v, f'SSTHead {name}')
            for v, name in ((initial_margin, 'initial_margin'),
                            (margin_step, 'margin_step'), (final_margin,
                                                           'final_margin')))
        self.intra_loss_weight = check_weight(intra_loss_weight,
                                              'SSTHead intra_loss_weight')
        self.pair_loss_weight = check_weight(pair_loss_weight,
                                             'SSTHead pair_loss_weight')
        self.inter_loss_weight = check_weight(inter_loss_weight,
                                              'SSTHead inter_loss_weight')

        self.register_buffer(
            'feature_bank',
            torch.zeros(num_classes, check_int(bank_size, 'SSTHead bank_size'),
                        in_channels))

    def margin(self, epoch: int) -> float:
        """Margin of both transfers during ``epoch``."""
        return sst_margin(epoch, self.pseudo_label_epoch,
                          *self.margin_schedule)

    def loss(self, feats: Sequence[torch.Tensor],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        features = self.pre_logits(feats)
        targets = self._partial_targets(data_samples, features.device)
        epoch = self._require_progress()[0]
        logits = self.classify(features)
        pair_logits = self.pair_logits(features)
        # The bank takes the batch before the cross-image labels read it,
        # from the first epoch on, as published. Every rank adds the
        # positives of all ranks (in rank order), so the banks stay equal
        # and hold what one process with the whole batch would hold.
        update_feature_bank(self.feature_bank, gather_rows(features.detach()),
                            gather_rows(targets))

        losses = dict(loss_cls=self.loss_module(logits, targets))
        zero = logits.new_zeros(())
        losses['loss_intra'] = losses['loss_inter'] = zero
        if epoch >= self.pseudo_label_epoch:
            margin = self.margin(epoch)
            intra = intra_image_pseudo_labels(pair_logits, targets, margin)
            inter = cross_image_pseudo_labels(features, targets,
                                              self.feature_bank, margin)
            # The published pseudo-label BCE counts the entries beyond the
            # margin only, so a margin of 1 or more gives 0.
            if margin < 1:
                losses['loss_intra'] = self.intra_loss_weight * partial_bce(
                    logits, intra)
                losses['loss_inter'] = self.inter_loss_weight * partial_bce(
                    logits, inter)
        warmup = self.warmup()
        losses['loss_pair'] = warmup * self.pair_loss_weight * \
            pair_asymmetric_loss(pair_logits, targets)
        self.add_contrastive_term(losses, features, targets)
        return losses
