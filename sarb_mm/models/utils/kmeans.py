"""Batched K-means in torch for the category prototypes.

The published prototypes came from scikit-learn's ``KMeans``: several
greedy k-means++ initialisations, each refined by Lloyd's algorithm, the
lowest inertia kept. This module follows the same algorithm with all the
initialisations of one class run together as tensors on the points' device:
distances are one GEMM (``||x||^2 - 2 x.c + ||c||^2``) and centre updates a
one-hot matmul, so the points are never copied once per initialisation.
"""
import math
from typing import Optional, Tuple, Union

import torch

from sarb_mm.utils.validation import check_int


def _check_points(points: torch.Tensor) -> torch.Tensor:
    if not isinstance(points, torch.Tensor):
        raise TypeError('kmeans expects the points as a torch.Tensor, got '
                        f'{type(points).__name__}.')
    if points.dim() != 2:
        raise ValueError('kmeans expects the points as a 2-D tensor '
                         f'(num_points, dim), got shape '
                         f'{tuple(points.shape)}.')
    if points.shape[0] == 0:
        raise ValueError('kmeans needs at least one point.')
    points = points.float()
    if not bool(torch.isfinite(points).all()):
        bad = int((~torch.isfinite(points)).sum())
        raise ValueError(
            f'kmeans got {bad} non-finite (NaN or inf) feature values in '
            f'{tuple(points.shape)} points; the prototypes would be NaN. '
            'Check the features the model produced (e.g. a diverged run).')
    return points


