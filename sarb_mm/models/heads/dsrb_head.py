"""DSRB head: SARB's head with prototype blending per spatial quadrant."""
from typing import Sequence, Tuple

import torch
from mmpretrain.registry import MODELS

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.validation import check_int
from ..utils import (draw_prototype_mask, other_quadrants,
                     quadrant_prototype_features)
from .sarb_head import SARBHead

QUADRANTS = 4


@MODELS.register_module()
class DSRBHead(SARBHead):
    """Dual-perspective SARB (docs/method.md): SARB's graph, classifier and
    instance-level blending; the prototype level blends each drawn class
    with the prototype of a quadrant other than the one its attention peaks
    in.

    The authors blend the attention-weighted maps (B, H, W, C, D) and sum
    them over positions. The sum is linear, so blending the maps equals
    blending their sums, the category features; only where each map peaks
    needs the maps, and the neck (``with_peak_quadrants=True``) returns it.
    ``QuadrantPrototypeHook`` keeps the (C, 4, D) prototypes: summed maps
    of the known positives of each class whose peak lies in each quadrant.

    Args:
        num_classes (int): Number of categories C.
        top_k (int): Unknown classes blended per image. Defaults to 1.
        num_prototypes (int): Prototypes per class: one per quadrant, so 4
            (any other value is refused). Defaults to 4.
        **kwargs: The other arguments of ``SARBHead``.
    """

    # The hook that makes its prototypes (PrototypeHook refuses this head).
    prototype_hook = 'QuadrantPrototypeHook'

    def __init__(self,
                 num_classes: int,
                 top_k: int = 1,
                 num_prototypes: int = QUADRANTS,
                 **kwargs) -> None:
        if num_prototypes != QUADRANTS:
            raise InvalidInputError(
                f'DSRBHead has one prototype per quadrant, 4, but '
                f'model.head.num_prototypes is {num_prototypes!r}: set it '
                'to 4 or remove it.')
        super().__init__(num_classes, num_prototypes=QUADRANTS, **kwargs)
        self.top_k = check_int(top_k, 'DSRBHead top_k')

    def prototype_partners(
            self, feats: Sequence[torch.Tensor],
            targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``top_k`` unknown classes per image, each with the prototype of a
        uniformly drawn quadrant other than its peak's.

        Returns:
            tuple[Tensor, Tensor]: (B, C, D) prototypes and the bool (B, C)
            entries to blend.
        """
        quadrants = peak_quadrants_of(feats)
        # The authors' draws, in their order: shifts, then the classes
        # (their generators on the CPU; on a GPU the classes come from the
        # CUDA generator, as SARB's do).
        shifts = torch.randint(1, QUADRANTS,
                               quadrants.shape).to(quadrants.device)
        mask = draw_prototype_mask(targets, self.prototype_mask, self.top_k)
        others = quadrant_prototype_features(
            self.prototypes, other_quadrants(quadrants, shifts))
        return others, mask


def peak_quadrants_of(feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """The peak quadrants the neck returns before the category features."""
    if len(feats) < 2 or feats[0].dtype != torch.long:
        raise InvalidInputError(
            'DSRB needs the peak quadrant of every class: set '
            'with_peak_quadrants=True in model.neck (SemanticDecouplingNeck).')
    return feats[0]
