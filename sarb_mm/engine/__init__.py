from .hooks import *  # noqa: F401,F403
from .loops import ResumableEpochBasedTrainLoop
from .optimizers import SARBLayerDecayOptimWrapperConstructor
from .runner import CheckedRunner
from .worker_init import epoch_seeded_worker_init

__all__ = [
    'epoch_seeded_worker_init', 'CheckedRunner',
    'ResumableEpochBasedTrainLoop', 'SARBLayerDecayOptimWrapperConstructor'
]
