"""Predict every label of images, folders or glob patterns.

Prints one line per image (its labels, best first) and optionally writes
them to JSON or CSV and draws them on the images. Exits with 0 when every
image was processed, 1 when some could not be read (the others are still
processed and written), 2 for unusable arguments (a missing input among
them: nothing is processed then).

CSV: one row per image with the columns ``image``, ``labels`` (the
predicted labels with their scores, best first, ``;``-separated),
``error`` and one score column per class. JSON: a list of
``{"img", "labels": [{"label", "score"}], "scores": {class: score}}`` with
an ``"error"`` entry for the images that failed.
"""
import argparse
import csv
import json
import os.path as osp
import sys

import numpy as np
import torch

from sarb_mm.evaluation.thresholds import thresholds_beside
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import CheckedDictAction, run_tool
from sarb_mm.utils.paths import (atomic_open, check_input_file,
                                 check_output_file, refuse_inputs)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Multi-label inference with a trained sarb_mm model')
    parser.add_argument(
        'config', help='the config the model was trained '
        'with')
    parser.add_argument('checkpoint', help='the checkpoint (.pth)')
    parser.add_argument(
        'inputs',
        nargs='+',
        metavar='INPUT',
        help='image files, folders (searched recursively) or quoted glob '
        'patterns such as "photos/**/*.jpg"')
    select = parser.add_mutually_exclusive_group()
    select.add_argument(
        '--thr',
        help='keep the labels scoring at least this: a number (default: '
        'the head\'s thr, 0.5), best-f1 (the per-class thresholds in '
        'thresholds.json beside the checkpoint, made by '
        'tools/analysis/class_thresholds.py), or a thresholds .json file')
    select.add_argument(
        '--topk', type=int, help='keep the K best labels of every image')
    parser.add_argument(
        '--out', help='write the predictions to this .json or .csv file')
    parser.add_argument(
        '--batch-size', type=int, default=8, help='images per forward pass')
    parser.add_argument(
        '--device',
        default=None,
        help='cpu, cuda or cuda:N (default: cuda if available, else cpu)')
    parser.add_argument(
        '--show-dir',
        help='write every image with its predicted labels drawn here (PNG)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CheckedDictAction,
        help='override config entries, e.g. model.head.thr=0.3')
    return parser.parse_args(argv)


def check_out_path(path: str, inputs=()) -> str:
    """The output format; fails before inference on an unusable path."""
    check_output_file(
        path,
        '--out', ('.json', '.csv'),
        inputs=inputs,
        hint='use a .json or .csv file name.')
    return osp.splitext(path)[1].lower().lstrip('.')


def summary_line(result: dict, thr, topk) -> str:
    """One readable line per image."""
    if result['error'] is not None:
        return f'{result["img"]}: FAILED: {result["error"]}'
    labels = ', '.join(f'{label["label"]} {label["score"]:.3f}'
                       for label in result['labels'])
    if not labels:
        best = int(result['scores'].argmax())
        bar = f'scores >= {thr:g}' if np.ndim(thr) == 0 else \
            'reaches its class threshold'
        labels = (f'(no label {bar}; best: '
                  f'{result["classes"][best]} '
                  f'{result["scores"][best]:.3f})')
    return f'{result["img"]}: {labels}'


def parse_thr(value, checkpoint: str):
    """``--thr``: None, a number, or the path of a thresholds file
    (``best-f1``: the one beside the checkpoint)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    if value == 'best-f1':
        path = thresholds_beside(checkpoint)
        if not osp.isfile(path):
            raise InvalidInputError(
                f'--thr best-f1 reads the per-class thresholds in {path}, '
                'which does not exist. Make it from a validation run: '
                'python tools/test.py CONFIG CHECKPOINT --out val.npz, then '
                'python tools/analysis/class_thresholds.py val.npz --out '
                f'{path}')
        return path
    if not value.lower().endswith('.json'):
        raise InvalidInputError(
            f'--thr {value!r}: give a number in [0, 1], best-f1, or a '
            'thresholds .json file.')
    check_input_file(value, '--thr thresholds file')
    return value


def write_json(path: str, results: list, classes) -> None:
    records = []
    for result in results:
        record = dict(
            img=result['img'],
            labels=[
                dict(label=label['label'], score=label['score'])
                for label in result['labels']
            ])
        if result['scores'] is not None:
            record['scores'] = {
                name: float(score)
                for name, score in zip(classes, result['scores'])
            }
        if result['error'] is not None:
            record['error'] = result['error']
        records.append(record)
    with atomic_open(path, 'w', encoding='utf-8') as f:
        json.dump(records, f, indent=2)


def write_csv(path: str, results: list, classes) -> None:
    with atomic_open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'labels', 'error', *classes])
        for result in results:
            labels = '; '.join(f'{label["label"]} ({label["score"]:.4f})'
                               for label in result['labels'])
            scores = ([f'{s:.4f}' for s in result['scores']]
                      if result['scores'] is not None else [''] * len(classes))
            writer.writerow(
                [result['img'], labels, result['error'] or '', *scores])


def main(argv=None) -> int:
    args = parse_args(argv)
    # Checked before the model is built: the arguments fail fast.
    kind = None
    if args.out is not None:
        kind = check_out_path(args.out, [args.config, args.checkpoint])
    if args.batch_size < 1:
        raise InvalidInputError(
            f'--batch-size must be >= 1, got {args.batch_size}.')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    # Imported here so that --help and argument errors need no mmpretrain.
    from sarb_mm.apis.inferencer import (MultiLabelInferencer,
                                         check_drawn_files, expand_image_paths)

    # Inputs and outputs first: a missing input, a folder without images or
    # an output that would replace an input fails before the model is built.
    inputs = expand_image_paths(args.inputs)
    thr = parse_thr(args.thr, args.checkpoint)
    if args.out is not None:
        refuse_inputs(args.out, inputs, '--out')
    if args.show_dir is not None:
        check_drawn_files(inputs, args.show_dir)
    inferencer = MultiLabelInferencer(
        args.config,
        args.checkpoint,
        device=device,
        cfg_options=args.cfg_options)
    results = inferencer(
        inputs,
        batch_size=args.batch_size,
        thr=thr,
        topk=args.topk,
        show_dir=args.show_dir)
    classes = inferencer.classes
    thr, _ = inferencer.resolve_selection(thr, args.topk)
    for result in results:
        print(summary_line(dict(result, classes=classes), thr, args.topk))
    if kind == 'json':
        write_json(args.out, results, classes)
    elif kind == 'csv':
        write_csv(args.out, results, classes)
    failed = sum(result['error'] is not None for result in results)
    done = len(results) - failed
    where = f'; predictions written to {args.out}' if args.out else ''
    drawn = f'; drawn images in {args.show_dir}' if args.show_dir else ''
    print(f'{len(results)} image(s): {done} predicted, {failed} failed'
          f'{where}{drawn}.')
    if failed:
        print(
            f'{osp.basename(sys.argv[0])}: {failed} image(s) could not be '
            'processed (see FAILED above).',
            file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    run_tool(lambda: sys.exit(main()))