def _assign(points: torch.Tensor, sq_norms: torch.Tensor,
            centers: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre of every point, for a batch of centre sets.

    Args:
        points (Tensor): (M, D).
        sq_norms (Tensor): (M, ) squared norms of the points.
        centers (Tensor): (R, k, D), R independent centre sets.

    Returns:
        tuple[Tensor, Tensor]: labels (R, M) and squared distances to the
        nearest centre (R, M), clamped at 0.
    """
    runs, k, dim = centers.shape
    flat = centers.reshape(runs * k, dim)
    # ||x||^2 is the same for every centre: leave it out of the argmin
    # (fewer rounding errors, as scikit-learn does) and add it afterwards.
    partial = torch.addmm(flat.square().sum(1)[None], points, flat.T, alpha=-2)
    partial = partial.view(-1, runs, k)
    labels = partial.argmin(2)
    nearest = partial.gather(2, labels[..., None])[..., 0]
    nearest = (nearest + sq_norms[:, None]).clamp_(min=0)
    return labels.T.contiguous(), nearest.T.contiguous()


def _update(points: torch.Tensor, labels: torch.Tensor, nearest: torch.Tensor,
            k: int) -> torch.Tensor:
    """New centres: cluster means, empty clusters relocated.

    As scikit-learn does, an empty cluster takes the point farthest from its
    centre (removed from its own cluster's sum); a cluster still empty after
    that (all points on their centres) takes the largest cluster's centre.

    Args:
        points (Tensor): (M, D).
        labels (Tensor): (R, M) labels of R runs.
        nearest (Tensor): (R, M) squared distance of each point to its
            centre.
        k (int): Number of clusters.

    Returns:
        Tensor: (R, k, D) centres, never NaN.
    """
    runs, num_points = labels.shape
    onehot = points.new_zeros(runs, k, num_points)
    onehot.scatter_(1, labels[:, None], 1.0)
    counts = onehot.sum(2)
    sums = (onehot.view(runs * k, num_points) @ points).view(runs, k, -1)
    del onehot
    empty = counts == 0
    num_empty = empty.sum(1)
    max_empty = int(num_empty.max())
    if max_empty:
        far = nearest.topk(max_empty, dim=1).indices
        # The empty cluster ids of each run first, in increasing order.
        empty_ids = torch.argsort(
            (~empty).to(torch.uint8), dim=1, stable=True)[:, :max_empty]
        movable = nearest.amax(1) > 0
        rows = torch.arange(runs, device=labels.device)
        # One empty slot at a time, for all runs at once: two far points
        # taken from the same cluster are both subtracted from its sum.
        for slot in range(max_empty):
            use = (num_empty > slot) & movable
            point = far[:, slot]
            old = labels[rows, point]
            new = empty_ids[:, slot]
            moved = torch.where(use[:, None], points[point], 0)
            sums[rows, old] -= moved
            counts[rows, old] -= use.to(counts.dtype)
            sums[rows, new] = torch.where(use[:, None], moved, sums[rows, new])
            counts[rows, new] += use.to(counts.dtype)
    centers = sums / counts.clamp(min=1)[..., None]
    still_empty = counts == 0
    if bool(still_empty.any()):
        largest = centers[torch.arange(runs, device=labels.device),
                          counts.argmax(1)]
        centers = torch.where(still_empty[..., None], largest[:, None],
                              centers)
    return centers


def kmeans_plus_plus(points: torch.Tensor,
                     k: int,
                     generator: Optional[torch.Generator] = None,
                     n_init: int = 1,
                     sq_norms: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Greedy k-means++ seeding, ``n_init`` seedings at once.

    As scikit-learn's: the first centre is a uniform draw; each further
    centre is the best, by the resulting potential (sum of squared distances
    to the nearest centre), of ``2 + int(log(k))`` candidates drawn with
    probability proportional to the squared distance to the nearest centre.

    Args:
        points (Tensor): (M, D) float points, M >= 1.
        k (int): Number of centres.
        generator (torch.Generator, optional): On the points' device.
        n_init (int): Number of independent seedings. Defaults to 1.
        sq_norms (Tensor, optional): (M, ) squared norms of the points, if
            already computed.

    Returns:
        Tensor: (n_init, k, D) initial centres, rows of ``points``.
    """
    num_points = points.shape[0]
    device = points.device
    if sq_norms is None:
        sq_norms = torch.linalg.vector_norm(points, dim=1).square_()
    trials = 2 + int(math.log(k))
    runs = torch.arange(n_init, device=device)
    indices = torch.empty(n_init, k, dtype=torch.long, device=device)
    indices[:, 0] = torch.randint(
        num_points, (n_init, ), generator=generator, device=device)

    def squared_distances(index):
        # (M, len(index)) = ||x||^2 - 2 x.y + ||y||^2, clamped at 0.
        dots = points @ points[index].T
        return (sq_norms[:, None] - 2 * dots +
                sq_norms[index][None]).clamp_(min=0)

    closest = squared_distances(indices[:, 0]).T.contiguous()
    for c in range(1, k):
        # float64 so that the draw is not biased by rounding the cumsum.
        cumulative = closest.double().cumsum(1)
        potential = cumulative[:, -1:]
        targets = torch.rand(
            n_init,
            trials,
            generator=generator,
            device=device,
            dtype=torch.float64) * potential
        candidates = torch.searchsorted(cumulative,
                                        targets).clamp_(max=num_points - 1)
        distances = squared_distances(candidates.flatten())
        distances = distances.T.reshape(n_init, trials, num_points)
        distances = torch.minimum(distances, closest[:, None])
        best = distances.sum(2, dtype=torch.float64).argmin(1)
        closest = distances[runs, best]
        indices[:, c] = candidates[runs, best]
    return points[indices]


def _lloyd(points: torch.Tensor, sq_norms: torch.Tensor, centers: torch.Tensor,
           max_iters: int, tol: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lloyd iterations for a batch of runs; each run stops on its own.

    A run stops, as in scikit-learn, when its labels no longer change or
    the summed squared centre shift is at most ``tol``; finished runs drop
    out of the batch.

    Returns:
        tuple[Tensor, Tensor]: final centres (R, k, D) and the inertia (R, )
        in float64 of each run (points assigned to their nearest centre).
    """
    runs, k, _ = centers.shape
    centers = centers.clone()
    labels = torch.full((runs, points.shape[0]),
                        -1,
                        dtype=torch.long,
                        device=points.device)
    active = torch.arange(runs, device=points.device)
    for _ in range(max_iters):
        current = centers[active]
        new_labels, nearest = _assign(points, sq_norms, current)
        updated = _update(points, new_labels, nearest, k)
        shift = (updated - current).square().sum((1, 2))
        stable = (new_labels == labels[active]).all(1)
        centers[active] = updated
        labels[active] = new_labels
        active = active[~(stable | (shift <= tol))]
        if active.numel() == 0:
            break
    _, nearest = _assign(points, sq_norms, centers)
    return centers, nearest.sum(1, dtype=torch.float64)


def kmeans(
    points: torch.Tensor,
    k: int,
    generator: Optional[torch.Generator] = None,
    max_iters: int = 300,
    n_init: int = 10,
    tol: float = 1e-4,
    return_inertia: bool = False,
    init: Optional[torch.Tensor] = None
) -> Union[torch.Tensor, Tuple[torch.Tensor, float]]:
    """Euclidean K-means as scikit-learn's ``KMeans(init='k-means++')``.

    ``n_init`` greedy k-means++ seedings, each refined by Lloyd's algorithm
    (until the labels stop changing, the summed squared centre shift is at
    most ``tol`` times the mean per-feature variance, or ``max_iters``),
    all runs batched on the points' device; the run with the lowest inertia
    (sum of squared distances of the points to their nearest centre) is
    kept, the first one on exact ties. The result is a function of the
    points and the generator's state only.

    With at most k points the points themselves are the centres (repeated
    cyclically to fill k). An emptied cluster is moved to the point
    farthest from its centre, so no centre is ever NaN.

    Args:
        points (Tensor): (M, D) finite values, M >= 1.
        k (int): Number of clusters.
        generator (torch.Generator, optional): Seeded generator on the
            points' device, for reproducible centres.
        max_iters (int): Upper bound of Lloyd iterations per run.
            Defaults to 300.
        n_init (int): Number of k-means++ initialisations. Defaults to 10,
            as the published prototypes.
        tol (float): Relative tolerance on the centre shift, as
            scikit-learn's. Defaults to 1e-4.
        return_inertia (bool): Also return the inertia of the result.
            Defaults to False.
        init (Tensor, optional): Initial centres (k, D), or (R, k, D) for
            R runs, used instead of the k-means++ seedings (``n_init`` and
            ``generator`` are then unused). Defaults to None.

    Returns:
        Tensor | tuple[Tensor, float]: Centres (k, D) in float32, and with
        ``return_inertia`` their inertia on the points.
    """
    check_int(k, 'kmeans k')
    check_int(n_init, 'kmeans n_init')
    check_int(max_iters, 'kmeans max_iters')
    if not tol >= 0:
        raise ValueError(f'kmeans: tol must be >= 0, got {tol!r}.')
    points = _check_points(points)
    num_points, dim = points.shape
    if init is not None:
        init = torch.as_tensor(init).float().to(points.device)
        if init.dim() == 2:
            init = init[None]
        if init.dim() != 3 or init.shape[1:] != (k, dim) \
                or init.shape[0] == 0 or not torch.isfinite(init).all():
            raise ValueError(
                'kmeans: init must hold finite centres of shape (k, D) = '
                f'({k}, {dim}) or (R, k, D), got {tuple(init.shape)}.')
    if num_points <= k:
        index = torch.arange(k, device=points.device) % num_points
        centers = points[index]
        return (centers, 0.0) if return_inertia else centers
    # Half-precision GEMMs would misassign close points.
    with torch.autocast(points.device.type, enabled=False):
        # Centred data keep the GEMM distances accurate (scikit-learn
        # centres too); the shift is added back, so a float32 mean will do.
        mean = points.mean(0)
        centred = points - mean
        # Row norms without a (M, D) temporary.
        sq_norms = torch.linalg.vector_norm(centred, dim=1).square_()
        # Mean per-feature variance of the data times tol.
        abs_tol = float(sq_norms.sum(dtype=torch.float64)) / centred.numel()
        if init is None:
            seeds = kmeans_plus_plus(centred, k, generator, n_init, sq_norms)
        else:
            seeds = init - mean
        centers, inertia = _lloyd(centred, sq_norms, seeds, max_iters,
                                  abs_tol * tol)
        best = int(inertia.argmin())
        result = centers[best] + mean
    if return_inertia:
        return result, float(inertia[best])
    return result
