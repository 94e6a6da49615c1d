from .partial_label_hook import PartialLabelHook

__all__ = ['PartialLabelHook']
