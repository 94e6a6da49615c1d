"""Precision-recall curves of a multi-label evaluation, drawn with
matplotlib.

The curves come from :mod:`sarb_mm.evaluation.report`, which computes them
as scikit-learn's ``precision_recall_curve`` does; this module only draws.
"""
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from sarb_mm.utils.paths import atomic_path

#: A class curve: (legend label, precision, recall).
Curve = Tuple[str, np.ndarray, np.ndarray]


def plot_pr_curves(curves: Sequence[Curve],
                   mean_curve: Optional[Curve] = None,
                   title: Optional[str] = None,
                   out_file: Optional[str] = None,
                   figsize: Tuple[float, float] = (7.0, 7.5),
                   dpi: int = 120) -> Figure:
    """Draw precision against recall for some classes and their mean.

    Class curves are drawn as steps (precision holds until the next
    operating point), as scikit-learn's ``PrecisionRecallDisplay`` does;
    the mean is a thick black line.

    Args:
        curves (Sequence[tuple]): ``(label, precision, recall)`` per class,
            from :func:`~sarb_mm.evaluation.report.precision_recall_points`.
        mean_curve (tuple, optional): ``(label, precision, recall)`` of the
            mean over classes, e.g. from
            :func:`~sarb_mm.evaluation.report.mean_interpolated_curve`.
        title (str, optional): Figure title.
        out_file (str, optional): Save the figure here (format from the
            extension, e.g. ``.png`` or ``.pdf``).
        figsize (tuple[float]): Figure size in inches. Defaults to (7, 7.5).
        dpi (int): Resolution of raster output. Defaults to 120.

    Returns:
        matplotlib.figure.Figure: The figure (not attached to pyplot, so
        no display or global state is needed).
    """
    fig = Figure(figsize=figsize, dpi=dpi, layout='constrained')
    ax = fig.subplots()
    # tab10 keeps up to 10 class curves apart; more cycle through it.
    colors = [f'C{i % 10}' for i in range(len(curves))]
    for (label, precision, recall), color in zip(curves, colors):
        ax.plot(
            recall,
            precision,
            drawstyle='steps-post',
            color=color,
            label=label,
            linewidth=1.3)
    if mean_curve is not None:
        label, precision, recall = mean_curve
        ax.plot(recall, precision, color='black', linewidth=2.5, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel('Recall')
    ax.set_ylabel('Precision')
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if curves or mean_curve is not None:
        # Below the axes: inside, it would hide the low-precision curves.
        fig.legend(loc='outside lower center', fontsize='small', ncols=1)
    if out_file is not None:
        with atomic_path(out_file) as tmp:
            fig.savefig(tmp)
    return fig
