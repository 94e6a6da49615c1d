"""Train configs at several known-label proportions; tabulate the results.

Examples:
    # train baseline and SARB at 10/30/50/70/90 % known labels, one after
    # the other, then write the table and plot
    python tools/analysis/sweep.py run configs/baseline_r18_demo_p10.py \
        configs/sarb_r18_demo_p10.py --known 10 30 50 70 90
    # print the commands instead (e.g. to submit them to a cluster)
    python tools/analysis/sweep.py run configs/sarb_r101_coco_p10.py \
        --known 10 20 30 40 50 60 70 80 90 --print-only \
        --launch 'GPUS=8 bash tools/slurm_train.sh PARTITION sarb {config}'
    # tabulate finished work dirs (also mAP -> CF1, OF1 on request)
    python tools/analysis/sweep.py collect work_dirs/sweep --metrics mAP CF1
"""
import argparse
import os
import os.path as osp
import shlex
import subprocess
import sys

from sarb_mm.analysis.sweep import (check_proportions, check_sweepable,
                                    collect_sweep, format_markdown, plot_sweep,
                                    read_run, run_dir, table_rows,
                                    train_command, write_csv)
from sarb_mm.utils.launch import run_tool


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='mode', required=True)
    run = sub.add_parser('run', help='train, then collect')
    run.add_argument('configs', nargs='+')
    run.add_argument(
        '--known',
        nargs='+',
        type=int,
        default=[10, 30, 50, 70, 90],
        help='known-label proportions in percent')
    run.add_argument(
        '--print-only',
        action='store_true',
        help='print the training commands and stop')
    run.add_argument(
        '--launch',
        help="launcher template with {config}, e.g. "
        "'bash tools/dist_train.sh {config} 8'")
    run.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra KEY=VALUE options for every run')
    collect = sub.add_parser('collect', help='tabulate finished runs')
    for p in (run, collect):
        p.add_argument('--work-root', default='work_dirs/sweep')
        p.add_argument(
            '--metrics',
            nargs='+',
            default=['mAP'],
            help='tables to write (mAP, CF1, OF1, ...)')
        p.add_argument(
            '--out',
            help='output prefix for PREFIX_<metric>.md/'
            '.csv and PREFIX_mAP.png (default WORK_ROOT/sweep)')
    collect.add_argument('work_root_pos', nargs='?', metavar='WORK_ROOT')
    return parser.parse_args()


def train_all(args):
    percents = check_proportions(args.known)
    for config in args.configs:
        check_sweepable(config)
    for config in args.configs:
        for percent in percents:
            command = train_command(config, percent, args.work_root,
                                    args.launch, args.cfg_options)
            line = ' '.join(shlex.quote(c) for c in command)
            if args.print_only:
                print(line)
                continue
            work_dir = run_dir(args.work_root, config, percent)
            if read_run(work_dir) is not None:
                print(f'finished already: {work_dir}', flush=True)
                continue
            if osp.exists(osp.join(work_dir, 'last_checkpoint')):
                command.insert(command.index('--work-dir'), '--resume')
            print(f'running: {line}', flush=True)
            status = subprocess.run(command).returncode
            if status:
                sys.exit(f'sweep: this run failed (exit {status}); fix it and '
                         'rerun the sweep, finished runs are kept:\n' + line)


def write_tables(args):
    table = collect_sweep(args.work_root)
    prefix = args.out or osp.join(args.work_root, 'sweep')
    os.makedirs(osp.dirname(osp.abspath(prefix)), exist_ok=True)
    for metric in args.metrics:
        header, rows = table_rows(table, metric)
        markdown = format_markdown(header, rows)
        print(f'\n{metric}\n{markdown}')
        with open(f'{prefix}_{metric}.md', 'w') as f:
            f.write(markdown + '\n')
        write_csv(f'{prefix}_{metric}.csv', header, rows)
    plot_sweep(f'{prefix}_mAP.png', table, 'mAP')
    print(f'\nwrote {prefix}_<metric>.md/.csv and {prefix}_mAP.png')


def main():
    args = parse_args()
    if args.mode == 'collect' and args.work_root_pos:
        args.work_root = args.work_root_pos
    if args.mode == 'run':
        train_all(args)
        if args.print_only:
            return
    write_tables(args)


if __name__ == '__main__':
    run_tool(main)
