"""Keeps SARB's data-derived state up to date during training."""
import functools
from typing import List, Optional, Tuple

import torch
from mmengine.dist import all_gather, broadcast, is_main_process
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.utils import ProgressBar
from mmpretrain.registry import HOOKS

from sarb_mm.datasets.partial_wrapper import full_label_matrix
from sarb_mm.models.utils import cooccurrence_matrix, kmeans
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.validation import check_int
from .partial_label_hook import unwrap_model


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's (m_r, ...) tensor on every rank."""
    count = torch.tensor([rows.shape[0]], device=rows.device)
    counts = [int(c) for c in all_gather(count)]
    padded = rows.new_zeros((max(counts), ) + tuple(rows.shape[1:]))
    padded[:rows.shape[0]] = rows
    parts = all_gather(padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])


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
class PrototypeHook(Hook):
    """Co-occurrence, prototypes and training progress for ``SARBHead``.

    - Before training: the co-occurrence matrix from the training partial
      labels (the same on every rank, since every rank holds the matrix),
      and a step pre-hook on the optimizer that drops the gradients of the
      head's idle parameters (alpha / beta before their branch runs): the
      published optimizer skips gradient-less parameters, so weight decay
      and momentum must not move them (see ``SARBHead.idle_parameters``).
    - Before the epochs ``blend_start_epoch + k * interval`` (and any later
      epoch whose model has no prototypes, e.g. after loading an old
      checkpoint): one no-grad pass in eval mode over the training loader,
      K-means per class on the known-positive category features, identical
      on every rank (features gathered class by class and de-duplicated by
      sample index, clustered on rank 0, broadcast).
    - Before each iteration: the epoch and iteration, for the blending
      switch and the contrastive warm-up.

    Args:
        interval (int): Epochs between prototype updates (R). Defaults to 5.
        seed (int): Seed of the K-means draws (offset by the epoch).
            Defaults to 0.
        n_init (int): K-means initialisations per class, the lowest inertia
            kept (run batched). Defaults to 10, as scikit-learn's KMeans
            that made the published prototypes.
    """

    # After DistSamplerSeedHook (NORMAL) has set the sampler's epoch, so the
    # pass sees the same order in an uninterrupted and a resumed run.
    priority = 'BELOW_NORMAL'

    def __init__(self,
                 interval: int = 5,
                 seed: int = 0,
                 n_init: int = 10) -> None:
        self.interval = check_int(interval, 'PrototypeHook interval')
        self.n_init = check_int(n_init, 'PrototypeHook n_init')
        # The K-means generator is seeded with seed + epoch.
        self.seed = check_int(seed, 'PrototypeHook seed', minimum=0)
        if self.seed >= 2**63 - 2**16:
            raise InvalidInputError(
                f'PrototypeHook seed must be below 2**63 - 2**16, got {seed}.')

    @staticmethod
    def _head(runner):
        head = getattr(unwrap_model(runner.model), 'head', None)
        if not hasattr(head, 'set_prototypes'):
            raise TypeError('PrototypeHook needs a model whose head is '
                            f'SARBHead, got {type(head).__name__}.')
        return head

    def before_train(self, runner) -> None:
        head = self._head(runner)
        dataset = runner.train_dataloader.dataset
        labels = getattr(dataset, 'partial_labels', None)
        if labels is None:  # a fully labelled dataset: everything known
            labels = full_label_matrix(dataset)
        head.cooccurrence.copy_(cooccurrence_matrix(labels))
        for handle in getattr(self, '_step_hooks', []):
            handle.remove()
        self._step_hooks = [
            optimizer.register_step_pre_hook(
                functools.partial(_drop_idle_gradients, head))
            for optimizer in _optimizers(runner.optim_wrapper)
        ]
        if ((head.use_ilrb or head.use_plrb)
                and head.blend_start_epoch >= runner.max_epochs):
            runner.logger.warning(
                f'model.head.blend_start_epoch={head.blend_start_epoch} but '
                f'training stops after {runner.max_epochs} epochs (epochs '
                'count from 0): no blending (ILRB / PLRB) will happen in this '
                'run. Lower blend_start_epoch or raise train_cfg.max_epochs.')

    def before_train_epoch(self, runner) -> None:
        head = self._head(runner)
        epoch = runner.epoch
        start = head.blend_start_epoch
        if epoch < start or not head.use_plrb:
            return
        if (epoch - start) % self.interval == 0 or not head.has_prototypes:
            self.update_prototypes(runner, epoch)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        self._head(runner).set_progress(runner.epoch, batch_idx,
                                        len(runner.train_dataloader))

    @torch.no_grad()
    def update_prototypes(self, runner, epoch: int) -> None:
        """Recompute the prototypes from the training set."""
        model = unwrap_model(runner.model)
        head = self._head(runner)
        features, keys = self._collect_positives(model,
                                                 runner.train_dataloader)
        device = head.prototypes.device
        prototypes = torch.zeros_like(head.prototypes)
        mask = torch.zeros_like(head.prototype_mask, dtype=torch.uint8)
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed + epoch)
        num_features = 0
        # One class at a time bounds the memory to the largest class.
        for cls in range(head.num_classes):
            members = keys[:, 1] == cls
            rows = gather_rows(features[members].to(device))
            images = gather_rows(keys[members, 0].to(device))
            # The distributed sampler pads shards by repeating images: keep
            # each image once, ordered by index whatever the world size.
            order = torch.argsort(images, stable=True)
            rows, images = rows[order], images[order]
            first = torch.ones_like(images, dtype=torch.bool)
            first[1:] = images[1:] != images[:-1]
            rows = rows[first]
            num_features += len(rows)
            if len(rows) and is_main_process():
                prototypes[cls] = kmeans(
                    rows, head.num_prototypes, generator, n_init=self.n_init)
                mask[cls] = 1
        # Clustered once, on rank 0: every rank holds the same bits.
        broadcast(prototypes, src=0)
        broadcast(mask, src=0)
        head.set_prototypes(prototypes, mask.bool())
        runner.logger.info(
            f'Epoch {epoch}: prototypes of {int(mask.sum())}/'
            f'{head.num_classes} classes from {num_features} known '
            'positives.')

    @staticmethod
    def _collect_positives(model,
                           dataloader) -> Tuple[torch.Tensor, torch.Tensor]:
        was_training = model.training
        model.eval()
        features, keys = [], []
        progress = ProgressBar(len(dataloader)) if is_main_process() else None
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            category_features = model.extract_feat(data['inputs'])[-1]
            samples = data['data_samples']
            targets = torch.stack([s.gt_score for s in samples
                                   ]).to(category_features.device)
            sample_idx = torch.tensor([s.sample_idx for s in samples],
                                      device=targets.device)
            image, cls = torch.nonzero(targets > 0, as_tuple=True)
            # Kept on the CPU until gathered class by class.
            features.append(category_features[image, cls].float().cpu())
            keys.append(torch.stack([sample_idx[image], cls], dim=1).cpu())
            if progress is not None:
                progress.update()
        model.train(was_training)
        return torch.cat(features), torch.cat(keys)
