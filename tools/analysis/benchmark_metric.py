"""Time the vectorised multi-label metrics on a COCO-sized test set.

Example:
    python tools/analysis/benchmark_metric.py --repeats 7
"""
import argparse
import time

import numpy as np

from sarb_mm.evaluation import (InterpolatedMultiLabelMetric, multilabel_prf,
                                voc_average_precision)
from sarb_mm.evaluation.metrics import pack_targets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=40137)
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations should not count
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    shape = (args.num_images, args.num_classes)
    # float64 like the head's sigmoid outputs; rounding to 1e-3 adds many
    # ties, the slow case of the tie handling.
    scores = np.round(rng.random(shape), 3)
    labels = (rng.random(shape) < 0.04).astype(np.int64)

    # What the metric holds after process(): one float64 row per image.
    metric = InterpolatedMultiLabelMetric(thr=0.5, topk=3)
    results = [
        dict(pred_score=s, **pack_targets(g > 0, np.ones_like(g, bool)))
        for s, g in zip(scores, labels)
    ]

    cases = {
        'voc_average_precision':
        lambda: voc_average_precision(scores, labels),
        'multilabel_prf(thr=0.5)':
        lambda: multilabel_prf(scores, labels, thr=0.5),
        'multilabel_prf(thr=0.5, topk=3)':
        lambda: multilabel_prf(scores, labels, thr=0.5, topk=3),
        'metric.compute_metrics (all)':
        lambda: metric.compute_metrics(results),
    }
    print(f'{shape[0]} x {shape[1]}, median of {args.repeats} repeats')
    for name, fn in cases.items():
        print(f'{name:<34s} {median_seconds(fn, args.repeats):.4f} s/call')


if __name__ == '__main__':
    main()
