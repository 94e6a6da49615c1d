"""Per-epoch reseeding, so a run resumed at an epoch boundary is exact."""
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed python, numpy and torch with ``seed + epoch`` every epoch.

    mmengine seeds once at start-up and does not store the generators'
    states in checkpoints, so a resumed run would draw different
    augmentations and blending choices than the uninterrupted one. Seeding
    from the epoch makes every epoch's draws a function of (seed, epoch)
    alone. Dataloader workers draw their seeds from the main process when
    they start: use ``persistent_workers=False`` with
    ``worker_init_fn=dict(type='epoch_seeded_worker_init')`` (the shipped
    configs do) for exact resumes. Does nothing when the config sets no
    seed.
    """

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        set_random_seed(runner.seed + runner.epoch,
                        deterministic=runner.deterministic)
