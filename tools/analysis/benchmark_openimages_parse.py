"""Parse time and peak memory of an OpenImages-style image-level label CSV.

Writes a label CSV of ``--rows`` rows (``ImageID,Source,LabelName,
Confidence``, ``--labels-per-image`` distinct classes per image out of
``--num-classes``, 40% positives) and its class-description CSV to a
temporary directory, then measures, each in a fresh Python process so that
the numbers do not mix:

1. ``parse_openimages_labels``: wall time and peak resident memory above
   the process's size after its imports (``resource.getrusage``
   ``ru_maxrss``);
2. the same parse under ``tracemalloc``: peak of the Python and NumPy
   allocations it made (slower, so its time is not reported);
3. building ``OpenImagesPartialDataset`` (the parse, then the images
   packed as names and sparse label rows; images not checked): wall time
   and peak memory as in 1.

Example:
    python tools/analysis/benchmark_openimages_parse.py --rows 5000000
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import tempfile
import time

import numpy as np

CHILD = r'''
import json, resource, sys, time, tracemalloc
from sarb_mm.datasets import OpenImagesPartialDataset, parse_openimages_labels
mode, root, subset = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
label_file = root + '/labels.csv'
class_file = root + '/classes.csv'
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == 'tracemalloc':
    tracemalloc.start()
start = time.perf_counter()
if mode == 'dataset':
    result = OpenImagesPartialDataset(
        data_root=root, ann_file='labels.csv', class_file='classes.csv',
        data_prefix='images', class_subset=subset,
        missing_images='unchecked')
    num_images, num_known = len(result), None
else:
    result = parse_openimages_labels(label_file, class_file, subset)
    num_images = len(result.image_ids)
    num_known = len(result.values)
seconds = time.perf_counter() - start
out = dict(seconds=seconds, num_images=num_images, num_known=num_known,
           rss_base_kb=base,
           rss_peak_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
if mode == 'tracemalloc':
    out['traced_peak'] = tracemalloc.get_traced_memory()[1]
print(json.dumps(out))
'''


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', type=int, default=5_000_000)
    parser.add_argument('--num-classes', type=int, default=600)
    parser.add_argument('--labels-per-image', type=int, default=8)
    parser.add_argument(
        '--subset',
        type=int,
        default=None,
        help='keep only the first SUBSET classes (default: all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--skip-dataset',
        action='store_true',
        help='measure the parse only, not the dataset build')
    return parser.parse_args()


def write_files(root: str, args) -> None:
    """The class descriptions (no header, as the real file) and the label
    CSV, image by image like the real (ImageID-sorted) file."""
    classes = [f'/m/{i:06x}' for i in range(args.num_classes)]
    with open(osp.join(root, 'classes.csv'), 'w') as f:
        f.writelines(f'{mid},Class {i}\n' for i, mid in enumerate(classes))
    per_image = args.labels_per_image
    stride = max(1, args.num_classes // per_image)
    if per_image * stride > args.num_classes:
        raise SystemExit('--labels-per-image exceeds --num-classes')
    rng = np.random.default_rng(args.seed)
    num_images = -(-args.rows // per_image)
    with open(osp.join(root, 'labels.csv'), 'w') as f:
        f.write('ImageID,Source,LabelName,Confidence\n')
        written = 0
        for start in range(0, num_images, 100_000):
            count = min(100_000, num_images - start)
            base = rng.integers(args.num_classes, size=count)
            cols = (base[:, None] +
                    np.arange(per_image) * stride) % args.num_classes
            confidence = rng.random((count, per_image)) < 0.4
            lines = []
            for i in range(count):
                image_id = f'{start + i:016x}'
                for c, positive in zip(cols[i].tolist(),
                                       confidence[i].tolist()):
                    if written == args.rows:
                        break
                    lines.append(f'{image_id},verification,{classes[c]},'
                                 f'{int(positive)}\n')
                    written += 1
            f.writelines(lines)


def measure(mode: str, root: str, subset) -> dict:
    output = subprocess.run(
        [sys.executable, '-c', CHILD, mode, root,
         json.dumps(subset)],
        check=True,
        capture_output=True,
        text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    args = parse_args()
    subset = (None if args.subset is None else
              [f'/m/{i:06x}' for i in range(args.subset)])
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        write_files(root, args)
        size = osp.getsize(osp.join(root, 'labels.csv'))
        print(f'Generated {args.rows:,} rows ({size / 2**20:.0f} MiB, '
              f'{args.labels_per_image} labels per image, '
              f'{args.num_classes} classes) in '
              f'{time.perf_counter() - start:.1f} s.')
        kept = args.num_classes if subset is None else len(subset)
        parse = measure('time', root, subset)
        traced = measure('tracemalloc', root, subset)
        print(f'parse_openimages_labels: {parse["num_images"]:,} images x '
              f'{kept} kept classes, {parse["num_known"]:,} known labels')
        print(f'  time                   {parse["seconds"]:8.2f} s')
        rss = (parse['rss_peak_kb'] - parse['rss_base_kb']) / 1024
        print(f'  peak RSS above imports {rss:8.1f} MiB (ru_maxrss)')
        print(f'  peak traced            '
              f'{traced["traced_peak"] / 2**20:8.1f} MiB (tracemalloc)')
        dense = parse['num_images'] * kept / 2**20
        print(f'  (dense int8 matrix of the same labels: {dense:.1f} MiB)')
        if not args.skip_dataset:
            build = measure('dataset', root, subset)
            rss = (build['rss_peak_kb'] - build['rss_base_kb']) / 1024
            print('OpenImagesPartialDataset build (parse + packed names '
                  'and sparse rows):')
            print(f'  time                   {build["seconds"]:8.2f} s')
            print(f'  peak RSS above imports {rss:8.1f} MiB (ru_maxrss)')


if __name__ == '__main__':
    main()
