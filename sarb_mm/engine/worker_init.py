"""Dataloader worker seeding that follows the epoch."""
import os
import random

import numpy as np
import torch
from mmengine.registry import FUNCTIONS


@FUNCTIONS.register_module()
def epoch_seeded_worker_init(worker_id: int) -> None:
    """Seed numpy and python in a worker from torch's seed for it.

    torch seeds every worker with ``base_seed + worker_id``, drawing
    ``base_seed`` from the main process when the epoch's iterator is made;
    with ``EpochSeedHook`` that draw is a function of (seed, epoch, rank).
    So with non-persistent workers the augmentation draws differ from epoch
    to epoch (mmengine's default worker seeding repeats them every epoch)
    and are the same in an uninterrupted and a resumed run. The rank is
    mixed in once more so that processes never share streams, even without
    that hook.

    Args:
        worker_id (int): Index of the worker (unused: already in the seed).
    """
    rank = int(os.environ.get('RANK', 0))
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
