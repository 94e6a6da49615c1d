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


def prototype_similarity(features: torch.Tensor,
                         prototypes: torch.Tensor) -> torch.Tensor:
    """(B, C) mean cosine similarity of each category feature (B, C, D) to
    its class's (C, K, D) prototypes, in float32; what the cross-image
    scores and the prototype term share."""
    return mean_cosine(features.float(), prototypes.float())


def soft_cross_image_scores(similarity: torch.Tensor,
                            margin: torch.Tensor) -> torch.Tensor:
    """``clamp(s - margin, 0, 1)`` of the mean cosine similarity s of each
    category feature to its class's prototypes.

    Args:
        similarity (Tensor): (B, C) from :func:`prototype_similarity`.
        margin (Tensor): 0-d cross-image margin.

    Returns:
        Tensor: (B, C) scores in [0, 1], differentiable in the features
        and the margin.
    """
    return torch.clamp(similarity - margin, min=0, max=1)


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


def prototype_contrastive_loss(similarity: torch.Tensor,
                               targets: torch.Tensor) -> torch.Tensor:
    """Mean over all (B, C) entries of ``1 + t * s``, s the mean cosine
    similarity of the category feature to its class's prototypes.

    As published (HST's ``PrototypeContrastiveLoss``): a known negative
    (t = -1) is pulled towards its class's prototypes and a known positive
    (t = 1) pushed away from them; unknown entries add the constant 1.

    Args:
        similarity (Tensor): (B, C) from :func:`prototype_similarity`.
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.

    Returns:
        Tensor: Scalar loss.
    """
    return (similarity * targets.float() + 1).mean()
