from .partial_label_hook import PartialLabelHook
from .prototype_hook import PrototypeHook

__all__ = ['PartialLabelHook', 'PrototypeHook']
