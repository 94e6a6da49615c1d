"""Per-epoch and per-iteration, per-rank reseeding, so a run resumed from
any checkpoint is exact and every process draws its own random numbers."""
import random
from typing import List

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed
from mmpretrain.registry import HOOKS

from sarb_mm.datasets.transforms import SeedFromSample

# numpy SeedSequence spawn key of the per-iteration streams, apart from the
# per-epoch ones (no spawn key) and the per-sample ones (SAMPLE_STREAM).
ITERATION_STREAM = 2


def epoch_rank_seed(seed: int, epoch: int, rank: int) -> int:
    """An independent 32-bit seed for each (seed, epoch, rank).

    numpy's ``SeedSequence`` hashes the triple, so neighbouring epochs,
    ranks or seeds never share a stream (``seed + epoch + rank`` would:
    rank 1 of epoch 0 would replay rank 0 of epoch 1).
    """
    return int(
        np.random.SeedSequence([seed, epoch,
                                rank]).generate_state(1, dtype=np.uint32)[0])


def iteration_seed(seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """An independent 32-bit seed for each (seed, epoch, batch, rank)."""
    sequence = np.random.SeedSequence([seed, epoch, rank],
                                      spawn_key=(ITERATION_STREAM, batch_idx))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def seeded_transforms(dataset) -> List[SeedFromSample]:
    """The ``SeedFromSample`` transforms of a dataset's pipeline, looking
    through dataset wrappers (``dataset`` / ``datasets`` attributes)."""
    found, seen, todo = {}, set(), [dataset]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for transform in getattr(
                getattr(current, 'pipeline', None), 'transforms', None) or ():
            if isinstance(transform, SeedFromSample):
                found[id(transform)] = transform
        todo.append(getattr(current, 'dataset', None))
        todo.extend(getattr(current, 'datasets', None) or ())
    return list(found.values())


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed python, numpy and torch from (seed, epoch, batch, rank).

    mmengine seeds once at start-up and does not store the generators'
    states in checkpoints, so a resumed run would draw different
    augmentations and blending choices than the uninterrupted one. This
    hook makes every draw a function of where it happens instead:

    - before every training epoch, from (seed, epoch, rank): the draws made
      before the first batch (the prototype pass, the seeds of the
      dataloader workers);
    - before every training iteration, from (seed, epoch, batch index,
      rank): the model's draws (PLRB's class and prototype choices, ILRB's
      pairs, dropout), so a run resumed from a checkpoint saved in the
      middle of an epoch draws at its next batch what the uninterrupted run
      drew there;
    - the ``SeedFromSample`` transforms of the training pipeline get the
      seed and the epoch, and seed every sample's augmentations from (seed,
      epoch, sample index), whichever worker loads it.

    The rank matters: with one stream for all processes, every rank would
    make the same draws at the same batch position, and the global batch
    would get only one process's worth of independent draws. Parameters
    stay identical across ranks because DDP averages the gradients, and the
    data sampler and K-means use generators of their own.

    Dataloader workers get their copy of the pipeline (and their seeds)
    when they start: use ``persistent_workers=False`` (the shipped configs
    do) for exact resumes; with persistent workers ``SeedFromSample`` is
    left off (with a warning), as they would keep the first epoch's copy.
    Does nothing when the runner has no seed.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._transforms: List[SeedFromSample] = []

    def before_train(self, runner) -> None:
        loader = runner.train_dataloader
        self._transforms = seeded_transforms(getattr(loader, 'dataset', None))
        if (self._transforms and getattr(loader, 'num_workers', 0) > 0
                and getattr(loader, 'persistent_workers', False)):
            runner.logger.warning(
                'SeedFromSample in the training pipeline is left off: with '
                'train_dataloader.persistent_workers=True the workers keep '
                'the copy of the pipeline they got in the first epoch, so '
                'they would repeat its augmentations every epoch. The '
                'augmentations come from the workers\' streams instead, and '
                'a resumed run cannot repeat them. Set '
                'train_dataloader.persistent_workers=False for exact '
                'resumes.')
            self._transforms = []

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        set_random_seed(
            epoch_rank_seed(runner.seed, runner.epoch, get_rank()),
            deterministic=runner.deterministic)
        # Set in the main process before the epoch's workers start (they
        # copy the dataset then) and before any pass over the loader.
        for transform in self._transforms:
            transform.seed, transform.epoch = runner.seed, runner.epoch

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if runner.seed is None:
            return
        seed = iteration_seed(runner.seed, runner.epoch, batch_idx, get_rank())
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # and the CUDA generators, if any
