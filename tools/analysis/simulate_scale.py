"""Measure, on generated data at OpenImages size, what grows with the data.

Each measurement runs in a fresh Python process, so that its peak resident
memory (``ru_maxrss`` above the process's size after its imports) is its
own:

(a) build ``OpenImagesPartialDataset`` from a generated label CSV of
    ``--images`` images x ``--num-classes`` classes with
    ``--labels-per-image`` known labels each (40% positive): time, peak
    memory per image, and the bytes the built dataset holds per image;
(c) in the same process, what training computes from the labels: the
    co-occurrence (from the sparse rows), per-class counts and the
    labels' fingerprint: time and the peak of the allocations they make
    (``tracemalloc``);
(b) the prototype pass at each of ``--pass-images`` with
    ``max_points_per_class=--cap``: the hook's bottom-k sample fed with
    random ``--dim``-wide features (a stand-in for the network; the
    sampling, not the network, is what is measured) for the known
    positives of that many images: time and peak memory; after the
    largest, the K-means of ``--kmeans-classes`` classes as the hook runs
    it (time per class).

Examples:
    # What docs/scaling.md reports (about 10 minutes, 2.6 GB of CSV):
    python tools/analysis/simulate_scale.py --images 9000000 \\
        --pass-images 250000 1000000 --work-dir /data/sim
    # A quick look:
    python tools/analysis/simulate_scale.py --images 100000 \\
        --pass-images 20000 --cap 64
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import numpy as np

BUILD_CHILD = r'''
import json, resource, sys, time, tracemalloc
from sarb_mm.datasets import OpenImagesPartialDataset
from sarb_mm.datasets.partial_wrapper import sparse_label_matrix
from sarb_mm.models.utils import cooccurrence_matrix

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def resident():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()

root = sys.argv[1]
base, base_resident = rss(), resident()
start = time.perf_counter()
dataset = OpenImagesPartialDataset(
    data_root=root, ann_file='labels.csv', class_file='classes.csv',
    data_prefix='images', missing_images='unchecked')
build_seconds = time.perf_counter() - start
peak, held_resident = rss(), resident()
tracemalloc.start()
start = time.perf_counter()
labels = sparse_label_matrix(dataset)
matrix = cooccurrence_matrix(labels)
cooc_seconds = time.perf_counter() - start
start = time.perf_counter()
fingerprint = dataset.fingerprint
fingerprint_seconds = time.perf_counter() - start
counts = labels.positive_counts()
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps(dict(
    images=len(dataset), classes=labels.num_classes,
    known=labels.known_count(), build_seconds=build_seconds,
    peak_bytes=peak - base, resident_bytes=held_resident - base_resident,
    held_bytes=dataset._images.nbytes, cooc_seconds=cooc_seconds,
    fingerprint_seconds=fingerprint_seconds, stats_traced_bytes=traced)))
'''

PASS_CHILD = r'''
import json, resource, statistics, sys, time
import numpy as np, torch
from sarb_mm.engine.hooks.prototype_sampling import (BottomKPositives,
                                                     class_seed)
from sarb_mm.models.utils import kmeans
(images, classes, per_image, cap, dim, k, n_init, kmeans_classes,
 seed) = map(int, sys.argv[1:10])
torch.set_num_threads(max(1, torch.get_num_threads()))

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

base = rss()
rng = np.random.default_rng(seed)
gen = torch.Generator().manual_seed(seed)
sample = BottomKPositives(classes, cap, dim, seed, epoch=0)
start = time.perf_counter()
batch = 256
for first in range(0, images, batch):
    count = min(batch, images - first)
    # per_image known labels per image, 40% of them positive.
    positive = rng.random((count, per_image)) < 0.4
    label = rng.integers(classes, size=(count, per_image))
    image, slot = np.nonzero(positive)
    sample.images += count
    sample.add(torch.from_numpy(first + image),
               torch.from_numpy(label[image, slot]),
               torch.randn(len(image), dim, generator=gen))
pass_seconds = time.perf_counter() - start
peak = rss() - base
times = []
for cls in range(min(kmeans_classes, classes)):
    points, _ = sample.merged_class(cls, torch.device('cpu'))
    generator = torch.Generator().manual_seed(class_seed(seed, 0, cls))
    start = time.perf_counter()
    kmeans(points, k, generator, n_init=n_init)
    times.append(time.perf_counter() - start)
kept, buffer = sample.feature_bytes()
print(json.dumps(dict(
    images=images, positives=int(sample.seen.sum()),
    kept=int(sample.counts.sum()), pass_seconds=pass_seconds,
    peak_bytes=peak, buffer_bytes=buffer, kept_bytes=kept,
    kmeans_median=statistics.median(times) if times else None,
    kmeans_max=max(times) if times else None, kmeans_classes=len(times))))
'''


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=9_000_000)
    parser.add_argument('--num-classes', type=int, default=600)
    parser.add_argument('--labels-per-image', type=int, default=6)
    parser.add_argument(
        '--pass-images', type=int, nargs='*', default=[250_000, 1_000_000])
    parser.add_argument(
        '--cap', type=int, default=256, help='max_points_per_class')
    parser.add_argument('--dim', type=int, default=1024)
    parser.add_argument(
        '--prototypes', type=int, default=10, help='K-means clusters')
    parser.add_argument('--n-init', type=int, default=10)
    parser.add_argument(
        '--kmeans-classes',
        type=int,
        default=20,
        help='classes whose K-means is timed (the rest cost the same)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--work-dir',
        help='where to write the CSV (default: a temporary folder, '
        'removed afterwards)')
    parser.add_argument(
        '--json', help='also write the measurements to this JSON file')
    return parser.parse_args(argv)


def write_labels(root: str, images: int, classes: int, per_image: int,
                 seed: int) -> None:
    """Class descriptions and a label CSV, image by image (as the real,
    ImageID-sorted file), ``per_image`` distinct classes per image."""
    mids = [f'/m/{i:06x}' for i in range(classes)]
    with open(osp.join(root, 'classes.csv'), 'w') as f:
        f.writelines(f'{mid},Class {i}\n' for i, mid in enumerate(mids))
    stride = max(1, classes // per_image)
    rng = np.random.default_rng(seed)
    with open(osp.join(root, 'labels.csv'), 'w') as f:
        f.write('ImageID,Source,LabelName,Confidence\n')
        for first in range(0, images, 100_000):
            count = min(100_000, images - first)
            cols = (rng.integers(classes, size=(count, 1)) +
                    np.arange(per_image) * stride) % classes
            positive = (rng.random((count, per_image)) < 0.4).astype(int)
            f.writelines(
                f'{first + i:016x},verification,{mids[c]},{p}\n' for i, (
                    row,
                    signs) in enumerate(zip(cols.tolist(), positive.tolist()))
                for c, p in zip(row, signs))


def run_child(code: str, *args) -> dict:
    proc = subprocess.run([sys.executable, '-c', code, *map(str, args)],
                          capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f'measurement failed:\n{proc.stderr[-4000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(num_bytes: float) -> str:
    return f'{num_bytes / 2**20:,.1f} MiB'


def main(argv=None) -> dict:
    args = parse_args(argv)
    results = dict(args=vars(args))
    with tempfile.TemporaryDirectory(dir=args.work_dir) as root:
        start = time.perf_counter()
        write_labels(root, args.images, args.num_classes,
                     args.labels_per_image, args.seed)
        size = os.path.getsize(osp.join(root, 'labels.csv'))
        print(f'Generated {args.images:,} images x {args.num_classes} '
              f'classes, {args.labels_per_image} known labels each '
              f'({mib(size)} of CSV) in {time.perf_counter() - start:.0f} s.')
        build = results['build'] = run_child(BUILD_CHILD, root)
    n = build['images']
    print('\n(a) OpenImagesPartialDataset build (images not checked)')
    print(f'  time                      {build["build_seconds"]:9.1f} s')
    print(f'  peak memory above imports {mib(build["peak_bytes"]):>14} '
          f'({build["peak_bytes"] / n:.0f} B/image)')
    print(f'  resident after the build  {mib(build["resident_bytes"]):>14} '
          f'({build["resident_bytes"] / n:.0f} B/image)')
    print(f'  held by the dataset       {mib(build["held_bytes"]):>14} '
          f'({build["held_bytes"] / n:.0f} B/image)')
    print(f'  (a dense int8 label matrix: '
          f'{mib(n * build["classes"])}, {build["classes"]} B/image)')
    print('\n(c) statistics from the sparse labels')
    print(f'  co-occurrence             {build["cooc_seconds"]:9.1f} s')
    print(f'  fingerprint               '
          f'{build["fingerprint_seconds"]:9.1f} s')
    print(f'  peak allocations          '
          f'{mib(build["stats_traced_bytes"]):>14}')
    passes = results['passes'] = []
    largest = max(args.pass_images, default=None)
    for images in args.pass_images:
        passes.append(
            run_child(PASS_CHILD, images, args.num_classes,
                      args.labels_per_image, args.cap, args.dim,
                      args.prototypes, args.n_init,
                      args.kmeans_classes if images == largest else 0,
                      args.seed))
    if passes:
        print(f'\n(b) prototype pass, max_points_per_class={args.cap}, '
              f'D={args.dim}, {args.num_classes} classes')
        print('  images      positives   time (s)   peak memory   '
              '(C, k, D) buffer')
        for p in passes:
            print(f'  {p["images"]:>9,} {p["positives"]:>12,} '
                  f'{p["pass_seconds"]:>9.1f} {mib(p["peak_bytes"]):>14} '
                  f'{mib(p["buffer_bytes"]):>14}')
        timed = [p for p in passes if p['kmeans_classes']]
        if timed:
            p = timed[0]
            print(f'  K-means ({args.prototypes} clusters, n_init='
                  f'{args.n_init}) of {p["kmeans_classes"]} classes of '
                  f'{args.cap} points: median {p["kmeans_median"]:.3f} s, '
                  f'max {p["kmeans_max"]:.3f} s per class')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
