"""Evaluate a checkpoint with mmengine's Runner (mmpretrain-compatible).

Besides mmpretrain's flags (``--out``/``--out-item``, ``--show-dir``,
``--tta``), ``--report`` logs a per-class table and writes it as CSV.
"""
import argparse
import os.path as osp

import mmengine
from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process

from sarb_mm.engine.input_checks import check_dataset_roots
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import (add_common_args, build_runner, load_config,
                                  merge_cfg_options, run_tool,
                                  teardown_distributed)
from sarb_mm.utils.paths import (atomic_path, check_output_dir,
                                 check_output_file)

# .npz: plain arrays, safe to send to others; .pkl: mmengine's pickle,
# which mmpretrain's tools read.
PRED_SUFFIXES = ('.npz', '.pkl', '.pickle')
# mmengine.dump picks the format from the file name.
METRICS_SUFFIXES = ('.json', '.yaml', '.yml', '.pkl', '.pickle')
PRED_HINT = ('use a .npz file name (plain arrays) or .pkl (mmengine\'s '
             'pickle, for mmpretrain\'s tools).')
REPORT_NAME = 'per_class_report.csv'
METRIC_TYPE = 'InterpolatedMultiLabelMetric'


def parse_args():
    parser = argparse.ArgumentParser(description='Test a sarb_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='also write the predictions to this .npz file (plain arrays: '
        'scores, targets, classes, img_paths; safe to share) or .pkl '
        '(mmengine\'s pickle of pred_score, gt_label, ... and the class '
        'names), or with --out-item metrics the metrics to a .json / .yaml '
        '/ .pkl file')
    parser.add_argument(
        '--out-item',
        choices=['pred', 'metrics'],
        help='what --out holds: the predictions (default) or the metrics')
    parser.add_argument(
        '--report',
        nargs='?',
        const='',
        metavar='CSV_OR_DIR',
        help='log a per-class table (AP, positives, precision / recall / F1 '
        'at the metric threshold, sorted by AP) and write it as CSV to this '
        f'file, or to {REPORT_NAME} in this folder (default: the work dir)')
    parser.add_argument(
        '--show-dir',
        help='draw every --interval-th test image with its ground truth and '
        'predicted labels into this folder')
    parser.add_argument(
        '--show',
        action='store_true',
        help='show the drawn images in a window')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='draw every INTERVAL-th sample (with --show-dir / --show)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each window is shown (with --show)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation with the config\'s tta_pipeline (and '
        'tta_model, by default MultiLabelAverageScoreTTA: scores averaged, '
        'labels taken from the average)')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='evaluate even if the checkpoint does not fit the model exactly '
        '(missing / unexpected / reshaped keys are then left as initialised)')
    add_common_args(parser)
    return parser.parse_args()


def check_out_path(path: str,
                   suffixes=PRED_SUFFIXES,
                   flag: str = '--out',
                   hint: str = PRED_HINT,
                   inputs=()) -> None:
    """Fail before the test pass, not after it, on an unusable path."""
    check_output_file(path, flag, suffixes, inputs=inputs, hint=hint)


def check_flags(args) -> None:
    """Combinations of flags that cannot work, refused before any work."""
    inputs = (args.config, args.checkpoint)
    if args.out_item is not None and args.out is None:
        raise InvalidInputError(
            f'--out-item {args.out_item} needs --out FILE to write to.')
    if args.out is not None:
        if args.out_item == 'metrics':
            hint = ('use a .json, .yaml or .pkl file name (the format '
                    'follows the extension).')
            check_out_path(
                args.out, METRICS_SUFFIXES, hint=hint, inputs=inputs)
        elif args.out.lower().endswith(METRICS_SUFFIXES[:3]):
            raise InvalidInputError(
                f'--out {args.out}: the predictions are written as .npz '
                '(or .pkl); for the metrics as JSON / YAML add --out-item '
                'metrics.')
        else:
            check_out_path(args.out, inputs=inputs)
    if args.show_dir is not None:
        check_output_dir(args.show_dir, '--show-dir')
    if args.interval < 1:
        raise InvalidInputError(
            f'--interval must be 1 or more, got {args.interval}.')
    if args.tta and (args.show_dir is not None or args.show):
        raise InvalidInputError(
            '--show-dir / --show cannot be combined with --tta: '
            "mmpretrain's VisualizationHook draws one view per image, "
            'and --tta gives it several. Run them separately.')


def _is_type(entry, name: str) -> bool:
    kind = entry.get('type') if isinstance(entry, dict) else None
    if isinstance(kind, type):
        kind = kind.__name__
    return isinstance(kind, str) and kind.split('.')[-1] == name


