from .contrastive import CategoryContrastiveLoss, category_contrastive_loss
from .partial_bce import PartialBCELoss, partial_bce

__all__ = [
    'PartialBCELoss', 'partial_bce', 'CategoryContrastiveLoss',
    'category_contrastive_loss'
]
