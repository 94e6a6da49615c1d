"""An epoch-based training loop that resumes in the middle of an epoch."""
import itertools
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sized, Union

from mmengine.dataset import DefaultSampler
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.datasets.samplers import RepeatAugSampler
from mmpretrain.registry import LOOPS
from torch.utils.data import BatchSampler, DataLoader, Sampler
from torch.utils.data import SequentialSampler as TorchSequentialSampler

from sarb_mm.utils.errors import InvalidInputError
from .hooks.epoch_seed_hook import EpochSeedHook, seeded_transforms

# Message hub runtime info (saved in every checkpoint, restored on resume):
# how the interrupted run cut its epochs into batches.
LAYOUT_KEY = 'sarb_train_layout'

# Samplers whose indices are a function of (seed, epoch) alone, so that
# the indices after a restart are those the interrupted run went on with.
DETERMINISTIC_SAMPLERS = (DefaultSampler, RepeatAugSampler,
                          TorchSequentialSampler)
# Of those, the ones whose order is drawn from their ``seed`` attribute.
SEEDED_SAMPLERS = (DefaultSampler, RepeatAugSampler)


class SkipFirstIndices(Sampler):
    """A sampler's indices without its first ``num_skipped`` ones.

    Its length stays the wrapped sampler's: the loop, the hooks and the logs
    count the batches of the whole epoch, the skipped ones being those the
    interrupted run trained.

    Args:
        sampler (Sampler): The sampler of the epoch, its epoch set.
        num_skipped (int): How many of its indices to leave out.
    """

    def __init__(self, sampler: Sized, num_skipped: int) -> None:
        self.sampler = sampler
        self.num_skipped = num_skipped

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.num_skipped, None)

    def __len__(self) -> int:
        return len(self.sampler)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop`` that resumes mid-epoch exactly.

    A checkpoint saved every N iterations (``default_hooks.checkpoint=dict(
    by_epoch=False, interval=N)``) usually falls inside an epoch; mmengine's
    loop would restart that epoch from its first batch after a resume and
    train the batches before the checkpoint twice. This loop continues with
    the next batch of the same epoch instead:

    - the sampler skips the indices of the batches already trained (every
      rank its own shard), so no image is loaded twice and the remaining
      batches hold the images of the interrupted run, in its order;
    - the hooks get the batch's true index in the epoch (``batch_idx``), and
      :attr:`first_batch_idx` tells the ``before_train_epoch`` hooks that
      the epoch is already under way (``PrototypeHook`` keeps the
      checkpoint's prototypes then);
    - how the run cuts epochs into batches (batches per epoch, processes,
      batch size, the sampler's seed) is recorded in every checkpoint's
      message hub; a resume that cannot find its place (another number of
      batches per epoch) is an error, and the sampler gets the seed of the
      interrupted run back (``DefaultSampler(seed=None)`` draws a new one
      otherwise, when the config sets no seed).

    With ``EpochSeedHook`` and ``SeedFromSample`` first in the training
    pipeline (the shipped configs) the random draws are a function of
    (seed, epoch, batch or sample index, rank), so the resumed run ends
    with the same weights as the uninterrupted one, bit for bit on the CPU.
    What would break that (no ``EpochSeedHook``, no ``SeedFromSample``,
    ``persistent_workers=True``, a sampler of unknown determinism, another
    number of processes or batch size) is named in a warning at the resume.

    ``CheckedRunner`` builds this loop for ``train_cfg=dict(by_epoch=True,
    ...)``. Without a mid-epoch resume it runs as mmengine's loop.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_epochs: int,
                 val_begin: int = 1,
                 val_interval: int = 1,
                 dynamic_intervals: Optional[List[tuple]] = None) -> None:
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        self._first_batch_idx = 0

    @property
    def first_batch_idx(self) -> int:
        """Index in the current epoch of the first batch this run trains:
        0, except in an epoch resumed in the middle."""
        return self._first_batch_idx

    def run(self):
        """Find where a resumed run stands in its epoch, then train."""
        self._find_resume_position()
        return super().run()

    def run_epoch(self) -> None:
        """Iterate one epoch, or what is left of it after a resume."""
        start = self._first_batch_idx
        if not start:
            return super().run_epoch()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        if start < len(self.dataloader):
            with self._batches_from(start) as batches:
                for idx, data_batch in enumerate(batches, start):
                    self.run_iter(idx, data_batch)
        self._first_batch_idx = 0
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    @contextmanager
    def _batches_from(self, start: int):
        """The epoch's batches from the ``start``-th on."""
        loader = self.dataloader
        batch_sampler = loader.batch_sampler
        if type(batch_sampler) is BatchSampler:
            # Skipped at the index level: the workers start with the next
            # batch and load nothing twice. Undone after the epoch (a
            # BatchSampler reads its sampler when the first batch is made).
            sampler = batch_sampler.sampler
            batch_sampler.sampler = SkipFirstIndices(
                sampler, start * batch_sampler.batch_size)
            try:
                yield loader
            finally:
                batch_sampler.sampler = sampler
        else:
            # A batch sampler of its own kind (its batches need not be runs
            # of consecutive indices): load the trained batches and drop
            # them, which takes their loading time.
            self.runner.logger.info(
                f'train_dataloader.batch_sampler is a '
                f'{type(batch_sampler).__name__}, which cannot skip: '
                f'loading and dropping the {start} batches trained before '
                'the checkpoint.')
            iterator = iter(loader)
            for _ in range(start):
                next(iterator)
            yield iterator

    def _layout(self) -> dict:
        loader = self.dataloader
        return dict(
            batches_per_epoch=len(loader),
            world_size=self.runner.world_size,
            batch_size=loader.batch_size,
            sampler_seed=getattr(loader.sampler, 'seed', None) if isinstance(
                loader.sampler, SEEDED_SAMPLERS) else None)

    def _find_resume_position(self) -> None:
        hub = self.runner.message_hub
        saved = hub.get_info(LAYOUT_KEY)  # the checkpoint's, if resumed
        if saved is not None and (self._iter or self._epoch):
            self._restore_sampler_seed(saved.get('sampler_seed'))
        layout = self._layout()
        hub.update_info(LAYOUT_KEY, layout)
        if not (self._iter or self._epoch):
            return
        per_epoch = layout['batches_per_epoch']
        if saved is not None:
            per_epoch = saved['batches_per_epoch']
        done = self._iter - self._epoch * per_epoch
        if done == 0:  # at an epoch boundary: mmengine's resume is exact
            return
        epoch = self._epoch + 1  # as the logs count
        if not 0 < done <= per_epoch or per_epoch != len(self.dataloader):
            now = (f"{layout['batches_per_epoch']} batches per epoch "
                   f"({layout['world_size']} process(es), batch size "
                   f"{layout['batch_size']})")
            if saved is None:
                why = (f'it records no layout and iteration {self._iter} is '
                       f'not in epoch {epoch} at this run\'s {now}')
            else:
                why = (f'the checkpoint was saved with {per_epoch} batches '
                       f"per epoch ({saved['world_size']} process(es), "
                       f"batch size {saved['batch_size']}), this run has "
                       f'{now}')
            raise InvalidInputError(
                f'Cannot resume at iteration {self._iter} in epoch {epoch}: '
                f'{why}, so the batches trained before it cannot be found. '
                'Resume with the same number of processes, '
                'train_dataloader.batch_size and training set, or from a '
                'checkpoint saved at the end of an epoch.')
        self._first_batch_idx = done
        logger = self.runner.logger
        if done == per_epoch:
            logger.info(
                f'Resuming at the end of epoch {epoch}: all its {done} '
                'batches were trained before the checkpoint; the epoch ends '
                '(schedulers, validation) without training again.')
            return
        logger.info(
            f'Resuming in the middle of epoch {epoch}: its first {done} of '
            f'{per_epoch} batches were trained before the checkpoint, so '
            f'training goes on with batch {done + 1} (iteration '
            f'{self._iter + 1}) in the order of the interrupted run.')
        reasons = self._inexact_reasons(saved)
        if reasons:
            logger.warning(
                f'This resume in the middle of epoch {epoch} will not repeat '
                'the interrupted run exactly (no batch is trained twice, '
                'but the rest of the epoch differs):\n- ' +
                '\n- '.join(reasons))

    def _restore_sampler_seed(self, seed: Optional[int]) -> None:
        sampler = self.dataloader.sampler
        if (seed is None or not isinstance(sampler, SEEDED_SAMPLERS)
                or sampler.seed == seed):
            return
        self.runner.logger.warning(
            f'train_dataloader.sampler drew the seed {sampler.seed}, the '
            f'interrupted run {seed} (no randomness.seed in the config, or '
            f'another one): using {seed}, so the data order goes on as in '
            'the interrupted run. Set randomness.seed to have the same '
            'seeds in every run.')
        sampler.seed = seed

    def _inexact_reasons(self, saved: Optional[dict]) -> List[str]:
        """What keeps the rest of a resumed epoch from being the
        interrupted run's, each with its fix."""
        reasons = []
        runner, loader = self.runner, self.dataloader
        if not isinstance(loader.sampler, DETERMINISTIC_SAMPLERS):
            reasons.append(
                f'train_dataloader.sampler is a '
                f'{type(loader.sampler).__name__}: whether it gives the '
                'same indices after a restart is unknown, so the remaining '
                'batches may hold other images. Use DefaultSampler.')
        if saved is None:
            reasons.append(
                'the checkpoint does not record how its run cut the epochs '
                'into batches (saved by another loop or version), so the '
                'batches are assumed to be those of this run.')
        elif (saved['world_size'], saved['batch_size']) != (runner.world_size,
                                                            loader.batch_size):
            reasons.append(
                f"the checkpoint was saved by {saved['world_size']} "
                f"process(es) with batch size {saved['batch_size']}, this "
                f'run has {runner.world_size} with {loader.batch_size}: its '
                'batches are made differently. Resume with the same number '
                'of processes and train_dataloader.batch_size.')
        if not any(isinstance(hook, EpochSeedHook) for hook in runner.hooks):
            reasons.append(
                'no EpochSeedHook: the random draws (model, augmentations) '
                'of the remaining batches are not those of the interrupted '
                "run. Add dict(type='EpochSeedHook') to custom_hooks.")
        elif loader.num_workers > 0 and loader.persistent_workers:
            reasons.append('train_dataloader.persistent_workers=True: the '
                           'augmentations come from worker streams that the '
                           'interrupted run had advanced. Set '
                           'train_dataloader.persistent_workers=False.')
        elif not seeded_transforms(loader.dataset):
            reasons.append(
                'the training pipeline has no SeedFromSample: its random '
                'transforms draw from streams that depend on which worker '
                'loads which batch, which the resume changes. Put '
                "dict(type='SeedFromSample') first in "
                'train_dataloader.dataset.pipeline.')
        return reasons
