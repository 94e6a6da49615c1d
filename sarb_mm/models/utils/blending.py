"""Instance- and prototype-level representation blending (docs/method.md)."""
from typing import Optional, Tuple

import torch


def instance_blend(features: torch.Tensor, targets: torch.Tensor,
                   alpha: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """ILRB: blend each image's unknown classes with its partner's positives.

    Image n is paired with image m = B-1-n. Where ``y[n,c] = 0`` and
    ``y[m,c] = 1``: ``F~[n,c] = alpha F[n,c] + (1-alpha) F[m,c]`` and
    ``y~[n,c] = 1 - alpha``; everything else is kept. With B = 1 the image is
    its own partner, so nothing changes.

    Args:
        features (Tensor): Category features F (B, C, D).
        targets (Tensor): Partial labels y (B, C) in {-1, 0, 1}.
        alpha (Tensor): Scalar blending weight in [0, 1].

    Returns:
        tuple[Tensor, Tensor]: Blended features and soft targets.
    """
    return blend_entries(features, targets, features.flip(0),
                         instance_blend_mask(targets), alpha)


def instance_blend_mask(targets: torch.Tensor) -> torch.Tensor:
    """Bool (B, C): unknown here and a known positive in the partner."""
    return (targets == 0) & (targets.flip(0) > 0)


def prototype_blend_mask(classes: torch.Tensor,
                         num_classes: int) -> torch.Tensor:
    """Bool (B, C): the drawn class of each image (none for -1)."""
    class_ids = torch.arange(num_classes, device=classes.device)
    return class_ids.unsqueeze(0) == classes.unsqueeze(1)


def draw_prototype_classes(
        targets: torch.Tensor,
        prototype_mask: torch.Tensor,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw, per image, one unknown class that has prototypes.

    Uniform among the image's unknown classes whose prototypes exist; -1 for
    an image without such a class (it is then not blended, unlike the
    authors' code, which blended class 0 of such images).

    Args:
        targets (Tensor): Partial labels (B, C).
        prototype_mask (Tensor): Bool (C,), True where a class has
            prototypes.
        generator (torch.Generator, optional): Source of the draw.

    Returns:
        Tensor: Long (B,) class indices or -1.
    """
    chosen = draw_prototype_mask(targets, prototype_mask, 1, generator)
    return torch.where(chosen.any(dim=1), chosen.byte().argmax(dim=1), -1)


def draw_prototype_mask(
        targets: torch.Tensor,
        prototype_mask: torch.Tensor,
        k: int,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw, per image, ``k`` unknown classes that have prototypes.

    A uniform draw without replacement among the image's unknown classes
    whose prototypes exist; an image with fewer such classes gets all of
    them (the authors' top-k over ``rand * (y == 0)`` then picks known
    classes too, and blends them).

    Args:
        targets (Tensor): Partial labels (B, C).
        prototype_mask (Tensor): Bool (C,), True where a class has
            prototypes.
        k (int): Classes drawn per image at most.
        generator (torch.Generator, optional): Source of the draw.

    Returns:
        Tensor: Bool (B, C), True on the drawn entries.
    """
    candidates = (targets == 0) & prototype_mask.unsqueeze(0)
    draws = torch.rand(
        targets.shape, generator=generator, device=targets.device)
    # The k largest of iid uniforms over the candidates: a uniform choice.
    scores = torch.where(candidates, draws, -1.0)
    top = scores.topk(min(k, targets.shape[1]), dim=1).indices
    chosen = torch.zeros_like(candidates).scatter_(1, top, True)
    return chosen & candidates


def prototype_blend(features: torch.Tensor, targets: torch.Tensor,
                    prototypes: torch.Tensor, classes: torch.Tensor,
                    beta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """PLRB: blend each image's drawn class with that class's prototype.

    ``F^[n,c*] = beta F[n,c*] + (1-beta) p_c*`` and ``y^[n,c*] = 1 - beta``
    for c* = ``classes[n]``; images with ``classes[n] = -1`` are unchanged.

    Args:
        features (Tensor): Category features F (B, C, D).
        targets (Tensor): Partial labels y (B, C).
        prototypes (Tensor): One prototype per class, (C, D).
        classes (Tensor): Long (B,) drawn classes, -1 for none.
        beta (Tensor): Scalar blending weight in [0, 1].

    Returns:
        tuple[Tensor, Tensor]: Blended features and soft targets.
    """
    return blend_entries(features, targets, prototypes.unsqueeze(0),
                         prototype_blend_mask(classes, targets.shape[1]), beta)


def blend_entries(features: torch.Tensor, targets: torch.Tensor,
                  others: torch.Tensor, mask: torch.Tensor,
                  weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``F~ = w F + (1-w) G`` and ``y~ = 1 - w`` on the masked entries.

    The blend of every branch (ILRB, PLRB, DSRB's quadrant prototypes);
    entries outside the mask keep their feature and label.

    Args:
        features (Tensor): Category features F (B, C, D).
        targets (Tensor): Partial labels y (B, C).
        others (Tensor): What to blend with, G, broadcastable to (B, C, D).
        mask (Tensor): Bool (B, C), the entries to blend.
        weight (Tensor): Scalar weight w of F, in [0, 1].

    Returns:
        tuple[Tensor, Tensor]: Blended features and soft targets.
    """
    blended = torch.where(
        mask.unsqueeze(-1),
        weight * features + (1 - weight) * others.to(features.dtype), features)
    return blended, torch.where(mask, 1 - weight, targets)


def cooccurrence_matrix(partial_labels) -> torch.Tensor:
    """Conditional co-occurrence of known positives (docs/method.md).

    ``A[i,j] = #(i and j known positive) / #(i known positive)``; a class
    that is never a known positive gets an all-zero row.

    Args:
        partial_labels (array-like | SparseLabels): (N_img, C) in
            {-1, 0, 1}, dense, or sparse rows (whose pair counts are the
            same integers, without an (N_img, C) matrix).

    Returns:
        Tensor: Float32 (C, C).
    """
    pair_counts = getattr(partial_labels, 'positive_pair_counts', None)
    if pair_counts is not None:
        counts = torch.from_numpy(pair_counts()).double()
    else:
        positives = (torch.as_tensor(partial_labels) > 0).double()
        counts = positives.T @ positives
    occurrences = counts.diagonal().clone()
    matrix = counts / occurrences.clamp(min=1).unsqueeze(1)
    return matrix.float()
