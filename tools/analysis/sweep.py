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

A work dir that holds a run made with other settings (config file or
--cfg-options changed since) is neither reported as finished nor resumed:
the sweep stops, before training anything, listing the differing keys.
Likewise the table is refused when runs of one method differ in more than
the known proportion (--allow-mixed-settings: a warning instead).
"""
import argparse
import os.path as osp
import shlex
import subprocess
import sys

from sarb_mm.analysis.sweep import (check_metric_names, check_proportions,
                                    check_sweep_folder, check_sweepable,
                                    collect_sweep, format_markdown,
                                    output_paths, plan_sweep, plot_sweep,
                                    run_dir, table_rows, train_command,
                                    write_csv, write_markdown, write_settings)
from sarb_mm.utils.launch import run_tool
from sarb_mm.utils.paths import check_output_dir, check_output_file


def parse_args(argv=None):
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
        p.add_argument(
            '--allow-mixed-settings',
            action='store_true',
            help='tabulate runs of one method made with different settings '
            '(besides the proportion) with a warning, instead of refusing')
    collect.add_argument('work_root_pos', nargs='?', metavar='WORK_ROOT')
    return parser.parse_args(argv)


def check_outputs(args):
    """Check every output path before any training: a bad --out or
    --work-root fails now, not after hours of training."""
    check_metric_names(args.metrics)
    if args.mode == 'run':
        check_output_dir(args.work_root, '--work-root')
    else:  # read from, and the default --out is inside it
        check_sweep_folder(args.work_root)
    prefix = args.out or osp.join(args.work_root, 'sweep')
    inputs = getattr(args, 'configs', [])
    for path in output_paths(prefix, args.metrics):
        check_output_file(path, '--out', inputs=inputs)
    return prefix


def train_all(args):
    percents = check_proportions(args.known)
    for config in args.configs:
        check_sweepable(config)
    if args.print_only:
        for config in args.configs:
            for percent in percents:
                command = train_command(config, percent, args.work_root,
                                        args.launch, args.cfg_options)
                print(' '.join(shlex.quote(c) for c in command))
        return
    # Every cell is checked (a work dir holding a run of other settings
    # stops the sweep) before the first run starts.
    plans = plan_sweep(args.configs, percents, args.work_root,
                       args.cfg_options)
    for config, percent, settings, action in plans:
        work_dir = run_dir(args.work_root, config, percent)
        if action == 'finished':
            print(f'finished already: {work_dir}', flush=True)
            continue
        command = train_command(config, percent, args.work_root, args.launch,
                                args.cfg_options)
        if action == 'resume':
            command.insert(command.index('--work-dir'), '--resume')
        check_output_dir(work_dir, '--work-root')
        write_settings(work_dir, settings)
        line = ' '.join(shlex.quote(c) for c in command)
        print(f'running: {line}', flush=True)
        status = subprocess.run(command).returncode
        if status:
            sys.exit(f'sweep: this run failed (exit {status}); fix it and '
                     'rerun the sweep, finished runs are kept:\n' + line)


def write_tables(args, prefix):
    table = collect_sweep(args.work_root, args.allow_mixed_settings)
    for metric in args.metrics:
        header, rows = table_rows(table, metric)
        markdown = format_markdown(header, rows)
        print(f'\n{metric}\n{markdown}')
        write_markdown(f'{prefix}_{metric}.md', markdown)
        write_csv(f'{prefix}_{metric}.csv', header, rows)
    plot_sweep(f'{prefix}_mAP.png', table, 'mAP')
    print(f'\nwrote {prefix}_<metric>.md/.csv and {prefix}_mAP.png')


def main(argv=None):
    args = parse_args(argv)
    if args.mode == 'collect' and args.work_root_pos:
        args.work_root = args.work_root_pos
    if args.mode == 'run' and args.print_only:
        train_all(args)
        return
    prefix = check_outputs(args)
    if args.mode == 'run':
        train_all(args)
    write_tables(args, prefix)


if __name__ == '__main__':
    run_tool(main)
