"""Generate the synthetic multi-label demo dataset (COCO format, no download).

Writes only into a new or empty directory, or one that this tool made
before (it holds the ``.sarb_mm_demo`` marker file); any other directory is
refused, so another dataset cannot be overwritten.

Example:
    python tools/make_demo_dataset.py --out data/demo
    python tools/make_demo_dataset.py --out data/demo96 --image-size 96
    # the same images as genuinely partial JSON Lines labels: each training
    # image verified for about 30% of the classes (the rest unknown)
    python tools/make_demo_dataset.py --out data/demo_jsonl --jsonl 0.3
"""
import argparse
import sys
import time

from sarb_mm.datasets.jsonl import make_jsonl_demo
from sarb_mm.datasets.synthetic import make_demo_dataset


def parse_args():
    parser = argparse.ArgumentParser(
        description='Write a synthetic COCO-format multi-label dataset of '
        'coloured shapes for CPU demos and smoke tests.')
    parser.add_argument(
        '--out',
        default='data/demo',
        help='output root directory: new, empty, or made by this tool')
    parser.add_argument(
        '--num-train', type=int, default=2000, help='training images')
    parser.add_argument(
        '--num-val', type=int, default=500, help='validation images')
    parser.add_argument(
        '--image-size',
        type=int,
        default=64,
        help='side of the square images in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--jsonl',
        type=float,
        metavar='KNOWN_RATIO',
        help='also write classes.txt, train.jsonl and val.jsonl: each '
        'training image verified for each class with this probability, '
        'the other classes unknown (validation labels complete)')
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    try:
        info = make_demo_dataset(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=args.image_size,
            seed=args.seed)
    except (FileExistsError, NotADirectoryError, ValueError) as err:
        sys.exit(f'make_demo_dataset.py: error: {err}')
    print(f'Wrote demo dataset to {info["root"]} '
          f'in {time.time() - start:.1f}s '
          f'({info["num_categories"]} categories, '
          f'{args.image_size}x{args.image_size} px, seed {args.seed})')
    for split in ('train', 'val'):
        print(f'  {split}: {info["num_images"][split]} images '
              f'({info["num_empty_images"][split]} without objects), '
              f'{info["num_annotations"][split]} objects')
        print(f'    images:      {info["image_dirs"][split]}')
        print(f'    annotations: {info["ann_files"][split]}')
    print('  categories: ' + ', '.join(info['categories']))
    if args.jsonl is not None:
        try:
            written = make_jsonl_demo(
                args.out,
                known_ratio=args.jsonl,
                num_train=args.num_train,
                num_val=args.num_val,
                image_size=args.image_size,
                seed=args.seed)
        except (FileExistsError, NotADirectoryError, ValueError) as err:
            sys.exit(f'make_demo_dataset.py: error: {err}')
        print(f'  JSON Lines labels (train: each class verified with '
              f'probability {args.jsonl}): ' +
              ', '.join(sorted(written['ann_files'].values())))


if __name__ == '__main__':
    main()
