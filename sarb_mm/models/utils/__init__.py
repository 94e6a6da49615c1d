from .blending import (blend_entries, cooccurrence_matrix,
                       draw_prototype_classes, draw_prototype_mask,
                       instance_blend, instance_blend_mask, prototype_blend,
                       prototype_blend_mask)
from .graph import GatedGraphPropagation
from .kmeans import kmeans
from .quadrants import (other_quadrants, peak_quadrants,
                        quadrant_prototype_features)

__all__ = [
    'instance_blend', 'prototype_blend', 'draw_prototype_classes',
    'draw_prototype_mask', 'blend_entries', 'instance_blend_mask',
    'prototype_blend_mask', 'cooccurrence_matrix', 'GatedGraphPropagation',
    'kmeans', 'peak_quadrants', 'other_quadrants',
    'quadrant_prototype_features'
]
