"""Evaluate a checkpoint with mmengine's Runner (mmpretrain-compatible)."""
import argparse
import os
import os.path as osp

from mmengine.config import Config

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import (add_common_args, build_runner, load_config,
                                  merge_cfg_options, run_tool,
                                  teardown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a sarb_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='also dump every prediction (pred_score, gt_label, ...) to this '
        'pickle file')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='evaluate even if the checkpoint does not fit the model exactly '
        '(missing / unexpected / reshaped keys are then left as initialised)')
    add_common_args(parser)
    return parser.parse_args()


def check_out_path(path: str) -> None:
    """Fail before the test pass, not after it, on an unusable ``--out``."""
    if not path.endswith(('.pkl', '.pickle')):
        raise InvalidInputError(
            f'--out {path}: use a .pkl file name (the predictions are '
            'pickled).')
    if osp.isdir(path):
        raise InvalidInputError(f'--out {path} is a directory; give a file '
                                'name such as preds.pkl.')
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise InvalidInputError(f'--out {path}: cannot create {folder} '
                                f'({err.strerror}).') from None
    if not os.access(folder, os.W_OK) or (osp.exists(path)
                                          and not os.access(path, os.W_OK)):
        raise InvalidInputError(f'--out {path}: not writable; choose '
                                'another path.')


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
    if args.out is not None:
        check_out_path(args.out)
        evaluator = cfg.test_evaluator
        evaluators = list(evaluator) if isinstance(
            evaluator, (list, tuple)) else [evaluator]
        evaluators.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluators
    return cfg


def main():
    args = parse_args()
    cfg = merge_args(load_config(args), args)
    build_runner(cfg).test()
    teardown_distributed()


if __name__ == '__main__':
    run_tool(main)
