"""Draw precision-recall curves from the predictions of tools/test.py --out.

The figure shows the mean curve over all classes with a positive (the
interpolated precision of every class averaged at each recall, as mAP
averages the per-class APs) and the curves of the best and worst classes
by AP, or of the classes named with --classes. AP values are VOC
interpolated, as InterpolatedMultiLabelMetric reports them.

Example:
    python tools/test.py CONFIG CHECKPOINT --out preds.npz
    python tools/analysis/pr_curves.py preds.npz --out pr.png \\
        --best 3 --worst 3
"""
import argparse
import os.path as osp
import sys
from typing import Callable, List, Optional, Tuple

import numpy as np

from sarb_mm.evaluation.predictions import (load_prediction_arrays,
                                            load_prediction_pickle,
                                            samples_to_arrays)
from sarb_mm.evaluation.report import (ClassReport, mean_interpolated_curve,
                                       per_class_report,
                                       precision_recall_points)
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import CheckedDictAction, run_tool
from sarb_mm.utils.paths import check_output_file
from sarb_mm.visualization.pr_curves import plot_pr_curves

FIGURE_SUFFIXES = ('.png', '.pdf', '.svg', '.jpg')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'preds',
        help='predictions of tools/test.py --out: preds.npz (plain arrays) '
        'or preds.pkl (read as plain data only, never unpickled whole)')
    parser.add_argument(
        '--out', required=True, help='figure file (.png, .pdf, .svg)')
    parser.add_argument(
        '--best', type=int, default=3, help='draw the N classes of highest AP')
    parser.add_argument(
        '--worst', type=int, default=3, help='draw the N classes of lowest AP')
    parser.add_argument(
        '--classes',
        nargs='+',
        help='draw these classes (by name) instead of the best / worst')
    parser.add_argument(
        '--config',
        help='read the class names from this config\'s test dataset when '
        'the predictions do not hold them')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CheckedDictAction,
        help='override entries of --config, e.g. '
        'test_dataloader.dataset.data_root=data/coco')
    parser.add_argument('--title', help='figure title')
    args = parser.parse_args(argv)
    if args.best < 0 or args.worst < 0:
        parser.error('--best and --worst must be 0 or more.')
    return args


def load_predictions(
    path: str, classes_for: Callable[[], Optional[List[str]]]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[List[str]]]:
    """Scores, labels, validity (N, C) and class names of a predictions
    file: the ``.npz`` of ``tools/test.py --out preds.npz``, or an mmengine
    ``DumpResults`` pickle read as plain data only (never ``pickle.load``:
    a received pickle could run code). ``classes_for`` gives names when the
    file has none."""
    if path.lower().endswith('.npz'):
        arrays = load_prediction_arrays(path)
        return (arrays['scores'], arrays['labels'], arrays['valid'],
                arrays['classes'])
    if not path.lower().endswith(('.pkl', '.pickle')):
        raise InvalidInputError(
            f'Predictions file {path}: give the .npz (or .pkl) that '
            'tools/test.py --out wrote.')
    samples = load_prediction_pickle(path)
    classes = samples[0].get('classes')
    if classes is None:
        classes = classes_for()
    arrays = samples_to_arrays(samples, classes, where=path)
    return arrays['scores'], arrays['labels'], arrays['valid'], classes


def classes_from_config(config: str, options: Optional[dict]) -> List[str]:
    """Class names of the config's test dataset (built without pipeline)."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    import sarb_mm  # noqa: F401  (registers the datasets)
    from sarb_mm.utils.config_files import load_config_file
    from sarb_mm.utils.launch import merge_cfg_options
    cfg = load_config_file(config)
    merge_cfg_options(cfg, options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    dataset = cfg.get('test_dataloader', {}).get('dataset')
    if dataset is None:
        raise InvalidInputError(f'Config {config} has no '
                                'test_dataloader.dataset to read classes of.')
    dataset = DATASETS.build({**dataset, 'pipeline': []})
    classes = dataset.metainfo.get('classes')
    if classes is None:
        raise InvalidInputError(
            f'The test dataset of {config} has no class names in its '
            'metainfo.')
    return [str(c) for c in classes]


def select_classes(rows: List[ClassReport], args) -> List[ClassReport]:
    """The rows to draw: --classes by name, else the best / worst by AP."""
    ranked = [r for r in rows if not r.excluded]
    if args.classes:
        by_name = {r.name: r for r in rows}
        unknown = [c for c in args.classes if c not in by_name]
        if unknown:
            raise InvalidInputError(
                f'--classes: unknown class name(s) {unknown}; the classes '
                f'are {sorted(by_name)}.')
        chosen = [by_name[c] for c in args.classes]
        excluded = [r.name for r in chosen if r.excluded]
        if excluded:
            raise InvalidInputError(
                f'--classes: {excluded} have no positive in the predictions '
                'file, so they have no precision-recall curve.')
        return chosen
    best = ranked[:args.best]
    worst = ranked[len(ranked) - args.worst:] if args.worst else []
    return best + [r for r in worst if r not in best]


def main(argv=None):
    """Draw the figure of ``argv`` (default: the command line); return
    it."""
    args = parse_args(argv)
    check_output_file(
        args.out,
        '--out',
        FIGURE_SUFFIXES,
        inputs=[args.preds, args.config],
        hint='use a .png, .pdf, .svg or .jpg file name.')
    scores, labels, valid, classes = load_predictions(
        args.preds, lambda: None
        if args.config is None else classes_from_config(
            args.config, args.cfg_options))
    if classes is None:
        print(
            f'{args.preds} holds no class names (not written by this '
            "project's tools/test.py); classes are named by index. Give "
            '--config to name them.',
            file=sys.stderr)
    rows = per_class_report(scores, labels, classes, valid=valid)
    if all(r.excluded for r in rows):
        raise InvalidInputError(
            f'No class has a positive in {args.preds}: there is no '
            'precision-recall curve to draw.')

    curves = []
    for row in select_classes(rows, args):
        precision, recall, _ = precision_recall_points(scores[:, row.index],
                                                       labels[:, row.index],
                                                       valid[:, row.index])
        curves.append((f'{row.name} (AP {row.ap:.1f})', precision, recall))
    grid, mean_precision, num = mean_interpolated_curve(scores, labels, valid)
    mean_ap = np.mean([r.ap for r in rows if not r.excluded])
    mean_label = (f'mean of {num} classes (interpolated precision averaged '
                  f'at each recall), mAP {mean_ap:.1f}')
    title = args.title or (f'{osp.basename(args.preds)}: {len(scores)} '
                           f'images, {len(rows)} classes')
    fig = plot_pr_curves(curves, (mean_label, mean_precision, grid), title,
                         args.out)
    print(f'Precision-recall curves of {len(curves)} class(es) and the mean '
          f'over {num} written to {args.out}.')
    return fig


if __name__ == '__main__':
    run_tool(main)
