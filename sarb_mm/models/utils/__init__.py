from .blending import (cooccurrence_matrix, draw_prototype_classes,
                       instance_blend, prototype_blend)
from .graph import GatedGraphPropagation
from .kmeans import kmeans

__all__ = [
    'instance_blend', 'prototype_blend', 'draw_prototype_classes',
    'cooccurrence_matrix', 'GatedGraphPropagation', 'kmeans'
]
