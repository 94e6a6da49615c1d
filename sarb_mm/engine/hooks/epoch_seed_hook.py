"""Per-epoch, per-rank reseeding, so a run resumed at an epoch boundary is
exact and every process draws its own random numbers."""
import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed
from mmpretrain.registry import HOOKS


def epoch_rank_seed(seed: int, epoch: int, rank: int) -> int:
    """An independent 32-bit seed for each (seed, epoch, rank).

    numpy's ``SeedSequence`` hashes the triple, so neighbouring epochs,
    ranks or seeds never share a stream (``seed + epoch + rank`` would:
    rank 1 of epoch 0 would replay rank 0 of epoch 1).
    """
    return int(
        np.random.SeedSequence([seed, epoch,
                                rank]).generate_state(1, dtype=np.uint32)[0])


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed python, numpy and torch from (seed, epoch, rank) every epoch.

    mmengine seeds once at start-up and does not store the generators'
    states in checkpoints, so a resumed run would draw different
    augmentations and blending choices than the uninterrupted one. Seeding
    from the epoch makes every epoch's draws a function of (seed, epoch,
    rank) alone. The rank matters: with one stream for all processes, every
    rank would make the same draws at the same batch position (PLRB's class
    and prototype choices, in-process augmentations), and the global batch
    would get only one process's worth of independent draws. Parameters stay
    identical across ranks because DDP averages the gradients, and the data
    sampler and K-means use generators of their own.

    Dataloader workers draw their seeds from the main process when they
    start: use ``persistent_workers=False`` with
    ``worker_init_fn=dict(type='epoch_seeded_worker_init')`` (the shipped
    configs do) for exact resumes. Does nothing when the config sets no
    seed.
    """

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        set_random_seed(
            epoch_rank_seed(runner.seed, runner.epoch, get_rank()),
            deterministic=runner.deterministic)
