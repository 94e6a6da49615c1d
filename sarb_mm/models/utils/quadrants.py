"""DSRB's spatial quadrants of the category attention (docs/method.md)."""
import torch


def peak_quadrants(weighted_sums: torch.Tensor) -> torch.Tensor:
    """Quadrant of each class's peak on its attention-weighted map.

    The peak row is the row holding the largest value, the peak column the
    column holding it (the authors' two arg-maxes, so ties resolve as
    theirs do: first row, first column). Quadrants are numbered
    ``2 * (row >= H // 2) + (col >= W // 2)``: 0 top left, 1 top right,
    2 bottom left, 3 bottom right; with an odd side the lower and right
    halves hold the middle line, as in the authors' code.

    Args:
        weighted_sums (Tensor): (B, H, W, C), the channel sums of the
            attention-weighted feature maps, ``a[b,h,w,c] sum_d x[b,h,w,d]``.

    Returns:
        Tensor: Long (B, C) quadrant of every (image, class).
    """
    height, width = weighted_sums.shape[1:3]
    row = weighted_sums.amax(dim=2).argmax(dim=1)
    col = weighted_sums.amax(dim=1).argmax(dim=1)
    return 2 * (row >= height // 2).long() + (col >= width // 2).long()


def other_quadrants(quadrants: torch.Tensor,
                    shifts: torch.Tensor) -> torch.Tensor:
    """``(q - s) mod 4`` with shifts ``s`` in {1, 2, 3}: a quadrant other
    than the peak's, uniform among the three for uniform shifts."""
    return (quadrants - shifts) % 4


def quadrant_prototype_features(prototypes: torch.Tensor,
                                quadrants: torch.Tensor) -> torch.Tensor:
    """Prototype of each (image, class) at the given quadrant.

    Args:
        prototypes (Tensor): (C, 4, D) per-class quadrant prototypes.
        quadrants (Tensor): Long (B, C).

    Returns:
        Tensor: (B, C, D), ``prototypes[c, quadrants[b, c]]``.
    """
    classes = torch.arange(prototypes.shape[0], device=quadrants.device)
    return prototypes[classes.unsqueeze(0), quadrants]
