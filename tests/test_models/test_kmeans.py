"""K-means and prototypes vs. SPEC section 3."""
import torch

import sarb_mm  # noqa: F401
from sarb_mm.models.utils import kmeans



def _clusters(k=4, d=3, per=40, seed=0, spread=0.1):
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=gen, dtype=torch.float64) * 10
    # make sure they are well separated
    while torch.pdist(means).min() < 5:
        means = torch.randn(k, d, generator=gen, dtype=torch.float64) * 10
    pts = means.repeat_interleave(per, 0) + spread * torch.randn(
        k * per, d, generator=gen, dtype=torch.float64)
    perm = torch.randperm(k * per, generator=gen)
    return pts[perm], means


def test_kmeans_recovers_separated_means():
    for seed in range(3):
        pts, means = _clusters(seed=seed)
        centres = kmeans(pts, 4, generator=torch.Generator().manual_seed(seed))
        assert centres.shape == (4, 3) and centres.dtype == torch.float32
        dist = torch.cdist(means, centres.double())
        nearest = dist.argmin(1)
        assert sorted(nearest.tolist()) == [0, 1, 2, 3]  # a permutation
        assert dist.min(1).values.max() < 0.1, seed


def test_kmeans_fewer_points_than_k_duplicates():
    pts = torch.tensor([[0., 1.], [2., 3.], [4., 5.]])
    centres = kmeans(pts, 5)
    assert centres.shape == (5, 2)
    rows = {tuple(r.tolist()) for r in centres}
    assert rows == {tuple(r.tolist()) for r in pts}
    # exactly K points -> the points themselves
    centres = kmeans(pts, 3)
    assert {tuple(r.tolist()) for r in centres} == rows
    # one point
    assert torch.equal(kmeans(pts[:1], 4), pts[:1].repeat(4, 1))


def test_kmeans_seeded_is_reproducible():
    pts = torch.randn(60, 5, generator=torch.Generator().manual_seed(1))
    a = kmeans(pts, 6, generator=torch.Generator().manual_seed(3))
    b = kmeans(pts, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_kmeans_duplicates_no_nan():
    two = torch.tensor([[1., 1., 1.], [-2., 0., 5.]])
    pts = two.repeat(15, 1)
    centres = kmeans(pts, 5, generator=torch.Generator().manual_seed(0))
    assert centres.shape == (5, 3) and torch.isfinite(centres).all()
    for r in centres:
        assert torch.cdist(r[None], two).min() < 1e-6
    same = torch.ones(20, 4)
    centres = kmeans(same, 5, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(centres).all()
    torch.testing.assert_close(centres, torch.ones(5, 4))
