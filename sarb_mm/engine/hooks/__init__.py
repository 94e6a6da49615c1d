from .epoch_seed_hook import EpochSeedHook
from .partial_label_hook import PartialLabelHook
from .prototype_hook import PrototypeHook

__all__ = ['EpochSeedHook', 'PartialLabelHook', 'PrototypeHook']
