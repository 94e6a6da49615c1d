"""Time the per-class K-means of the prototype pass, 1 vs 10 inits.

For synthetic classes of realistic sizes (COCO at 10% known labels has
classes of about 100 to 4,500 known positives; 'person' at 90% known about
40,000) with D=1024 features, prints the time of ``kmeans`` with a single
k-means++ initialisation (the old code path) and with ``n_init=10`` (the
default), and the inertia of each relative to scikit-learn's
``KMeans(n_init=10)`` on the same data.

Example:
    python tools/analysis/benchmark_prototypes.py --device cpu
    python tools/analysis/benchmark_prototypes.py --device cuda \\
        --sizes 100 1000 4500 40000
"""
import argparse
import time

import numpy as np
import torch

from sarb_mm.models.utils import kmeans


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[100, 500, 1000, 2000, 4500, 40000],
        help='points per class')
    parser.add_argument('--dim', type=int, default=1024)
    parser.add_argument(
        '--k', type=int, default=10, help='prototypes per class')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--sklearn-threads',
        type=int,
        default=1,
        help='threads of the scikit-learn reference (its OpenMP pool '
        'next to torch\'s is slow on a busy machine); 0 skips it')
    return parser.parse_args()


def class_features(size: int, dim: int, seed: int,
                   device: str) -> torch.Tensor:
    """One class: 20 overlapping sub-modes of different spreads."""
    gen = torch.Generator().manual_seed(seed)
    modes = torch.randn(20, dim, generator=gen) * 0.3
    spread = torch.rand(20, 1, generator=gen) + 0.5
    which = torch.randint(20, (size, ), generator=gen)
    noise = torch.randn(size, dim, generator=gen)
    return (modes[which] + spread[which] * noise).to(device)


def inertia(points: torch.Tensor, centres: torch.Tensor) -> float:
    """Sum of squared distances to the nearest centre, float64."""
    centres = centres.double().cpu()
    total = 0.0
    for chunk in points.cpu().split(8192):
        chunk = chunk.double()
        dist = (chunk.square().sum(1, keepdim=True) - 2 * chunk @ centres.T +
                centres.square().sum(1)[None]).clamp(min=0)
        total += float(dist.min(1).values.sum())
    return total


def timed(fn, device: str, repeats: int):
    times = []
    for _ in range(repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def sklearn_inertia(points: torch.Tensor, k: int, threads: int) -> float:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    x = points.cpu().numpy()
    with threadpool_limits(threads):
        fit = KMeans(n_clusters=k, n_init=10, random_state=0).fit(x)
    return inertia(points, torch.from_numpy(fit.cluster_centers_))


def main():
    args = parse_args()
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda was asked but torch sees no GPU; '
                         'use --device cpu.')
    device = args.device
    name = (
        torch.cuda.get_device_name() if device == 'cuda' else
        f'cpu, {torch.get_num_threads()} torch threads')
    print(f'kmeans per class, D={args.dim}, k={args.k}, {name}, median of '
          f'{args.repeats}; inertia relative to scikit-learn '
          'KMeans(n_init=10)')
    # Warm-up: first-call allocations and library set-up should not count.
    warm = class_features(256, args.dim, args.seed, device)
    kmeans(warm, args.k, n_init=10)
    print(f'{"points":>8} {"n_init=1 s":>11} {"n_init=10 s":>12} '
          f'{"ratio 1":>9} {"ratio 10":>9}')
    totals = [0.0, 0.0]
    for size in args.sizes:
        points = class_features(size, args.dim, args.seed + size, device)
        row = []
        for i, n_init in enumerate((1, 10)):

            def run():
                gen = torch.Generator(device=device).manual_seed(args.seed)
                return kmeans(points, args.k, gen, n_init=n_init)

            seconds, centres = timed(run, device, args.repeats)
            totals[i] += seconds
            row.append((seconds, inertia(points, centres)))
        if args.sklearn_threads > 0:
            ref = sklearn_inertia(points, args.k, args.sklearn_threads)
            ratios = f'{row[0][1] / ref:>9.4f} {row[1][1] / ref:>9.4f}'
        else:
            ratios = f'{"-":>9} {"-":>9}'
        print(
            f'{size:>8} {row[0][0]:>11.3f} {row[1][0]:>12.3f} {ratios}',
            flush=True)
    print(f'{"total":>8} {totals[0]:>11.3f} {totals[1]:>12.3f}')


if __name__ == '__main__':
    main()
