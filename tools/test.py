"""Evaluate a checkpoint with mmengine's Runner (mmpretrain-compatible)."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from sarb_mm.utils.launch import build_runner, teardown_distributed


def parse_args():
    parser = argparse.ArgumentParser(description='Test a sarb_mm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs')
    parser.add_argument(
        '--out',
        help='also dump every prediction (pred_score, gt_label, ...) to this '
        'pickle file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out {args.out}: use a .pkl file name.')
        evaluator = cfg.test_evaluator
        evaluators = list(evaluator) if isinstance(evaluator,
                                                    (list, tuple)) else [
                                                        evaluator
                                                    ]
        evaluators.append(dict(type='DumpResults', out_file_path=args.out))
        cfg.test_evaluator = evaluators
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def main():
    args = parse_args()
    for path, what in ((args.config, 'Config'), (args.checkpoint,
                                                  'Checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file {path} does not exist.')
    cfg = merge_args(Config.fromfile(args.config), args)
    build_runner(cfg).test()
    teardown_distributed()


if __name__ == '__main__':
    main()
