"""Pseudo labels of SST (structured semantic transfer) for unknown entries.

SST completes the partial labels of a training batch in two ways: within an
image, from the predicted co-occurrence of every class pair with the known
positives (intra-image transfer); across images, from the cosine similarity
of a category feature to a bank of recent positive features of its class
(cross-image transfer). Both switch an unknown entry to positive when the
score reaches a margin that shrinks over the epochs.
"""
import torch
import torch.nn.functional as F


def class_pairs(num_classes: int, device=None):
    """Indices ``(first, second)`` of the pairs i < j, ordered i-major.

    The order of the published pair branch: (0, 1), (0, 2), ...,
    (0, C-1), (1, 2), ...
    """
    return torch.triu_indices(num_classes, num_classes, 1, device=device)


def pair_targets(targets: torch.Tensor) -> torch.Tensor:
    """1 where both classes of a pair are known positives, else 0.

    Args:
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.

    Returns:
        Tensor: (B, C(C-1)/2) float targets of the pair branch.
    """
    first, second = class_pairs(targets.shape[1], targets.device)
    return ((targets[:, first] > 0) & (targets[:, second] > 0)).float()


def above_margin(scores: torch.Tensor, margin: float) -> torch.Tensor:
    """1 where a score reaches the margin, else 0, as published.

    The published code sets scores >= margin to 1 and then scores <= margin
    to 0, so a margin of 1 or more selects nothing (the runs start at 1.0).
    """
    return ((scores >= margin) & (1.0 > margin)).to(scores.dtype)


def intra_image_pseudo_labels(pair_logits: torch.Tensor, targets: torch.Tensor,
                              margin: float) -> torch.Tensor:
    """Targets completed from the predicted pair co-occurrence.

    An unknown class c of an image scores the mean, over the image's known
    positives j, of the predicted probability that c and j co-occur (1 for
    c = j); it becomes positive at ``score >= margin``. Known entries keep
    their label.

    Args:
        pair_logits (Tensor): Co-occurrence logits (B, C(C-1)/2) in the
            order of :func:`class_pairs`.
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        margin (float): Current margin.

    Returns:
        Tensor: (B, C) targets in {-1, 0, 1}, without gradient.
    """
    scores = pair_cooccurrence_scores(
        torch.sigmoid(pair_logits.detach().float()), targets)
    pseudo = above_margin(scores.clamp(-1, 1), margin)
    pseudo[targets != 0] = 0
    return targets.detach().float() + pseudo


def pair_cooccurrence_scores(pair_prob: torch.Tensor,
                             targets: torch.Tensor) -> torch.Tensor:
    """Per class, the mean co-occurrence probability with the known positives.

    Class c of an image scores the mean, over the image's known positives
    j, of the probability that c and j co-occur (1 for c = j); 0 for an
    image without known positives.

    Args:
        pair_prob (Tensor): Co-occurrence probabilities (B, C(C-1)/2) in
            the order of :func:`class_pairs`.
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.

    Returns:
        Tensor: (B, C) scores, differentiable in ``pair_prob``.
    """
    batch, num_classes = targets.shape
    first, second = class_pairs(num_classes, targets.device)
    matrix = torch.eye(
        num_classes, device=targets.device,
        dtype=pair_prob.dtype).repeat(batch, 1, 1)
    matrix[:, first, second] = pair_prob
    matrix[:, second, first] = pair_prob
    positives = (targets == 1).to(pair_prob.dtype)
    scores = (matrix * positives[:, None, :]).sum(2)
    return scores / positives.sum(1, keepdim=True).clamp(min=1)


def mean_cosine(features: torch.Tensor,
                references: torch.Tensor,
                eps: float = 1e-9) -> torch.Tensor:
    """Mean cosine similarity of each category feature to its class's
    references (a bank of features, or prototypes).

    Args:
        features (Tensor): Category features (B, C, D).
        references (Tensor): (C, N, D); an all-zero row counts as 0.
        eps (float): Floor of the norms' product, as published.

    Returns:
        Tensor: (B, C) mean similarities.
    """
    return F.cosine_similarity(
        features[:, :, None, :], references[None], dim=-1, eps=eps).mean(-1)


def cross_image_pseudo_labels(features: torch.Tensor, targets: torch.Tensor,
                              bank: torch.Tensor,
                              margin: float) -> torch.Tensor:
    """Targets completed from the similarity to a bank of positives.

    An unknown entry (b, c) scores the mean cosine similarity of the
    category feature ``F[b, c]`` to the N features in class c's bank (an
    empty slot, all zeros, counts as similarity 0); it becomes positive at
    ``score >= margin``. Known entries keep their label.

    Args:
        features (Tensor): Category features (B, C, D).
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        bank (Tensor): Recent positive features per class (C, N, D).
        margin (float): Current margin.

    Returns:
        Tensor: (B, C) targets in {-1, 0, 1}, without gradient.
    """
    scores = mean_cosine(features.detach().float(), bank.float())
    pseudo = above_margin(scores, margin)
    completed = targets.detach().float().clone()
    unknown = targets == 0
    completed[unknown] = pseudo[unknown]
    return completed


def update_feature_bank(bank: torch.Tensor, features: torch.Tensor,
                        targets: torch.Tensor) -> None:
    """Put the batch's known-positive features in front of each class's bank.

    Within a class, the batch's positives come first in batch order, then
    the bank's previous entries; the oldest fall off the end (N kept).

    Args:
        bank (Tensor): (C, N, D), updated in place.
        features (Tensor): Category features (B, C, D); detached here.
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
    """
    features = features.detach().to(bank.dtype)
    size = bank.shape[1]
    for cls in range(bank.shape[0]):
        positives = features[targets[:, cls] == 1, cls]
        if positives.numel():
            bank[cls] = torch.cat([positives, bank[cls]])[:size]


def pair_asymmetric_loss(pair_logits: torch.Tensor,
                         targets: torch.Tensor,
                         gamma_neg: float = 2.0,
                         gamma_pos: float = 1.0,
                         clip: float = 0.05,
                         eps: float = 1e-8) -> torch.Tensor:
    """Asymmetric loss of the pair co-occurrence branch, mean over entries.

    A pair is a positive when both classes are known positives and a
    negative otherwise (unknown entries included, as published). Negative
    probabilities are shifted by ``clip`` and both sides focused by
    ``(1 - p) ** gamma``.

    Args:
        pair_logits (Tensor): (B, C(C-1)/2) logits.
        targets (Tensor): Partial labels (B, C) in {-1, 0, 1}.
        gamma_neg (float): Focusing exponent of negatives. Defaults to 2.
        gamma_pos (float): Focusing exponent of positives. Defaults to 1.
        clip (float): Probability shift of negatives. Defaults to 0.05.
        eps (float): Floor of the logarithm's argument. Defaults to 1e-8.

    Returns:
        Tensor: Scalar loss.
    """
    positive = pair_targets(targets)
    prob = torch.sigmoid(pair_logits.float())
    prob_neg = 1 - prob
    if clip > 0:
        prob_neg = (prob_neg + clip).clamp(max=1)
    loss = -(
        positive * torch.log(prob.clamp(min=eps)) +
        (1 - positive) * torch.log(prob_neg.clamp(min=eps)))
    if gamma_neg > 0 or gamma_pos > 0:
        focus = prob * positive + prob_neg * (1 - positive)
        gamma = gamma_pos * positive + gamma_neg * (1 - positive)
        loss = loss * torch.pow(1 - focus, gamma)
    return loss.mean()
