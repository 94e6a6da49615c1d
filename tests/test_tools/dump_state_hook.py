"""Test-only hook: every rank writes its model state after training."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from sarb_mm.engine.hooks.partial_label_hook import unwrap_model


@HOOKS.register_module()
class DumpRankStateHook(Hook):

    def after_train(self, runner):
        model = unwrap_model(runner.model)
        state = {
            'params': {k: v.detach().clone()
                       for k, v in model.named_parameters()},
            'buffers': {k: v.clone() for k, v in model.head.named_buffers()},
        }
        torch.save(state, osp.join(runner.work_dir,
                                   f'rank{get_rank()}_state.pth'))
