"""Train a sarb_mm model with mmengine's Runner (mmpretrain-compatible)."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config

from sarb_mm.engine.input_checks import (check_dataset_roots,
                                         check_pretrained_weights)
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import (add_common_args, build_runner, load_config,
                                  merge_cfg_options, run_tool,
                                  teardown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a sarb_mm model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a path from the newest '
        'readable checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr linearly with the total batch size '
        '(auto_scale_lr.base_batch_size in the config)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    add_common_args(parser)
    return parser.parse_args()


def merge_args(cfg: Config, args) -> Config:
    """Apply the training flags to the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        if not torch.cuda.is_available():
            raise InvalidInputError(
                '--amp needs a CUDA GPU: mmengine\'s AmpOptimWrapper runs '
                'float16 autocast on CUDA only.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise InvalidInputError(
                f'--resume {args.resume}: no such checkpoint file.')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        if not isinstance(cfg.get('auto_scale_lr'), dict):
            raise InvalidInputError(
                '--auto-scale-lr needs auto_scale_lr = dict(base_batch_size='
                'N) in the config: N is the total batch the configured lr '
                'is meant for (8 in the published recipe).')
        cfg.auto_scale_lr.enable = True
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False
    merge_cfg_options(cfg, args.cfg_options)
    return cfg


def main():
    args = parse_args()
    cfg = merge_args(load_config(args), args)
    # What newcomers meet first, before the Runner logs a page: data that
    # is not there, weights that cannot be read. Only local rank 0
    # downloads; mmengine makes the others wait for the file.
    validating = cfg.get('val_cfg') is not None and \
        cfg.get('val_dataloader') is not None
    check_dataset_roots(cfg, ['train', 'val'] if validating else ['train'])
    check_pretrained_weights(
        cfg, download=int(os.environ.get('LOCAL_RANK', 0)) == 0)
    build_runner(cfg).train()
    teardown_distributed()


if __name__ == '__main__':
    run_tool(main)
