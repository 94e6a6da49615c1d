"""Evaluate a checkpoint with mmengine's Runner (mmpretrain-compatible)."""
import argparse
import os.path as osp

from mmengine.config import Config

from sarb_mm.utils.launch import (add_common_args, build_runner, load_config,
                                  teardown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a sarb_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='also dump every prediction (pred_score, gt_label, ...) to this '
        'pickle file')
    add_common_args(parser)
    return parser.parse_args()


def merge_args(cfg: Config, args) -> Config:
    """Apply the test flags to the config."""
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint file {args.checkpoint} does not exist.')
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: use a .pkl file name.')
        evaluator = cfg.test_evaluator
        evaluators = list(evaluator) if isinstance(
            evaluator, (list, tuple)) else [evaluator]
        evaluators.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluators
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main():
    args = parse_args()
    cfg = merge_args(load_config(args), args)
    build_runner(cfg).test()
    teardown_distributed()


if __name__ == '__main__':
    main()
