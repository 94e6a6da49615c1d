"""Per-class thresholds that maximise each class's F1 on a validation run.

Reads the predictions that ``tools/test.py CONFIG CHECKPOINT --out
val.npz`` wrote (on the validation set, not the test set you report), and
writes ``thresholds.json`` (beside the checkpoint with ``--checkpoint``,
where ``tools/infer.py --thr best-f1`` looks for it, or to ``--out``).
Unknown and ignored entries are left out, as in the metric.

Example:
    python tools/test.py configs/sarb_r18_demo_p10.py \\
        work_dirs/sarb_r18_demo_p10/epoch_8.pth --out val.npz
    python tools/analysis/class_thresholds.py val.npz \\
        --checkpoint work_dirs/sarb_r18_demo_p10/epoch_8.pth
"""
import argparse

import numpy as np

from sarb_mm.evaluation import load_prediction_arrays
from sarb_mm.evaluation.thresholds import (best_f1_thresholds, save_thresholds,
                                           thresholds_beside)
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import run_tool
from sarb_mm.utils.paths import check_output_file


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('predictions', help='.npz written by tools/test.py')
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        '--checkpoint', help='write thresholds.json beside this checkpoint')
    where.add_argument('--out', help='write the thresholds to this .json')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = args.out or thresholds_beside(args.checkpoint)
    check_output_file(
        out,
        '--out', ('.json', ),
        inputs=[args.predictions],
        hint='use a .json file name.')
    arrays = load_prediction_arrays(args.predictions)
    classes = arrays['classes']
    if len(arrays['scores']) == 0:
        raise InvalidInputError(f'{args.predictions} holds no predictions.')
    targets = np.where(arrays['valid'], arrays['labels'].astype(np.int8), -1)
    thresholds, f1 = best_f1_thresholds(arrays['scores'], targets)
    save_thresholds(
        out,
        classes,
        thresholds,
        criterion='best F1 per class',
        source=args.predictions,
        f1=[None if np.isnan(v) else float(v) for v in f1])
    width = max(len(str(c)) for c in classes)
    print(f'{"class":<{width}}  threshold  F1')
    for name, thr, value in zip(classes, thresholds, f1):
        shown = '  -  (no known positive: 0.5 kept)' if np.isnan(value) \
            else f'{value:.3f}'
        print(f'{name:<{width}}  {thr:9.4f}  {shown}')
    print(f'Thresholds written to {out}.')


if __name__ == '__main__':
    run_tool(main)
