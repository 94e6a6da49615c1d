"""HST's pseudo labels: soft scores above learnable margins, and the
prototype contrastive term.

HST scores every entry as SST does, from the pair co-occurrence branch
(intra-image) and from the similarity to the class prototypes
(cross-image), but keeps ``clamp(score - margin, 0, 1)`` differentiable,
so that a BCE of those scores against the known labels trains the margins.
An unknown entry with a positive score becomes a positive target of the
main loss.
"""
import torch

from .pseudo_labels import mean_cosine, pair_cooccurrence_scores


def soft_intra_image_scores(pair_logits: torch.Tensor, targets: torch.Tensor,
                            margin: torch.Tensor) -> torch.Tensor:
    """``clamp(s - margin, 0, 1)`` of the pair co-occurrence score s.

    Args:
        pair_logits (Tensor): Co-occurrence logits (B, C(C-1)/2).
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        margin (Tensor): 0-d intra-image margin.

    Returns:
        Tensor: (B, C) scores in [0, 1], differentiable in the logits and
        the margin.
    """
    scores = pair_cooccurrence_scores(
        torch.sigmoid(pair_logits.float()), targets)
    return torch.clamp(scores - margin, min=0, max=1)


def soft_cross_image_scores(features: torch.Tensor, prototypes: torch.Tensor,
                            margin: torch.Tensor) -> torch.Tensor:
    """``clamp(s - margin, 0, 1)`` of the mean cosine similarity s of each
    category feature to its class's prototypes.

    Args:
        features (Tensor): Category features (B, C, D).
        prototypes (Tensor): (C, K, D) class prototypes.
        margin (Tensor): 0-d cross-image margin.

    Returns:
        Tensor: (B, C) scores in [0, 1], differentiable in the features
        and the margin.
    """
    scores = mean_cosine(features.float(), prototypes.float())
    return torch.clamp(scores - margin, min=0, max=1)


def merge_pseudo_labels(targets: torch.Tensor,
                        scores: torch.Tensor) -> torch.Tensor:
    """Known labels, plus 1 on the unknown entries whose score is above 0.

    Args:
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        scores (Tensor): (B, C) soft scores; only their sign is used.

    Returns:
        Tensor: (B, C) targets in {-1, 0, 1}, without gradient.
    """
    unknown = (targets == 0).float()
    return targets.float() + unknown * (scores.detach() > 0).float()


def prototype_contrastive_loss(features: torch.Tensor, targets: torch.Tensor,
                               prototypes: torch.Tensor) -> torch.Tensor:
    """Mean over all (B, C) entries of ``1 + t * s``, s the mean cosine
    similarity of the category feature to its class's prototypes.

    As published (HST's ``PrototypeContrastiveLoss``): a known negative
    (t = -1) is pulled towards its class's prototypes and a known positive
    (t = 1) pushed away from them; unknown entries add the constant 1.

    Args:
        features (Tensor): Category features (B, C, D).
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        prototypes (Tensor): (C, K, D) class prototypes.

    Returns:
        Tensor: Scalar loss.
    """
    similarity = mean_cosine(features.float(), prototypes.float())
    return (similarity * targets.float() + 1).mean()
