"""Test-only hook: kill the run right after an epoch's checkpoint is saved."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class InterruptAfterEpochHook(Hook):

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise KeyboardInterrupt(
                f'simulated crash after epoch {self.epoch}')
