"""Stop a run whose loss is no longer a finite number."""
import math

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _value(value) -> float:
    return float(value.detach() if torch.is_tensor(value) else value)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise as soon as the training loss is NaN or infinite.

    After a NaN every later step is NaN too, and the run would go on for
    hours producing a NaN model and an mAP of nonsense. The error names the
    epoch and iteration and lists every logged loss term, so the term that
    diverged first is visible. The values are the ones mmengine logs anyway
    (no extra device synchronisation).
    """

    priority = 'NORMAL'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        loss = _value(outputs['loss'])
        if math.isfinite(loss):
            return
        terms = ', '.join(f'{name}={_value(value):.6g}'
                          for name, value in outputs.items())
        raise FloatingPointError(
            f'The training loss became {loss} at epoch {runner.epoch} '
            f'(from 0), iteration {batch_idx + 1} of the epoch (iteration '
            f'{runner.iter + 1} overall): {terms}. Lower the learning rate, '
            'check the inputs (e.g. images, word vectors) for NaN/inf, or '
            'use gradient clipping (optim_wrapper.clip_grad).')
