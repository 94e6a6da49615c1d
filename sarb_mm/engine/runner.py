"""mmengine's Runner with the checks a partial-label experiment needs."""
import os
import os.path as osp
import tempfile

import torch
from mmengine.dist import master_only
from mmengine.optim import OptimWrapperDict
from mmengine.registry import RUNNERS
from mmengine.runner import BaseLoop, EpochBasedTrainLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.paths import atomic_path
from .checkpoints import (check_checkpoint_fits, check_checkpoint_overlaps,
                          find_resumable_checkpoint, read_checkpoint)
from .config_checks import check_config
from .hooks.partial_label_hook import unwrap_model
from .loops import ResumableEpochBasedTrainLoop


def check_work_dir(work_dir: str) -> None:
    """Fail at start, not at the first checkpoint, on an unusable work dir."""
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=work_dir):
            pass
    except OSError as err:
        raise InvalidInputError(
            f'Cannot write to the work dir {work_dir!r} ({err.strerror}). '
            'Pass a writable --work-dir (or work_dir in the config).'
        ) from None


# mmengine's root registry: the tools build runners from it before any
# default scope is set, and mmpretrain's child registry sees its parent.
@RUNNERS.register_module()
class CheckedRunner(Runner):
    """``Runner`` that refuses what would silently give wrong results.

    Set by ``runner_type = 'CheckedRunner'`` (the shipped configs do), so it
    also serves mmpretrain's tools and mim. On top of mmengine's Runner:

    - the config is checked at start (misspelt keys and hook arguments,
      seeds) and the work dir must be writable;
    - evaluating a checkpoint and resuming from one load it strictly:
      missing, unexpected or reshaped keys and non-finite weights are an
      error listing them, raised before any weight or optimizer state is
      loaded (``load_strict = False`` in the config allows a partial load
      on purpose); an unreadable checkpoint is an error naming the file;
    - auto-resume (``resume=True`` without ``load_from``) skips an
      unreadable newest checkpoint (a run killed while saving) with a
      warning and resumes from the newest readable one; it never starts
      afresh when checkpoints exist;
    - ``auto_scale_lr`` scales by the effective batch, world size x batch
      size x ``accumulative_counts`` (mmengine leaves the accumulation out);
    - epoch-based training (``train_cfg=dict(by_epoch=True, ...)``) runs
      ``ResumableEpochBasedTrainLoop``, which resumes from a checkpoint
      saved inside an epoch at its next batch (mmengine's loop would train
      the epoch's first batches again); another epoch-based loop resumed
      there is warned about.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Float reductions split over another number of threads sum in
        # another order, so a CPU run is reproduced only with this number.
        self.logger.info(
            f'CPU threads: {torch.get_num_threads()} (torch intra-op); '
            'CPU results vary with the thread count and the machine (set '
            'OMP_NUM_THREADS to reproduce a run).')

    @classmethod
    def from_cfg(cls, cfg) -> 'CheckedRunner':
        check_config(cfg)
        check_work_dir(cfg['work_dir'])
        runner = super().from_cfg(cfg)
        runner._warn_missing_hooks()
        return runner

    def _warn_missing_hooks(self) -> None:
        from .hooks import PartialLabelHook
        dataset = (self.cfg.get('train_dataloader') or {}).get('dataset')
        partial = isinstance(
            dataset, dict) and dataset.get('type') == 'PartialLabelDataset'
        if partial and not any(
                isinstance(h, PartialLabelHook) for h in self.hooks):
            self.logger.warning(
                'The training set is a PartialLabelDataset but no '
                'PartialLabelHook is registered: the split is neither saved '
                'nor recorded in checkpoints (so a resume cannot check it), '
                'and class counts are not checked. Add '
                "dict(type='PartialLabelHook') to custom_hooks.")

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's, but a ``paramwise_cfg.custom_keys`` entry that
        matches no parameter name is an error (it would silently do
        nothing)."""
        if isinstance(optim_wrapper, dict):
            custom = (optim_wrapper.get('paramwise_cfg')
                      or {}).get('custom_keys') or {}
            names = [name for name, _ in self._bare_model.named_parameters()]
            for key in custom:
                if not any(key in name for name in names):
                    raise InvalidInputError(
                        f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}] '
                        'matches no parameter name (they look like '
                        f'{names[:3]}), so it would change nothing.')
        return super().build_optim_wrapper(optim_wrapper)

    def build_train_loop(self, loop):
        """mmengine's, with ``ResumableEpochBasedTrainLoop`` for mmengine's
        ``EpochBasedTrainLoop`` (the same training without a mid-epoch
        resume)."""
        if isinstance(loop, dict):
            loop = dict(loop)
            if 'type' not in loop and loop.get('by_epoch', False):
                del loop['by_epoch']
                loop['type'] = ResumableEpochBasedTrainLoop
            elif loop.get('type') in ('EpochBasedTrainLoop',
                                      'mmengine.EpochBasedTrainLoop',
                                      EpochBasedTrainLoop):
                loop['type'] = ResumableEpochBasedTrainLoop
        return super().build_train_loop(loop)

    @property
    def _bare_model(self):
        return unwrap_model(self.model)

    @property
    def _evaluating_only(self) -> bool:
        return not isinstance(self._train_loop, BaseLoop)

    def load_or_resume(self) -> None:
        if (not self._has_loaded and self._resume and self._load_from is None):
            # mmengine would take the newest checkpoint even if unreadable.
            self._load_from = find_resumable_checkpoint(
                self.work_dir, self.logger)
            if self._load_from is not None:
                self.logger.info(f'Auto-resume from {self._load_from}.')
        super().load_or_resume()
        if (self._resume and self._has_loaded and not self._evaluating_only
                and self.train_loop.iter >= self.train_loop.max_iters):
            self.logger.warning(
                f'The resumed checkpoint is already at iteration '
                f'{self.train_loop.iter} of {self.train_loop.max_iters} '
                f'(epoch {self.train_loop.epoch}): nothing is left to train. '
                'Raise train_cfg.max_epochs to train on.')
        if self._resume and self._has_loaded and not self._evaluating_only:
            self._warn_epoch_restart()

    def _warn_epoch_restart(self) -> None:
        loop = self.train_loop
        if (not isinstance(loop, EpochBasedTrainLoop)
                or isinstance(loop, ResumableEpochBasedTrainLoop)):
            return
        done = loop.iter - loop.epoch * len(loop.dataloader)
        if done:
            self.logger.warning(
                f'The checkpoint was saved after {done} batches of epoch '
                f'{loop.epoch + 1}, but train_cfg.type='
                f'{type(loop).__name__} restarts the epoch: its first '
                f'batches are trained twice and the run ends {done} '
                'iterations later than an uninterrupted one. Use '
                "train_cfg.type='ResumableEpochBasedTrainLoop' (or base the "
                'loop on it), or resume from a checkpoint saved at the end of '
                'an epoch.')

    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """Read, check, then load a checkpoint (see the class notes)."""
        checkpoint = read_checkpoint(filename, map_location=map_location)
        model = self._bare_model
        meta = checkpoint.get('meta')
        if self._resume and not (isinstance(meta, dict) and 'epoch' in meta
                                 and 'iter' in meta):
            raise InvalidInputError(
                f'Cannot resume from {filename}: it has no training state '
                '("meta" with the epoch), e.g. a bare state dict or a '
                'published model. Start a new run with load_from instead.')
        if ((self._resume or self._evaluating_only)
                and self.cfg.get('load_strict', True)):
            check_checkpoint_fits(model, checkpoint, filename)
            strict = True
        elif not strict:
            check_checkpoint_overlaps(model, checkpoint, filename, self.logger)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(
            model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs):
        """mmengine's, written to a temporary name and renamed into place
        on local disk: a full disk or a crash while saving leaves the
        previous checkpoints as they were, never a truncated one under the
        final name (which auto-resume would then have to skip)."""
        if '://' in str(out_dir):  # other storage: mmengine's own write
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        with atomic_path(osp.join(out_dir, filename)) as tmp:
            super().save_checkpoint(
                osp.dirname(tmp), osp.basename(tmp), *args, **kwargs)

    def scale_lr(self, optim_wrapper, auto_scale_lr=None) -> None:
        """Scale the lr linearly with the effective batch size."""
        if not (auto_scale_lr and auto_scale_lr.get('enable', False)):
            return
        if 'base_batch_size' not in auto_scale_lr:
            raise InvalidInputError(
                'auto_scale_lr needs base_batch_size (the total batch the '
                'configured lr is meant for), e.g. auto_scale_lr = '
                'dict(base_batch_size=8, enable=True).')
        wrappers = list(optim_wrapper.values()) if isinstance(
            optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        accumulations = {w._accumulative_counts for w in wrappers}
        if len(accumulations) > 1:
            raise InvalidInputError(
                'auto_scale_lr cannot scale optimizers that accumulate '
                f'gradients over different counts {sorted(accumulations)}.')
        accumulation = accumulations.pop()
        loader = self._train_dataloader
        batch_size = (
            loader['batch_size']
            if isinstance(loader, dict) else loader.batch_size)
        effective = self.world_size * batch_size * accumulation
        ratio = effective / float(auto_scale_lr['base_batch_size'])
        self.logger.info(
            f'auto_scale_lr: effective batch {effective} = {self.world_size} '
            f'process(es) x batch {batch_size} x {accumulation} accumulation '
            f"step(s), base batch {auto_scale_lr['base_batch_size']}: lr x "
            f'{ratio:g}.')
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group['lr'] = group['lr'] * ratio
