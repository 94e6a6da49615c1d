"""Stop a run whose loss is no longer a finite number; flag a diverging one."""
import math
import statistics
from typing import List, Optional

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.validation import check_int


def _value(value) -> float:
    return float(value.detach() if torch.is_tensor(value) else value)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise as soon as the training loss is NaN or infinite; warn (or
    raise) when it grows by orders of magnitude.

    After a NaN every later step is NaN too, and the run would go on for
    hours producing a NaN model and an mAP of nonsense. A loss that
    explodes but stays finite (too high a learning rate, no gradient
    clipping) is as bad and passes unnoticed in a long log, so the loss is
    also compared with a reference: the median of the first
    ``reference_iters`` iterations of the run (or of the resumed part), a
    value the loss normally only falls from. Messages name the epoch and
    iteration and list every logged loss term, so the term that diverged
    first is visible. The values are the ones mmengine logs anyway (no
    extra device synchronisation).

    Args:
        divergence_factor (float, optional): The loss diverges once it is
            more than this many times the reference. Defaults to 1000.0
            (three orders of magnitude: far beyond the batch-to-batch noise
            of a sound run). None switches the check off.
        reference_iters (int): How many first iterations the reference is
            the median of. Defaults to 20.
        stop_on_divergence (bool): Raise ``FloatingPointError`` on
            divergence instead of logging a warning (at most one per
            epoch). Defaults to False.
    """

    priority = 'NORMAL'

    def __init__(self,
                 divergence_factor: Optional[float] = 1000.0,
                 reference_iters: int = 20,
                 stop_on_divergence: bool = False) -> None:
        if divergence_factor is not None and (
                isinstance(divergence_factor, bool)
                or not isinstance(divergence_factor, (int, float))
                or not math.isfinite(divergence_factor)
                or divergence_factor <= 1):
            raise InvalidInputError(
                'FiniteLossHook divergence_factor must be a number > 1 (e.g. '
                f'1000.0) or None (no divergence check), got '
                f'{divergence_factor!r}.')
        self.divergence_factor = divergence_factor
        self.reference_iters = check_int(reference_iters,
                                         'FiniteLossHook reference_iters')
        self.stop_on_divergence = bool(stop_on_divergence)
        self._first_losses: List[float] = []
        self._reference: Optional[float] = None
        self._warned_epoch: Optional[int] = None

    def before_train(self, runner) -> None:
        # A resumed run starts a new reference: its loss is lower by then.
        self._first_losses, self._reference = [], None
        self._warned_epoch = None

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        loss = _value(outputs['loss'])
        if not math.isfinite(loss):
            raise FloatingPointError(
                f'The training loss became {loss} at '
                f'{self._where(runner, batch_idx)}: {self._terms(outputs)}. '
                'Lower the learning rate, check the inputs (e.g. images, '
                'word vectors) for NaN/inf, or use gradient clipping '
                '(optim_wrapper.clip_grad).')
        if self.divergence_factor is not None:
            self._check_divergence(runner, batch_idx, outputs, loss)

    def _check_divergence(self, runner, batch_idx: int, outputs,
                          loss: float) -> None:
        if self._reference is None:
            self._first_losses.append(loss)
            if len(self._first_losses) == self.reference_iters:
                self._reference = statistics.median(self._first_losses)
            return
        # A loss that is not positive at the start (some objectives) has
        # no scale to compare with.
        if self._reference <= 0 or loss <= (self.divergence_factor *
                                            self._reference):
            return
        if not self.stop_on_divergence and self._warned_epoch == runner.epoch:
            return
        message = (
            f'The training loss diverges: {loss:.6g} at '
            f'{self._where(runner, batch_idx)}, {loss / self._reference:.3g} '
            f'times its reference {self._reference:.6g} (the median of the '
            f'first {self.reference_iters} iterations; divergence_factor='
            f'{self.divergence_factor:g}). Terms: {self._terms(outputs)}. '
            'Lower the learning rate (optim_wrapper.optimizer.lr) or clip '
            'the gradients (optim_wrapper.clip_grad=dict(max_norm=...)).')
        if self.stop_on_divergence:
            raise FloatingPointError(message)
        runner.logger.warning(message)
        self._warned_epoch = runner.epoch

    @staticmethod
    def _where(runner, batch_idx: int) -> str:
        return (f'epoch {runner.epoch} (from 0), iteration {batch_idx + 1} '
                f'of the epoch (iteration {runner.iter + 1} overall)')

    @staticmethod
    def _terms(outputs) -> str:
        return ', '.join(f'{name}={_value(value):.6g}'
                         for name, value in outputs.items())
