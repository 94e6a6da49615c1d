"""Label co-occurrence and training progress for the graph heads."""
import functools
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import HOOKS

from sarb_mm.datasets.partial_wrapper import sparse_label_matrix
from sarb_mm.models.utils import cooccurrence_matrix
from .partial_label_hook import unwrap_model


def _optimizers(optim_wrapper) -> List[torch.optim.Optimizer]:
    wrappers = (
        optim_wrapper.values()
        if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper])
    return [wrapper.optimizer for wrapper in wrappers]


def _drop_idle_gradients(head, optimizer, args, kwargs) -> None:
    """Optimizer step pre-hook: idle parameters have no gradient at all."""
    for param in head.idle_parameters():
        param.grad = None


@HOOKS.register_module()
class LabelGraphHook(Hook):
    """Co-occurrence matrix and training progress for a graph head (SST).

    - Before training: the head's co-occurrence matrix from the training
      partial labels (the same on every rank, since every rank holds the
      labels), and a step pre-hook on the optimizer that drops the
      gradients of the head's idle parameters: the published optimizer
      skips gradient-less parameters, so weight decay and momentum must
      not move them.
    - Before each iteration: the epoch and iteration, for the schedules
      and warm-ups of the head.

    ``PrototypeHook`` does the same and also computes SARB's prototypes.
    """

    # After DistSamplerSeedHook (NORMAL) has set the sampler's epoch.
    priority = 'BELOW_NORMAL'
    required_method = 'set_progress'

    @classmethod
    def _head(cls, runner):
        head = getattr(unwrap_model(runner.model), 'head', None)
        if not hasattr(head, cls.required_method):
            raise TypeError(f'{cls.__name__} needs a model whose head is '
                            f'{cls.head_names}, got {type(head).__name__}.')
        return head

    head_names = 'a graph head (SSTHead, SARBHead)'

    def before_train(self, runner) -> None:
        head = self._head(runner)
        dataset = runner.train_dataloader.dataset
        labels = getattr(dataset, 'partial_labels', None)
        if labels is None:  # its own labels, in sparse rows
            labels = sparse_label_matrix(dataset)
        head.cooccurrence.copy_(cooccurrence_matrix(labels))
        for handle in getattr(self, '_step_hooks', []):
            handle.remove()
        self._step_hooks = [
            optimizer.register_step_pre_hook(
                functools.partial(_drop_idle_gradients, head))
            for optimizer in _optimizers(runner.optim_wrapper)
        ]

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        self._head(runner).set_progress(runner.epoch, batch_idx,
                                        len(runner.train_dataloader))
