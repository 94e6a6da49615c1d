"""K-means in torch for the category prototypes (SPEC section 3)."""
from typing import Optional

import torch


def _squared_distances(points: torch.Tensor,
                       centers: torch.Tensor) -> torch.Tensor:
    return torch.cdist(points, centers).square()


def kmeans_plus_plus(points: torch.Tensor, k: int,
                     generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each new centre drawn with probability ~ d^2."""
    num_points = points.shape[0]
    first = torch.randint(
        num_points, (1, ), generator=generator, device=points.device)
    centers = [points[first[0]]]
    closest = _squared_distances(points, centers[0][None])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        weights = closest / total if total > 0 else torch.ones_like(closest)
        index = torch.multinomial(weights, 1, generator=generator)[0]
        centers.append(points[index])
        closest = torch.minimum(
            closest, _squared_distances(points, points[index][None])[:, 0])
    return torch.stack(centers)


def kmeans(points: torch.Tensor,
           k: int,
           generator: Optional[torch.Generator] = None,
           max_iters: int = 100) -> torch.Tensor:
    """Euclidean K-means (Lloyd) with k-means++ seeding.

    With at most k points the points themselves are the centres (repeated
    cyclically to fill k). An emptied cluster is moved to the point farthest
    from its assigned centre, so no centre is ever NaN.

    Args:
        points (Tensor): (M, D) with M >= 1.
        k (int): Number of clusters.
        generator (torch.Generator, optional): Seeded generator on the
            points' device, for reproducible centres.
        max_iters (int): Upper bound of Lloyd iterations.

    Returns:
        Tensor: Centres (k, D) in float32.
    """
    points = points.float()
    num_points = points.shape[0]
    if num_points == 0:
        raise ValueError('kmeans needs at least one point.')
    if num_points <= k:
        return points[torch.arange(k, device=points.device) % num_points]
    centers = kmeans_plus_plus(points, k, generator)
    assignment = None
    for _ in range(max_iters):
        distances = _squared_distances(points, centers)
        new_assignment = distances.argmin(dim=1)
        if assignment is not None and torch.equal(new_assignment,
                                                  assignment):
            break
        assignment = new_assignment
        counts = torch.bincount(assignment, minlength=k)
        sums = torch.zeros_like(centers).index_add_(0, assignment, points)
        centers = sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)
        for empty in torch.nonzero(counts == 0).flatten().tolist():
            own = distances.gather(1, assignment[:, None])[:, 0]
            farthest = own.argmax()
            centers[empty] = points[farthest]
            assignment[farthest] = empty
            distances[farthest] = 0
    return centers
