"""The images a multi-label model gets most wrong, with pictures.

mmpretrain's ``analyze_results.py`` sorts single-label predictions into
right and wrong; this is its multi-label counterpart. From the predictions
``tools/test.py CONFIG CHECKPOINT --out preds.npz`` wrote, each image's
misses (known positives scoring under their class's threshold) and false
alarms (known negatives at or over it) are found; the images whose wrong
scores are furthest from their thresholds come first. Writes
``OUT_DIR/worst.csv`` and, for the worst ``--count`` images,
``OUT_DIR/worst/NNN_<image>.png`` (the image with its wrong labels).

Example:
    python tools/analysis/analyze_results.py preds.npz analysis/ \\
        --thr work_dirs/sarb_r18_demo_p10/thresholds.json --count 20
"""
import argparse
import csv
import os
import os.path as osp

import numpy as np
from PIL import Image

from sarb_mm.evaluation import load_prediction_arrays
from sarb_mm.evaluation.decision_errors import decision_errors, worst_images
from sarb_mm.evaluation.thresholds import load_thresholds
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import run_tool
from sarb_mm.utils.paths import atomic_open, check_output_dir
from sarb_mm.visualization.decision_errors import draw_decision_errors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('predictions', help='.npz written by tools/test.py')
    parser.add_argument('out_dir', help='folder for worst.csv and pictures')
    parser.add_argument(
        '--thr',
        default='0.5',
        help='a threshold for every class (default 0.5) or a thresholds '
        '.json (tools/analysis/class_thresholds.py)')
    parser.add_argument(
        '--count', type=int, default=20, help='worst images drawn')
    parser.add_argument(
        '--image-root',
        default='',
        help='folder the relative image paths of the predictions are '
        'under (default: the current folder, where tools/test.py ran)')
    return parser.parse_args(argv)


def thresholds_from(value: str, classes) -> np.ndarray:
    try:
        thr = float(value)
    except ValueError:
        return load_thresholds(value, classes)
    if not 0 <= thr <= 1:
        raise InvalidInputError(f'--thr must be in [0, 1], got {thr}.')
    return np.full(len(classes), thr)


def main(argv=None) -> list:
    args = parse_args(argv)
    if args.count < 0:
        raise InvalidInputError(f'--count must be >= 0, got {args.count}.')
    out_dir = check_output_dir(args.out_dir, 'OUT_DIR')
    pictures = osp.join(out_dir, 'worst')
    if osp.isdir(pictures) and os.listdir(pictures):
        raise InvalidInputError(
            f'{pictures} already holds pictures (of an earlier analysis); '
            'give another OUT_DIR, or remove that folder.')
    arrays = load_prediction_arrays(args.predictions)
    classes = arrays['classes']
    thresholds = thresholds_from(args.thr, classes)
    errors = decision_errors(arrays['scores'], arrays['labels'],
                             arrays['valid'], thresholds)
    ranked = worst_images(errors, len(errors))

    def names(wrong):
        return '; '.join(f'{classes[w.index]} {w.score:.4f}' for w in wrong)

    with atomic_open(osp.join(out_dir, 'worst.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['rank', 'image', 'margin', 'misses', 'false_alarms'])
        for rank, e in enumerate(ranked, 1):
            writer.writerow([
                rank, arrays['img_paths'][e.image], f'{e.margin:.4f}',
                names(e.misses),
                names(e.false_alarms)
            ])
    drawn = []
    for rank, e in enumerate(ranked[:args.count], 1):
        path = osp.join(args.image_root, arrays['img_paths'][e.image])
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert('RGB'))
        except (OSError, Image.DecompressionBombError) as err:
            print(f'Not drawn: {path}: {err}')
            continue
        name = osp.splitext(osp.basename(path))[0] or f'image{e.image}'
        out = osp.join(pictures, f'{rank:03d}_{name}.png')
        check_output_dir(pictures, 'OUT_DIR/worst')
        draw_decision_errors(pixels, e, classes, out)
        drawn.append(out)
    misses = sum(len(e.misses) for e in errors)
    alarms = sum(len(e.false_alarms) for e in errors)
    print(f'{len(errors)} images: {len(ranked)} with a wrong label '
          f'({misses} misses, {alarms} false alarms). Worst first:')
    for rank, e in enumerate(ranked[:10], 1):
        print(f'{rank:3d}. {arrays["img_paths"][e.image]}  margin '
              f'{e.margin:.3f}  missed [{names(e.misses)}]  false alarms '
              f'[{names(e.false_alarms)}]')
    print(f'Table in {osp.join(out_dir, "worst.csv")}; {len(drawn)} '
          f'pictures in {osp.join(out_dir, "worst")}.')
    return ranked


if __name__ == '__main__':
    run_tool(main)
