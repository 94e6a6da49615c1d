"""Figures of SARB results (attention maps, precision-recall curves)."""
from .attention import plot_class_attention, save_figure, upsample_maps
from .pr_curves import plot_pr_curves

__all__ = [
    'plot_class_attention', 'plot_pr_curves', 'save_figure', 'upsample_maps'
]
