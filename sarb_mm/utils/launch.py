"""Shared start-up of ``tools/train.py`` and ``tools/test.py``."""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


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