def _metric_list(cfg: Config) -> list:
    """The metric configs of ``test_evaluator`` (a dict, a list of them or
    an Evaluator config with ``metrics``), as a list that edits them."""
    evaluator = cfg.get('test_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    if isinstance(evaluator, (list, tuple)):
        return list(evaluator)
    return [] if evaluator is None else [evaluator]


def add_dump(cfg: Config, out: str) -> None:
    """Append the prediction dump to the configured metrics."""
    kind = ('DumpPredictionArrays'
            if out.lower().endswith('.npz') else 'DumpResultsWithClasses')
    dump = dict(type=kind, out_file_path=out)
    evaluator = cfg.get('test_evaluator')
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator['metrics'] = _metric_list(cfg) + [dump]
    else:
        cfg.test_evaluator = _metric_list(cfg) + [dump]


def apply_report(cfg: Config, report: str) -> None:
    """Point the config's InterpolatedMultiLabelMetric at a report file."""
    path = report or cfg.work_dir
    if not path.lower().endswith('.csv'):
        path = osp.join(path, REPORT_NAME)
    check_out_path(path, ('.csv', ), '--report', 'use a .csv file name.',
                   (cfg.filename, cfg.load_from))
    metrics = [m for m in _metric_list(cfg) if _is_type(m, METRIC_TYPE)]
    if len(metrics) != 1:
        raise InvalidInputError(
            f'--report needs exactly one {METRIC_TYPE} in test_evaluator, '
            f'found {len(metrics)}; with several, set report_file on each '
            'in the config instead.')
    metrics[0]['report_file'] = path


def apply_show(cfg: Config, args) -> None:
    """Enable the visualization hook as mmpretrain's test.py does, with
    mmpretrain's hook replaced by :class:`MultiLabelVisualizationHook`."""
    hooks = cfg.setdefault('default_hooks', ConfigDict())
    hook = hooks.get('visualization')
    if hook is None or _is_type(hook, 'VisualizationHook'):
        hook = ConfigDict(hook or {})
        hook['type'] = 'MultiLabelVisualizationHook'
        hooks['visualization'] = hook
    hook.update(
        enable=True,
        show=args.show,
        wait_time=args.wait_time,
        out_dir=args.show_dir,
        interval=args.interval)


def apply_tta(cfg: Config) -> None:
    """Wrap the model in ``tta_model`` and test on ``tta_pipeline``."""
    if cfg.get('tta_pipeline') is None:
        raise InvalidInputError(
            '--tta: the config defines no tta_pipeline (the test-time '
            'views). Add one to the config, e.g. for horizontal flips: '
            "tta_pipeline = [*test_pipeline[:-1], dict(type='TestTimeAug', "
            "transforms=[[dict(type='RandomFlip', prob=1.), "
            "dict(type='RandomFlip', prob=0.)], [dict(type='PackInputs')]])]"
            " and tta_model = dict(type='MultiLabelAverageScoreTTA').")
    dataset = cfg.test_dataloader.dataset
    if 'pipeline' not in dataset:
        raise InvalidInputError(
            '--tta: test_dataloader.dataset has no pipeline to replace by '
            'tta_pipeline (a wrapped dataset?); set the TTA pipeline in the '
            'config directly.')
    # As mmpretrain's test.py, but its default merge (AverageClsScoreTTA)
    # keeps the first view's labels: ours derives them from the average.
    tta_model = cfg.get('tta_model') or dict(type='MultiLabelAverageScoreTTA')
    cfg.model = ConfigDict(**tta_model, module=cfg.model)
    dataset.pipeline = cfg.tta_pipeline


def merge_args(cfg: Config, args) -> Config:
    """Apply the test flags to the config."""
    if not osp.isfile(args.checkpoint):
        raise InvalidInputError(
            f'Checkpoint file {args.checkpoint} does not exist.')
    cfg.load_from = args.checkpoint
    if args.non_strict:
        cfg.load_strict = False
    # Before --out turns test_evaluator into a list, so that options such
    # as test_evaluator.per_class=True still address the metric's dict.
    merge_cfg_options(cfg, args.cfg_options)
    if args.tta:
        apply_tta(cfg)
    if args.show_dir is not None or args.show:
        apply_show(cfg, args)
    if args.report is not None:
        apply_report(cfg, args.report)
    if args.out is not None and args.out_item != 'metrics':
        add_dump(cfg, args.out)
    return cfg


def _dump_format(path: str) -> str:
    suffix = osp.splitext(path)[1].lower().lstrip('.')
    return dict(yml='yaml', pickle='pkl').get(suffix, suffix)


def main():
    args = parse_args()
    check_flags(args)
    cfg = merge_args(load_config(args), args)
    check_dataset_roots(cfg, ['test'])
    metrics = build_runner(cfg).test()
    if args.out_item == 'metrics' and is_main_process():
        with atomic_path(args.out) as tmp:
            mmengine.dump(metrics, tmp, file_format=_dump_format(args.out))
        print(f'Metrics written to {args.out}.')
    teardown_distributed()


if __name__ == '__main__':
    run_tool(main)
