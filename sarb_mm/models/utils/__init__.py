from .blending import (cooccurrence_matrix, draw_prototype_classes,
                       instance_blend, instance_blend_mask, prototype_blend,
                       prototype_blend_mask)
from .graph import GatedGraphPropagation
from .kmeans import kmeans

__all__ = [
    'instance_blend', 'prototype_blend', 'draw_prototype_classes',
    'instance_blend_mask', 'prototype_blend_mask', 'cooccurrence_matrix',
    'GatedGraphPropagation', 'kmeans'
]
