"""Test-only hook: every rank writes its model state after each epoch and
the random draws it would make at each iteration."""
import os.path as osp

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from sarb_mm.engine.hooks.partial_label_hook import unwrap_model
from sarb_mm.models.utils import draw_prototype_classes

# 64 images x 12 classes at 10% known: PLRB's class draw has ~11 choices.
_TARGETS = torch.from_numpy(
    np.where(np.random.RandomState(0).random_sample((64, 12)) < 0.1, 1,
             0)).float()


@HOOKS.register_module()
class DumpRankStateHook(Hook):

    def __init__(self):
        self.draws = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        # What the model (torch) and in-process augmentation (numpy) would
        # draw here, taken from copies of the generators' states.
        with torch.random.fork_rng(devices=[]):
            classes = draw_prototype_classes(_TARGETS,
                                             torch.ones(12, dtype=torch.bool))
        state = np.random.get_state()
        flips = np.random.random_sample(64) < 0.5
        np.random.set_state(state)
        self.draws.append(dict(classes=classes, flips=torch.from_numpy(flips)))

    def after_train_epoch(self, runner):
        model = unwrap_model(runner.model)
        optimizer = runner.optim_wrapper.optimizer
        state = {
            'params': {
                k: v.detach().clone()
                for k, v in model.named_parameters()
            },
            'buffers': {
                k: v.clone()
                for k, v in model.head.named_buffers()
            },
            # The 0-d parameters: SARB's alpha / beta, HST's margins.
            'has_optimizer_state': {
                name: bool(optimizer.state.get(param))
                for name, param in model.head.named_parameters()
                if param.ndim == 0
            },
            'draws': self.draws,
        }
        torch.save(
            state,
            osp.join(runner.work_dir,
                     f'rank{get_rank()}_epoch{runner.epoch + 1}.pth'))
