"""Figure of SARB's category attention: the image and one overlay per class.

The figure is a plain :class:`matplotlib.figure.Figure`, not one made by
``pyplot``: drawing it neither selects a backend nor registers a window, so
it works without a display and leaves a caller's backend and open figures
as they were. ``savefig`` picks the writer from the file extension (Agg for
PNG, the PDF/SVG writers for those).
"""
import math
import os
import os.path as osp
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure
from mmengine.utils import mkdir_or_exist

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.paths import atomic_path

# Panels (the image first) per row of the figure.
MAX_COLUMNS = 4


def upsample_maps(maps: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinearly resize (K, h, w) maps to ``size`` = (H, W).

    Each map cell is taken to cover the matching block of image pixels
    (``align_corners=False``), as a feature-map position covers its part of
    the network input.
    """
    tensor = torch.as_tensor(np.asarray(maps, dtype=np.float32))[None]
    resized = F.interpolate(
        tensor,
        size=tuple(int(s) for s in size),
        mode='bilinear',
        align_corners=False)
    return resized[0].numpy()


def plot_class_attention(image: np.ndarray,
                         maps: np.ndarray,
                         classes: Sequence[str],
                         scores: Optional[Sequence[float]] = None,
                         out_file: Optional[Union[str, os.PathLike]] = None,
                         alpha: float = 0.5,
                         cmap: str = 'jet',
                         panel_inches: float = 2.5,
                         dpi: int = 100) -> Figure:
    """Draw an image and one attention overlay per class.

    Every overlay is the class's map upsampled bilinearly to the image and
    drawn over it with ``cmap`` at opacity ``alpha``. All overlays share one
    colour scale, from 0 to the largest value shown, and one colour bar, so
    panels compare: a map concentrated on a few positions is brighter than
    a spread-out one.

    Args:
        image (np.ndarray): (H, W, 3) RGB image, uint8 or floats in [0, 1],
            e.g. ``ClassAttention.image``.
        maps (np.ndarray): (K, h, w) attention maps, e.g.
            ``ClassAttention.maps``.
        classes (Sequence[str]): K panel names.
        scores (Sequence[float], optional): K scores; panels are titled
            "class (score)" with them, "class" without.
        out_file (str | PathLike, optional): Where to save the figure; the
            format follows the extension (.png, .pdf, .svg, .jpg, ...).
            Missing folders are made. Not saved when None.
        alpha (float): Opacity of the overlays. Defaults to 0.5.
        cmap (str): Matplotlib colour map. Defaults to 'jet'.
        panel_inches (float): Side of one panel in inches. Defaults to 2.5.
        dpi (int): Resolution of the saved file. Defaults to 100.

    Returns:
        Figure: The figure (shown inline by Jupyter).
    """
    image = np.asarray(image)
    maps = np.asarray(maps, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(
            f'image must be an (H, W, 3) RGB array, got shape {image.shape}.')
    if maps.ndim != 3 or len(maps) == 0:
        raise InvalidInputError(
            f'maps must be a non-empty (K, h, w) array, got shape '
            f'{maps.shape}.')
    if len(classes) != len(maps) or (scores is not None
                                     and len(scores) != len(maps)):
        raise InvalidInputError(
            f'Got {len(maps)} maps but {len(classes)} class names and '
            f'{"no" if scores is None else len(scores)} scores: give one '
            'name (and score) per map.')
    if not 0 <= alpha <= 1:
        raise InvalidInputError(f'alpha must be in [0, 1], got {alpha}.')
    if out_file is not None:
        out_file = check_figure_path(out_file)

    overlays = upsample_maps(maps, image.shape[:2])
    panels = len(maps) + 1
    columns = min(panels, MAX_COLUMNS)
    rows = math.ceil(panels / columns)
    # One extra half-panel of width for the colour bar.
    fig = Figure(
        figsize=(panel_inches * (columns + 0.5), panel_inches * rows + 0.3),
        layout='constrained')
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    axes[0].imshow(image)
    axes[0].set_title('input')
    vmax = float(overlays.max()) or 1.0
    for i, (ax, overlay) in enumerate(zip(axes[1:], overlays)):
        ax.imshow(image)
        shown = ax.imshow(overlay, cmap=cmap, alpha=alpha, vmin=0, vmax=vmax)
        title = str(classes[i])
        if scores is not None:
            title = f'{title} ({float(scores[i]):.2f})'
        ax.set_title(title)
    bar = fig.colorbar(shown, ax=list(axes), shrink=0.8)
    bar.set_label('attention')
    if out_file is not None:
        save_figure(fig, out_file, dpi=dpi)
    return fig


def check_figure_path(out_file: Union[str, os.PathLike]) -> str:
    """Return ``out_file`` as a str if matplotlib can write its format.

    The format is the extension's (PNG without one); an unknown one is an
    :class:`InvalidInputError` listing the known ones, raised before any
    work is done.
    """
    out_file = os.fspath(out_file)
    if osp.isdir(out_file):
        raise InvalidInputError(
            f'Figure path {out_file} is a directory; give a file name such '
            'as attention.png.')
    extension = osp.splitext(out_file)[1][1:].lower()
    known = FigureCanvasBase.get_supported_filetypes()
    if extension and extension not in known:
        raise InvalidInputError(
            f'Cannot save a figure as {out_file}: matplotlib writes '
            f'{", ".join(sorted(known))}, not {extension!r}. Use one of '
            'those extensions, e.g. .png or .pdf.')
    return out_file


def save_figure(fig: Figure,
                out_file: Union[str, os.PathLike],
                dpi: int = 100) -> None:
    """Save ``fig`` in the format its extension names, making folders."""
    out_file = check_figure_path(out_file)
    mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
    extension = osp.splitext(out_file)[1][1:].lower()
    with atomic_path(out_file) as tmp:
        # The temporary name has no usable extension of its own.
        fig.savefig(tmp, dpi=dpi, format=extension or 'png')
