"""Known-proportion sweeps: the commands to run, and the paper-style table.

A sweep trains each config once per known-label proportion, in the work
dir ``WORK_ROOT/<config name>/known<percent>``. :func:`collect_sweep` reads
finished work dirs back (from this machine or a cluster) into one row per
method with a column per proportion, as the published tables show them.

A work dir is reused only for the settings it was trained with: a cell's
settings are its whole effective config (the config file, its bases, the
proportion and ``--cfg-options``), flattened to dotted keys. The sweep
writes them to ``<work dir>/sweep_settings.json`` before it starts a run
and compares them (or, for runs started otherwise, the config mmengine
dumped into the work dir) before it reuses or resumes one.
"""
import csv
import glob
import json
import os.path as osp
import re
import shlex
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from mmengine.config import DictAction

from sarb_mm.datasets.utils import read_text_lines
from sarb_mm.utils.config_files import load_config_file, load_dumped_config
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import merge_cfg_options
from sarb_mm.utils.paths import atomic_open, atomic_path, check_input_file

METRIC_PREFIX = 'interp-multi-label/'
KNOWN_RATIO_KEY = 'train_dataloader.dataset.known_ratio'
SETTINGS_FILE = 'sweep_settings.json'
# Keys that say where and how a run was started, not what it trains: the
# work dir, the launcher (and what tools/train.py sets for it on CPUs),
# resuming.
RUN_LOCAL_KEYS = ('work_dir', 'launcher', 'resume', 'load_from',
                  'model_wrapper_cfg', 'env_cfg.dist_cfg')
# Dataloader switches that change speed only (tools/train.py
# --no-pin-memory / --no-persistent-workers).
SPEED_ONLY_KEYS = tuple(f'{split}_dataloader.{key}'
                        for split in ('train', 'val', 'test')
                        for key in ('pin_memory', 'persistent_workers'))
IGNORED_KEYS = RUN_LOCAL_KEYS + SPEED_ONLY_KEYS
# How many differing keys a message lists.
SHOWN_DIFFERENCES = 6
_UNSET = object()


class SettingsMismatchError(InvalidInputError):
    """A work dir holds a run made with other settings than a sweep asks
    for."""


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
    cfg = load_config_file(config_path)
    dataset = cfg.get('train_dataloader', {}).get('dataset', {})
    if dataset.get('type') != 'PartialLabelDataset':
        raise InvalidInputError(
            f'Config {config_path}: train_dataloader.dataset is '
            f'{dataset.get("type")!r}, not a PartialLabelDataset, so it has '
            f'no {KNOWN_RATIO_KEY} to sweep. Wrap the training set in '
            'PartialLabelDataset (see configs/_base_/datasets/).')


def cell_options(percent: int, cfg_options: Sequence[str]) -> List[str]:
    """The ``--cfg-options`` items of one run: its proportion, then the
    sweep's options (which therefore win on the same key)."""
    return [f'{KNOWN_RATIO_KEY}={percent / 100:g}'] + list(cfg_options)


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
        run_dir(work_root, config_path, percent), '--cfg-options'
    ] + cell_options(percent, cfg_options)


