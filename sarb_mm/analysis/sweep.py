"""Known-proportion sweeps: the commands to run, and the paper-style table.

A sweep trains each config once per known-label proportion, in the work
dir ``WORK_ROOT/<config name>/known<percent>``. :func:`collect_sweep` reads
finished work dirs back (from this machine or a cluster) into one row per
method with a column per proportion, as the published tables show them.
"""
import csv
import glob
import json
import os.path as osp
import shlex
import sys
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from sarb_mm.utils.errors import InvalidInputError

METRIC_PREFIX = 'interp-multi-label/'
KNOWN_RATIO_KEY = 'train_dataloader.dataset.known_ratio'


def check_proportions(percents: Sequence[int]) -> List[int]:
    """Known proportions in percent: integers in 1..100, no repeats."""
    if not percents:
        raise InvalidInputError('--known: give at least one proportion, '
                                'e.g. --known 10 30 50 70 90.')
    for value in percents:
        if not 1 <= value <= 100:
            raise InvalidInputError(
                f'--known {value}: proportions are percentages of known '
                'labels in 1..100, e.g. --known 10 30 50 70 90.')
    if len(set(percents)) != len(percents):
        raise InvalidInputError(f'--known {list(percents)}: a proportion is '
                                'repeated.')
    return sorted(percents)


def method_name(config_path: str) -> str:
    """Row name: the config's file name without a ``_p<NN>`` suffix."""
    name = osp.splitext(osp.basename(config_path))[0]
    stem, sep, tail = name.rpartition('_p')
    return stem if sep and tail.isdigit() else name


def run_dir(work_root: str, config_path: str, percent: int) -> str:
    return osp.join(work_root, method_name(config_path), f'known{percent}')


def check_sweepable(config_path: str) -> None:
    """The config must train on a PartialLabelDataset (else ``known_ratio``
    would be silently ignored or invalid)."""
    if not osp.isfile(config_path):
        raise InvalidInputError(f'Config file {config_path} does not exist.')
    cfg = Config.fromfile(config_path)
    dataset = cfg.get('train_dataloader', {}).get('dataset', {})
    if dataset.get('type') != 'PartialLabelDataset':
        raise InvalidInputError(
            f'Config {config_path}: train_dataloader.dataset is '
            f'{dataset.get("type")!r}, not a PartialLabelDataset, so it has '
            f'no {KNOWN_RATIO_KEY} to sweep. Wrap the training set in '
            'PartialLabelDataset (see configs/_base_/datasets/).')


def train_command(config_path: str, percent: int, work_root: str,
                  launch: Optional[str],
                  cfg_options: Sequence[str]) -> List[str]:
    """The training command of one run.

    Args:
        launch (str, optional): The launcher prefix, in which ``{config}``
            stands for the config path, e.g. ``bash tools/dist_train.sh
            {config} 8``. Defaults to ``python tools/train.py {config}``.
    """
    template = launch or f'{shlex.quote(sys.executable)} tools/train.py ' \
        '{config}'
    if '{config}' not in template:
        raise InvalidInputError(
            f'--launch {launch!r} has no {{config}} placeholder, e.g. '
            "--launch 'bash tools/dist_train.sh {config} 8'.")
    command = shlex.split(
        template.replace('{config}', shlex.quote(config_path)))
    return command + [
        '--work-dir',
        run_dir(work_root, config_path, percent), '--cfg-options',
        f'{KNOWN_RATIO_KEY}={percent / 100:g}'
    ] + list(cfg_options)


def read_run(work_dir: str) -> Optional[Dict]:
    """Known proportion and last validation metrics of a finished run.

    Returns None while the run is unfinished (no validation after its last
    epoch yet). mmengine dumps the merged config next to the timestamped
    log folders, so the proportion and epoch count are those actually used.
    """
    configs = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if not configs:
        return None
    cfg = Config.fromfile(configs[-1])
    ratio = cfg.train_dataloader.dataset.get('known_ratio')
    max_epochs = cfg.train_cfg.get('max_epochs')
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data',
                               'scalars.json')))[::-1]:
        with open(path) as f:
            evals = [
                entry for entry in map(json.loads, f)
                if METRIC_PREFIX + 'mAP' in entry
            ]
        if evals and evals[-1].get('step') == max_epochs:
            metrics = {
                key[len(METRIC_PREFIX):]: value
                for key, value in evals[-1].items()
                if key.startswith(METRIC_PREFIX)
            }
            return dict(known=round(ratio * 100), metrics=metrics)
    return None


def collect_sweep(work_root: str) -> Dict[str, Dict[int, Dict[str, float]]]:
    """``{method: {percent: {metric: value}}}`` of the finished runs."""
    if not osp.isdir(work_root):
        raise InvalidInputError(f'Sweep folder {work_root} does not exist.')
    table: Dict[str, Dict[int, Dict[str, float]]] = {}
    for work_dir in sorted(glob.glob(osp.join(work_root, '*', 'known*'))):
        run = read_run(work_dir)
        if run is None:
            print(f'skipped {work_dir}: not finished', file=sys.stderr)
            continue
        method = osp.basename(osp.dirname(work_dir))
        table.setdefault(method, {})[run['known']] = run['metrics']
    if not table:
        raise InvalidInputError(
            f'No finished run under {work_root}/<method>/known<percent>; '
            'run tools/analysis/sweep.py run first.')
    return table


def table_rows(table: Dict[str, Dict[int, Dict[str, float]]],
               metric: str) -> (List[str], List[List]):
    """Header and rows (method, one value per proportion, average).

    The average is over the proportions the method has; a proportion
    another method lacks is an empty cell, and then the averages of the
    two rows cover different proportions, which the header says.
    """
    percents = sorted({p for runs in table.values() for p in runs})
    header = ['method'] + [f'{p}%' for p in percents] + ['avg']
    rows = []
    for method, runs in table.items():
        if not any(metric in m for m in runs.values()):
            raise InvalidInputError(
                f'Metric {metric!r} is not in the logs of {method}; the '
                f'logged ones are {sorted(next(iter(runs.values())))}.')
        values = [runs[p][metric] if p in runs else None for p in percents]
        present = [v for v in values if v is not None]
        rows.append([method] + values + [sum(present) / len(present)])
    return header, rows


def format_markdown(header: List[str], rows: List[List]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        cells = [row[0]] + ['' if v is None else f'{v:.2f}' for v in row[1:]]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def write_csv(path: str, header: List[str], rows: List[List]) -> None:
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[0]] +
                            ['' if v is None else f'{v:.4f}' for v in row[1:]])


def plot_sweep(path: str,
               table: Dict[str, Dict[int, Dict[str, float]]],
               metric: str = 'mAP') -> None:
    """One line per method: ``metric`` against the known proportion."""
    # A bare Figure draws with Agg and leaves pyplot's backend alone.
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5, 3.5), dpi=120)
    ax = fig.subplots()
    for method, runs in table.items():
        percents = sorted(p for p in runs if metric in runs[p])
        ax.plot(
            percents, [runs[p][metric] for p in percents],
            marker='o',
            label=method)
    ax.set_xlabel('known labels (%)')
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
