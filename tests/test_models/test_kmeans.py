"""K-means for the prototypes against scikit-learn's KMeans."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

import sarb_mm  # noqa: F401
from sarb_mm.models.utils import kmeans
from sarb_mm.models.utils.kmeans import kmeans_plus_plus


def _inertia(points, centres):
    """Sum of squared distances to the nearest centre, float64 numpy."""
    x = np.asarray(points, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    if x.shape[1] < 64:
        d = ((x[:, None, :] - c[None])**2).sum(-1)
    else:
        d = (x**2).sum(1)[:, None] - 2 * x @ c.T + (c**2).sum(1)[None]
    return float(np.maximum(d, 0).min(1).sum())


def _sklearn_centres(points, k, **kwargs):
    kwargs.setdefault('n_init', 10)
    # One thread: scikit-learn's OpenMP pool next to torch's is slow on a
    # busy machine, and the result does not depend on it.
    with threadpool_limits(1):
        return KMeans(
            n_clusters=k, random_state=0,
            **kwargs).fit(points).cluster_centers_


def _data_set(name):
    if name == 'spreads':  # blobs of very different spreads
        x, _ = make_blobs(
            600,
            2,
            centers=8,
            cluster_std=[0.3, 0.5, 1, 1.5, 2, 0.8, 0.4, 2.5],
            random_state=0)
        return x, 8
    if name == 'anisotropic':
        x, _ = make_blobs(800, 2, centers=6, random_state=1)
        return x @ np.array([[0.6, -0.6], [-0.4, 0.8]]), 6
    if name == 'unbalanced':  # 800 points down to 10
        x, _ = make_blobs([800, 100, 50, 25, 15, 10],
                          3,
                          cluster_std=[2.0, 1.0, 0.5, 0.5, 0.3, 0.3],
                          center_box=(-15, 15),
                          random_state=3)
        return x, 6
    if name == 'dim256':  # 30 overlapping blobs, 10 clusters
        x, _ = make_blobs(
            2000, 256, centers=30, cluster_std=6.0, random_state=3)
        return x, 10
    if name == 'dim1024':
        x, _ = make_blobs(
            2000, 1024, centers=25, cluster_std=10.0, random_state=4)
        return x, 10
    if name == 'duplicates':  # 1000 draws of 40 distinct points
        rng = np.random.default_rng(5)
        base = rng.normal(size=(40, 16))
        return base[rng.integers(0, 40, 1000)], 10
    if name == 'repeated_blobs':  # every point three times
        x, _ = make_blobs(300, 4, centers=12, random_state=6)
        return np.repeat(x, 3, axis=0), 12
    raise KeyError(name)


DATA_SETS = ('spreads', 'anisotropic', 'unbalanced', 'dim256', 'dim1024',
             'duplicates', 'repeated_blobs')


@pytest.mark.parametrize('name', DATA_SETS)
def test_kmeans_inertia_within_one_percent_of_sklearn(name):
    x, k = _data_set(name)
    x = x.astype(np.float32)
    reference = _inertia(x, _sklearn_centres(x, k))
    centres, inertia = kmeans(
        torch.from_numpy(x),
        k,
        torch.Generator().manual_seed(0),
        return_inertia=True)
    assert centres.shape == (k, x.shape[1])
    assert centres.dtype == torch.float32
    ours = _inertia(x, centres.numpy())
    # The reported inertia is that of the returned centres.
    assert inertia == pytest.approx(ours, rel=1e-4)
    assert ours <= 1.01 * reference, (name, ours / reference)


def test_greedy_seeding_matches_sklearn_on_average():
    x, k = _data_set('spreads')
    x = x.astype(np.float32)
    with threadpool_limits(1):
        sk = np.mean([
            _inertia(x,
                     kmeans_plusplus(x, k, random_state=r)[0])
            for r in range(300)
        ])
    seeds = kmeans_plus_plus(
        torch.from_numpy(x), k, torch.Generator().manual_seed(0), n_init=300)
    assert seeds.shape == (300, k, 2)
    # Every seed is a data point.
    rows = set(map(tuple, x.tolist()))
    assert set(map(tuple, seeds.reshape(-1, 2).tolist())) <= rows
    ours = np.mean([_inertia(x, s.numpy()) for s in seeds])
    # Plain (non-greedy) k-means++ averages about 1.4x here.
    assert ours == pytest.approx(sk, rel=0.05)


def test_lloyd_matches_sklearn_from_the_same_start():
    for name in ('spreads', 'unbalanced', 'dim256'):
        x, k = _data_set(name)
        x = x.astype(np.float32)
        start = x[np.random.default_rng(0).choice(len(x), k, replace=False)]
        expected = _sklearn_centres(x, k, init=start, n_init=1)
        centres = kmeans(torch.from_numpy(x), k, init=torch.from_numpy(start))
        np.testing.assert_allclose(
            centres.numpy(), expected, rtol=0, atol=1e-3 * np.abs(x).max())


def test_empty_clusters_are_relocated_to_farthest_points():
    # Centre 100 gets no point: it takes 11, the farthest from 0.5, which
    # leaves (0 + 1 + 10) / 3; the next step splits {0, 1} and {10, 11}.
    pts = torch.tensor([[0.], [1.], [10.], [11.]])
    start = torch.tensor([[0.5], [100.]])
    centres = kmeans(pts, 2, init=start)
    assert centres.flatten().tolist() == [0.5, 10.5]
    # Two empty clusters take the two farthest points, both subtracted
    # from the cluster that held them: (0 + 1 + 2 + 3) / 4.
    pts = torch.tensor([[0.], [1.], [2.], [3.], [20.], [21.]])
    start = np.array([[1.5], [100.], [200.]])
    centres = kmeans(pts, 3, init=torch.from_numpy(start))
    assert centres.flatten().tolist() == [1.5, 21., 20.]
    np.testing.assert_allclose(
        centres.numpy(),
        _sklearn_centres(pts.numpy(), 3, init=start, n_init=1))


def test_batched_runs_equal_separate_runs_and_keep_the_best():
    x, k = _data_set('unbalanced')
    pts = torch.from_numpy(x.astype(np.float32))
    rng = np.random.default_rng(1)
    starts = torch.from_numpy(x[rng.choice(len(x), (6, k))].astype(np.float32))
    separate = [kmeans(pts, k, init=s, return_inertia=True) for s in starts]
    inertias = [i for _, i in separate]
    assert max(inertias) > 1.05 * min(inertias)  # the starts matter
    centres, inertia = kmeans(pts, k, init=starts, return_inertia=True)
    best = int(np.argmin(inertias))
    assert inertia == pytest.approx(inertias[best], rel=1e-5)
    torch.testing.assert_close(centres, separate[best][0])
    # On exact ties the first run is kept.
    same = starts[best].expand(3, k, 3)
    torch.testing.assert_close(kmeans(pts, k, init=same), centres)


def test_kmeans_seeded_is_reproducible():
    x, k = _data_set('dim256')
    pts = torch.from_numpy(x.astype(np.float32))
    gen_a = torch.Generator().manual_seed(3)
    gen_b = torch.Generator().manual_seed(3)
    assert torch.equal(kmeans(pts, k, gen_a), kmeans(pts, k, gen_b))
    # Both consumed the same draws.
    assert torch.equal(gen_a.get_state(), gen_b.get_state())


def test_seeds_give_valid_lloyd_fixed_points():
    x, k = _data_set('spreads')
    x = x.astype(np.float32)
    results = set()
    for seed in range(5):
        centres = kmeans(
            torch.from_numpy(x),
            k,
            torch.Generator().manual_seed(seed),
            n_init=1).numpy().astype(np.float64)
        results.add(centres.round(4).tobytes())
        assert np.isfinite(centres).all()
        # A converged Lloyd run: each centre is the mean of its points.
        labels = ((x[:, None] - centres[None])**2).sum(-1).argmin(1)
        assert len(set(labels.tolist())) == k
        for j in range(k):
            np.testing.assert_allclose(
                centres[j], x[labels == j].mean(0), atol=1e-2)
    # The seed is used: one initialisation lands in different optima.
    assert len(results) > 1


def test_kmeans_recovers_separated_means():
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        means = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 10
        while torch.pdist(means).min() < 5:
            means = torch.randn(4, 3, generator=gen, dtype=torch.float64) * 10
        pts = means.repeat_interleave(40, 0) + 0.1 * torch.randn(
            160, 3, generator=gen, dtype=torch.float64)
        centres = kmeans(pts, 4, generator=torch.Generator().manual_seed(seed))
        assert centres.shape == (4, 3) and centres.dtype == torch.float32
        dist = torch.cdist(means, centres.double())
        assert sorted(dist.argmin(1).tolist()) == [0, 1, 2, 3]
        assert dist.min(1).values.max() < 0.1, seed


def test_kmeans_fewer_points_than_k_duplicates():
    pts = torch.tensor([[0., 1.], [2., 3.], [4., 5.]])
    centres = kmeans(pts, 5)
    assert centres.shape == (5, 2)
    assert torch.equal(centres, pts[[0, 1, 2, 0, 1]])
    # exactly K points -> the points themselves
    assert torch.equal(kmeans(pts, 3), pts)
    assert kmeans(pts, 3, return_inertia=True)[1] == 0
    # one point
    assert torch.equal(kmeans(pts[:1], 4), pts[:1].repeat(4, 1))


@pytest.mark.parametrize('n_init', [1, 10])
def test_kmeans_duplicates_no_nan(n_init):
    two = torch.tensor([[1., 1., 1.], [-2., 0., 5.]])
    pts = two.repeat(15, 1)
    centres = kmeans(pts, 5, torch.Generator().manual_seed(0), n_init=n_init)
    assert centres.shape == (5, 3) and torch.isfinite(centres).all()
    assert set(map(tuple, centres.tolist())) == set(map(tuple, two.tolist()))
    same = torch.ones(20, 4)
    centres = kmeans(same, 5, torch.Generator().manual_seed(0), n_init=n_init)
    assert torch.equal(centres, torch.ones(5, 4))


@pytest.mark.parametrize('kwargs, match', [
    (dict(points=torch.zeros(0, 3)), 'at least one point'),
    (dict(points=torch.zeros(5)), '2-D tensor'),
    (dict(points=torch.tensor([[0.], [float('nan')], [1.]])), '1 non-finite'),
    (dict(k=0), 'k must be an integer >= 1, got 0'),
    (dict(n_init=0), 'n_init must be an integer >= 1, got 0'),
    (dict(max_iters=1.5), 'max_iters must be an integer'),
    (dict(tol=-1.), 'tol must be >= 0'),
    (dict(init=torch.zeros(2, 3)), r'shape \(k, D\) = \(2, 1\)'),
])
def test_kmeans_bad_input_is_a_clear_error(kwargs, match):
    args = dict(points=torch.arange(6.)[:, None], k=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        kmeans(**args)
