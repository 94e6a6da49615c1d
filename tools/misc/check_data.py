"""Check a prepared dataset as a config describes it.

For each split (train / val / test dataloader of the config): builds the
dataset, reads and decodes every image with the pipeline's loader, counts
the images per class (and the known / unknown entries of a partial-label
split), and lists missing and unreadable images and classes without any
positive image. Ends with a summary; the exit status is 1 when a problem
was found, 0 otherwise (2 for a bad config or argument).

Examples:
    python tools/misc/check_data.py configs/sarb_r101_coco_p10.py
    python tools/misc/check_data.py configs/sarb_r101_vg_p10.py \
        --split val --workers 8 --out vg_check.json
"""
import argparse
import json
import sys

from sarb_mm.utils.launch import (CheckedDictAction, load_config,
                                  merge_cfg_options, run_tool)
from sarb_mm.utils.paths import atomic_open, check_output_file


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog='Exit status: 0 no problem, 1 problems found, 2 bad input.')
    parser.add_argument('config', help='config file of a dataset')
    parser.add_argument(
        '--split',
        nargs='+',
        default=['train', 'val', 'test'],
        choices=['train', 'val', 'test'],
        help='splits to check (default: all; a split whose dataset equals '
        'an earlier one is checked once)')
    parser.add_argument(
        '--no-decode',
        action='store_true',
        help='only check that the image files exist (much faster)')
    parser.add_argument(
        '--workers',
        type=int,
        default=1,
        help='processes that read the images (default: 1)')
    parser.add_argument(
        '--max-listed',
        type=int,
        default=20,
        help='problem files listed per kind (default: 20)')
    parser.add_argument(
        '--out', help='also write the full findings to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CheckedDictAction,
        help='override config entries, e.g. '
        'train_dataloader.dataset.dataset.data_root=/data/coco')
    args = parser.parse_args()
    for name in ('workers', 'max_listed'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, name)}.')
    return args


def main():
    args = parse_args()
    # load_config also serves train.py / test.py; these do not apply here.
    args.work_dir, args.launcher, args.local_rank = None, 'none', 0
    cfg = load_config(args)
    merge_cfg_options(cfg, args.cfg_options)
    if args.out:
        check_output_file(args.out, '--out', inputs=[args.config])

    import sarb_mm  # noqa: F401  (registers the datasets)
    from sarb_mm.datasets.data_check import (SplitReport, check_split,
                                             format_report, format_summary,
                                             split_datasets)
    reports = []
    for split, dataset_cfg, same_as in split_datasets(cfg, args.split):
        if dataset_cfg is None:
            report = SplitReport(
                split, skipped=f'the config has no {split}_dataloader')
        elif same_as is not None:
            report = SplitReport(split, same_as=same_as)
        else:
            print(f'Checking the {split} split ...', flush=True)
            report = check_split(
                split,
                dataset_cfg,
                decode=not args.no_decode,
                workers=args.workers,
                scope=cfg.get('default_scope', 'mmpretrain'))
        print(format_report(report, args.max_listed), flush=True)
        reports.append(report)
    print(format_summary(reports))
    if args.out:
        with atomic_open(args.out, 'w', encoding='utf-8') as f:
            json.dump([r.to_dict() for r in reports], f, indent=1)
        print(f'Findings written to {args.out}')
    sys.exit(1 if any(r.problems for r in reports) else 0)


if __name__ == '__main__':
    run_tool(main)
