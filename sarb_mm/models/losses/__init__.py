from .partial_bce import PartialBCELoss, partial_bce

__all__ = ['PartialBCELoss', 'partial_bce']
