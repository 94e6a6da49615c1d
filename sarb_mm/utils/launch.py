"""Shared start-up of ``tools/train.py`` and ``tools/test.py``."""
import argparse
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments that train.py and test.py share (mmpretrain's names)."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. '
        'train_dataloader.dataset.known_ratio=0.5')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args) -> Config:
    """Read ``args.config`` and apply the shared arguments to it.

    ``--cfg-options`` is not merged here: each tool merges it last, so that
    it overrides what the tool's own flags set.
    """
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file {args.config} does not exist.')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def prepare_distributed(cfg: Config) -> None:
    """Initialise torch.distributed with gloo when there is no GPU.

    mmengine's ``init_dist`` pins a CUDA device, which fails on CPU-only
    machines (CI, CPU clusters). There the process group is created here
    with gloo from the launcher's environment, and DDP is told not to use
    device ids; the Runner then sees an initialised group and reuses it. On
    GPUs nothing changes: mmengine initialises NCCL as usual.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher == 'slurm':
        # Mirror what mmengine derives from SLURM for the GPU case.
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise RuntimeError('CPU slurm runs need MASTER_ADDR in the '
                               'environment (the first node\'s address).')
    elif cfg.launcher != 'pytorch':
        raise ValueError(f'launcher={cfg.launcher!r} is not supported on CPU; '
                         'use torchrun (--launcher pytorch) or slurm.')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', device_ids=None)


def teardown_distributed() -> None:
    """Leave the process group together, so no rank aborts at exit."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def build_runner(cfg: Config):
    """Set up distributed execution, then build the (configured) Runner."""
    prepare_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
