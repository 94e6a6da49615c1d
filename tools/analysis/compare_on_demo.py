"""Train configs with several seeds and print the final metrics' mean/std.

Each seed sets both the training seed (``randomness.seed``) and the
partial-label draw (``train_dataloader.dataset.seed``). Runs whose work dir
already holds a finished log are reused.

Example:
    python tools/analysis/compare_on_demo.py configs/baseline_r18_demo_p10.py \
        configs/sarb_r18_demo_p10.py --seeds 0 1 2
"""
import argparse
import glob
import json
import os.path as osp
import statistics
import subprocess
import sys
import time

KEYS = ('interp-multi-label/mAP', 'interp-multi-label/CF1',
        'interp-multi-label/OF1')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-root', default='work_dirs/demo_comparison')
    parser.add_argument('--cfg-options', nargs='*', default=[])
    return parser.parse_args()


def final_metrics(work_dir):
    """Last validation entry of the newest finished run, or None."""
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data',
                               'scalars.json')))[::-1]:
        with open(path) as f:
            entries = [json.loads(line) for line in f]
        evals = [e for e in entries if KEYS[0] in e]
        if evals and osp.exists(osp.join(work_dir, 'done')):
            return evals[-1]
    return None


def run(config, seed, work_dir, extra):
    metrics = final_metrics(work_dir)
    if metrics is not None:
        return metrics, None
    start = time.time()
    subprocess.run(
        [
            sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
            '--cfg-options', f'randomness.seed={seed}',
            f'train_dataloader.dataset.seed={seed}'
        ] + extra,
        check=True)
    open(osp.join(work_dir, 'done'), 'w').close()
    return final_metrics(work_dir), time.time() - start


def main():
    args = parse_args()
    rows = []
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        results = []
        for seed in args.seeds:
            work_dir = osp.join(args.work_root, f'{name}_seed{seed}')
            metrics, seconds = run(config, seed, work_dir, args.cfg_options)
            took = f'{seconds / 60:.1f} min' if seconds else 'reused'
            print(
                f'{name} seed {seed}: ' +
                ', '.join(f'{k.split("/")[1]} {metrics[k]:.2f}'
                          for k in KEYS) + f' ({took})',
                flush=True)
            results.append(metrics)
        rows.append((name, results))
    print(f'\n{"config":28s} ' + ' '.join(f'{k.split("/")[1]:>15s}'
                                          for k in KEYS))
    for name, results in rows:
        cells = []
        for key in KEYS:
            values = [r[key] for r in results]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f'{statistics.mean(values):7.2f} +- {spread:5.2f}')
        print(f'{name:28s} ' + ' '.join(cells))
    print(f'(mean +- sample std over seeds {args.seeds})')


if __name__ == '__main__':
    main()