def parse_cfg_options(items: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` strings parsed as ``--cfg-options`` of the tools
    parses them (mmengine's ``DictAction``), in order."""
    options: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise InvalidInputError(
                f'--cfg-options {item!r}: expected KEY=VALUE, e.g. '
                'train_cfg.max_epochs=20.')
        options[key] = DictAction._parse_iterable(value)
    return options


def flatten_settings(cfg) -> Dict[str, Any]:
    """A config as ``{dotted key: value}``, list items by index.

    E.g. ``{'model.head.in_channels': 128, 'custom_hooks.2.interval':
    2}``; empty dicts and lists are kept as values. The dotted keys are
    those ``--cfg-options`` takes, so messages name settings as a user
    would change them.
    """
    node = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    flat: Dict[str, Any] = {}

    def visit(value, prefix: str) -> None:
        if isinstance(value, dict) and value:
            items = value.items()
        elif isinstance(value, (list, tuple)) and value:
            items = enumerate(value)
        else:
            flat[prefix] = value
            return
        for key, child in items:
            visit(child, f'{prefix}.{key}' if prefix else str(key))

    visit(node, '')
    return flat


def intended_settings(config_path: str, percent: int,
                      cfg_options: Sequence[str]) -> Dict[str, Any]:
    """The flattened config one sweep run trains with.

    The config file (with its bases) with the run's ``--cfg-options``
    merged as ``tools/train.py`` merges them; what the launcher and the
    work dir set is left to the comparison to ignore (``IGNORED_KEYS``).

    Raises:
        InvalidInputError: An option that cannot be applied, named.
    """
    cfg = load_config_file(config_path)
    merge_cfg_options(cfg,
                      parse_cfg_options(cell_options(percent, cfg_options)))
    return flatten_settings(cfg)


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == k or key.startswith(k + '.') for k in ignore)


def _canonical(value) -> str:
    # JSON text: a tuple read back from a dump equals the list, and a
    # value stored in sweep_settings.json equals the live one.
    return json.dumps(value, sort_keys=True, default=repr)


def settings_differences(
        old: Dict[str, Any],
        new: Dict[str, Any],
        ignore: Iterable[str] = IGNORED_KEYS) -> List[Tuple[str, Any, Any]]:
    """``(key, old value, new value)`` of the keys whose values differ.

    A key one side lacks has the value ``_UNSET`` there. Keys under
    ``ignore`` (dotted prefixes) are skipped.
    """
    ignore = tuple(ignore)
    return [(key, old.get(key, _UNSET), new.get(key, _UNSET))
            for key in sorted(set(old) | set(new))
            if not _ignored(key, ignore) and _canonical(old.get(key, _UNSET))
            != _canonical(new.get(key, _UNSET))]


def _shown(value) -> str:
    text = 'not set' if value is _UNSET else repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def format_differences(differences: List[Tuple[str, Any, Any]], old_name: str,
                       new_name: str) -> str:
    """Up to ``SHOWN_DIFFERENCES`` lines ``key: OLD (old_name) -> NEW
    (new_name)``, and how many more differ."""
    lines = [
        f'  {key}: {_shown(old)} ({old_name}) -> {_shown(new)} ({new_name})'
        for key, old, new in differences[:SHOWN_DIFFERENCES]
    ]
    more = len(differences) - SHOWN_DIFFERENCES
    if more > 0:
        lines.append(f'  ... and {more} more')
    return '\n'.join(lines)


def dumped_config(work_dir: str) -> Optional[str]:
    """The config mmengine dumped into ``work_dir`` (``<config name>.py``),
    the newest if the dir was trained from several config files."""
    configs = glob.glob(osp.join(work_dir, '*.py'))
    return max(configs, key=osp.getmtime) if configs else None


def write_settings(work_dir: str, settings: Dict[str, Any]) -> str:
    """Record the settings a run is started with in its work dir."""
    path = osp.join(work_dir, SETTINGS_FILE)
    with atomic_open(path) as f:
        json.dump(settings, f, indent=1, sort_keys=True, default=repr)
    return path


def recorded_settings(work_dir: str) -> Optional[Tuple[Dict[str, Any], str]]:
    """The settings of the run in ``work_dir`` and the file they are from.

    ``sweep_settings.json`` when the sweep started the run (it holds the
    intended config, comparable with :func:`intended_settings` whatever
    flags the ``--launch`` template adds), else the config mmengine
    dumped. None when no run was ever started there (no dumped config).

    Raises:
        InvalidInputError: ``sweep_settings.json`` cannot be read.
    """
    dumped = dumped_config(work_dir)
    if dumped is None:
        return None
    path = osp.join(work_dir, SETTINGS_FILE)
    if not osp.lexists(path):
        return flatten_settings(load_dumped_config(dumped)), dumped
    fix = (f'Delete it: the sweep then compares with the config mmengine '
           f'dumped, {dumped}.')
    check_input_file(path, 'Sweep settings file', fix)
    try:
        with open(path, encoding='utf-8') as f:
            settings = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidInputError(f'Sweep settings file {path} is not valid '
                                f'JSON ({err}). {fix}') from None
    if not isinstance(settings, dict):
        raise InvalidInputError(f'Sweep settings file {path} holds no '
                                f'settings dict. {fix}')
    return settings, path


def plan_run(work_dir: str, intended: Dict[str, Any]) -> str:
    """What to do with one cell: ``'finished'``, ``'resume'`` or
    ``'train'`` (afresh).

    A finished run is reused, and an unfinished one with a checkpoint
    resumed, only if it was made with the ``intended`` settings. An
    unfinished run without a checkpoint holds nothing to reuse and is
    trained afresh.

    Raises:
        SettingsMismatchError: The run in ``work_dir`` (finished, or to be
            resumed) was made with other settings; the message lists the
            differing keys and the fix.
        InvalidInputError: Its ``sweep_settings.json`` cannot be read.
    """
    finished = read_run(work_dir) is not None
    if not finished and not osp.exists(osp.join(work_dir, 'last_checkpoint')):
        return 'train'
    recorded = recorded_settings(work_dir)
    if recorded is not None:
        settings, source = recorded
        differences = settings_differences(settings, intended)
        if differences:
            state = ('holds a finished run' if finished else
                     'holds an unfinished run the sweep would resume')
            count = (f'{len(differences)} keys differ'
                     if len(differences) > 1 else '1 key differs')
            raise SettingsMismatchError(
                f'{work_dir} {state} made with other settings than this '
                f'sweep asks for ({count}; the run\'s settings are read from '
                f'{source}):\n'
                f'{format_differences(differences, "run", "now")}\n'
                'Its results would not be those of these settings. Use '
                f'another --work-root for them, or delete {work_dir} to '
                'train it again.')
    return 'finished' if finished else 'resume'


def plan_sweep(configs: Sequence[str], percents: Sequence[int], work_root: str,
               cfg_options: Sequence[str]) -> List[Tuple[str, int, Dict, str]]:
    """``(config, percent, settings, action)`` of every cell (``action``
    from :func:`plan_run`), all checked before any run starts.

    Raises:
        InvalidInputError: Naming every cell whose work dir holds a run of
            other settings (the differences of the first few).
    """
    plans, conflicts = [], []
    for config in configs:
        for percent in percents:
            intended = intended_settings(config, percent, cfg_options)
            work_dir = run_dir(work_root, config, percent)
            try:
                action = plan_run(work_dir, intended)
            except SettingsMismatchError as err:
                conflicts.append((work_dir, str(err)))
                continue
            plans.append((config, percent, intended, action))
    if conflicts:
        shown = 3
        details = [message for _, message in conflicts[:shown]]
        if len(conflicts) > shown:
            details.append('Also made with other settings: ' +
                           ', '.join(work_dir
                                     for work_dir, _ in conflicts[shown:]) +
                           '.')
        which = ('a work dir of this sweep holds a run' if len(conflicts) == 1
                 else f'{len(conflicts)} work dirs of this sweep hold runs')
        raise InvalidInputError(
            f'Nothing was trained: {which} made with other settings.\n' +
            '\n'.join(details))
    return plans


def read_run(work_dir: str) -> Optional[Dict]:
    """Known proportion, last validation metrics and settings (the
    flattened config) of a finished run.

    Returns None while the run is unfinished (no validation after its last
    epoch yet). mmengine dumps the merged config next to the timestamped
    log folders, so the proportion and epoch count are those actually used.
    """
    config = dumped_config(work_dir)
    if config is None:
        return None
    cfg = load_dumped_config(config)  # never executes a received file
    ratio = cfg.train_dataloader.dataset.get('known_ratio')
    max_epochs = cfg.train_cfg.get('max_epochs')
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data',
                               'scalars.json')))[::-1]:
        evals = [
            entry for entry in _log_entries(path)
            if METRIC_PREFIX + 'mAP' in entry
        ]
        if evals and evals[-1].get('step') == max_epochs:
            metrics = {
                key[len(METRIC_PREFIX):]: value
                for key, value in evals[-1].items()
                if key.startswith(METRIC_PREFIX)
            }
            return dict(
                known=round(ratio * 100),
                metrics=metrics,
                settings=flatten_settings(cfg))
    return None


def check_sweep_folder(work_root: str) -> str:
    """The folder to collect from must exist (and be a folder)."""
    if not osp.isdir(work_root):
        raise InvalidInputError(f'Sweep folder {work_root} does not exist.')
    return work_root


def collect_sweep(
        work_root: str,
        allow_mixed: bool = False) -> Dict[str, Dict[int, Dict[str, float]]]:
    """``{method: {percent: {metric: value}}}`` of the finished runs.

    Args:
        work_root (str): The sweep's folder.
        allow_mixed (bool): Only warn (instead of refusing) when runs of
            one method differ in settings other than the known proportion.

    Raises:
        InvalidInputError: No finished run, or (unless ``allow_mixed``)
            runs of one method made with different settings, naming the
            keys.
    """
    check_sweep_folder(work_root)
    table: Dict[str, Dict[int, Dict[str, float]]] = {}
    settings: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for work_dir in sorted(glob.glob(osp.join(work_root, '*', 'known*'))):
        run = read_run(work_dir)
        if run is None:
            print(f'skipped {work_dir}: not finished', file=sys.stderr)
            continue
        method = osp.basename(osp.dirname(work_dir))
        table.setdefault(method, {})[run['known']] = run['metrics']
        settings.setdefault(method, {})[run['known']] = run['settings']
    if not table:
        raise InvalidInputError(
            f'No finished run under {work_root}/<method>/known<percent>; '
            'run tools/analysis/sweep.py run first.')
    problems = [
        problem for method in sorted(settings)
        for problem in [mixed_settings(method, settings[method])] if problem
    ]
    if problems and not allow_mixed:
        raise InvalidInputError(
            '\n'.join(problems) + '\nA row of the table would compare '
            'proportions trained differently. Rerun those cells with one '
            'setting (delete their work dirs and run the sweep again), or '
            'pass --allow-mixed-settings to tabulate them anyway.')
    for problem in problems:
        print(f'warning: {problem}', file=sys.stderr)
    return table


def mixed_settings(method: str, runs: Dict[int, Dict[str,
                                                     Any]]) -> Optional[str]:
    """Which settings other than the proportion differ between the runs of
    one method (each against its lowest-proportion run), or None."""
    percents = sorted(runs)
    first = percents[0]
    ignore = IGNORED_KEYS + (KNOWN_RATIO_KEY, )
    differences = {}
    for percent in percents[1:]:
        for key, old, new in settings_differences(runs[first], runs[percent],
                                                  ignore):
            differences.setdefault(key, (old, new, percent))
    if not differences:
        return None
    lines = [
        f'  {key}: {_shown(old)} ({first}%) -> {_shown(new)} ({percent}%)'
        for key, (old, new,
                  percent) in sorted(differences.items())[:SHOWN_DIFFERENCES]
    ]
    if len(differences) > SHOWN_DIFFERENCES:
        lines.append(f'  ... and {len(differences) - SHOWN_DIFFERENCES} more')
    return (f'The runs of {method} differ in settings other than the known '
            f'proportion ({len(differences)} keys):\n' + '\n'.join(lines))


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


def check_metric_names(metrics: Sequence[str]) -> List[str]:
    """Metric names become parts of file names: plain names only."""
    for metric in metrics:
        if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.-]*', metric):
            raise InvalidInputError(
                f'--metrics {metric!r}: a metric name such as mAP, CF1 or '
                'OF1 (letters, digits, _ . -) is expected.')
    return list(metrics)


def output_paths(prefix: str, metrics: Sequence[str]) -> List[str]:
    """The files a sweep writes: ``PREFIX_<metric>.md`` and ``.csv`` per
    metric, and ``PREFIX_mAP.png``."""
    paths = [
        f'{prefix}_{metric}{suffix}' for metric in metrics
        for suffix in ('.md', '.csv')
    ]
    return paths + [f'{prefix}_mAP.png']


def write_markdown(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text + '\n')


def write_csv(path: str, header: List[str], rows: List[List]) -> None:
    with atomic_open(path, 'w', newline='') as f:
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
    # The temporary file keeps the extension, which savefig reads the
    # format from.
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def _log_entries(path: str) -> List[dict]:
    """The JSON objects of an mmengine ``scalars.json`` (one per line),
    read line by line with a bounded length."""
    entries = []
    for lineno, line in read_text_lines(path, 'Log file'):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as err:
            raise InvalidInputError(
                f'Log file {path!r}, line {lineno} is not JSON ({err}); the '
                'run was cut while logging or the file is not mmengine\'s '
                'scalars.json.') from None
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
