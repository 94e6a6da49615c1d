"""Test-only hook: kill the run right after an iteration's checkpoint."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class InterruptAfterIterHook(Hook):
    """Raise after the ``iteration``-th training iteration (counted from 1
    over the whole run), once CheckpointHook has saved it."""

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.iteration:
            raise KeyboardInterrupt(
                f'simulated crash after iteration {self.iteration}')
