"""Known-proportion sweep: commands, finished-run detection, the table."""
import csv
import json
import os
import os.path as osp
import subprocess

import pytest
from mmengine.config import Config

from sarb_mm.analysis.sweep import (SETTINGS_FILE, check_proportions,
                                    collect_sweep, format_markdown,
                                    intended_settings, method_name,
                                    parse_cfg_options, plan_run, plan_sweep,
                                    read_run, run_dir, table_rows,
                                    train_command)
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import merge_cfg_options
from tests.test_tools.tiny import (load_tool, read_scalars, run_tool,
                                   tiny_options)

BASELINE = 'configs/baseline_r18_demo_p10.py'


def test_method_name_drops_the_proportion_suffix():
    assert method_name('configs/sarb_r101_coco_p10.py') == 'sarb_r101_coco'
    assert method_name('x/my_model.py') == 'my_model'
    assert method_name('x/sarb_pretty.py') == 'sarb_pretty'


def test_train_command_sets_known_ratio_and_work_dir():
    command = train_command(
        BASELINE,
        30,
        'root',
        launch='bash '
        'tools/dist_train.sh {config} 8',
        cfg_options=['a.b=1'])
    assert command == [
        'bash', 'tools/dist_train.sh', BASELINE, '8', '--work-dir',
        osp.join('root', 'baseline_r18_demo', 'known30'), '--cfg-options',
        'train_dataloader.dataset.known_ratio=0.3', 'a.b=1'
    ]
    with pytest.raises(InvalidInputError, match='placeholder'):
        train_command(BASELINE, 30, 'root', launch='bash x.sh', cfg_options=[])


@pytest.mark.parametrize('bad', [[], [0], [10, 150], [10, 10]])
def test_bad_proportions_are_refused(bad):
    with pytest.raises(InvalidInputError, match='--known'):
        check_proportions(bad)


def _fake_run(work_dir, ratio, epochs, evals):
    """What mmengine leaves in a work dir: the dumped config and the log."""
    os.makedirs(osp.join(work_dir, '20260101_000000', 'vis_data'))
    with open(osp.join(work_dir, 'cfg.py'), 'w') as f:
        f.write(f'train_dataloader = dict(dataset=dict(known_ratio={ratio}))\n'
                f'train_cfg = dict(max_epochs={epochs})\n')
    with open(
            osp.join(work_dir, '20260101_000000', 'vis_data', 'scalars.json'),
            'w') as f:
        f.write(json.dumps({'loss': 1.0, 'step': 1}) + '\n')
        for step, value in evals:
            f.write(
                json.dumps({
                    'interp-multi-label/mAP': value,
                    'interp-multi-label/CF1': value / 2,
                    'step': step
                }) + '\n')


def test_collect_reads_last_epoch_and_averages(tmp_path):
    root = str(tmp_path)
    _fake_run(osp.join(root, 'sarb', 'known10'), 0.1, 4, [(2, 1.), (4, 50.)])
    _fake_run(osp.join(root, 'sarb', 'known50'), 0.5, 4, [(4, 70.)])
    _fake_run(osp.join(root, 'base', 'known10'), 0.1, 4, [(4, 40.)])
    # Stopped after epoch 2 of 4: not a result.
    _fake_run(osp.join(root, 'base', 'known50'), 0.5, 4, [(2, 99.)])
    assert read_run(osp.join(root, 'base', 'known50')) is None
    table = collect_sweep(root)
    header, rows = table_rows(table, 'mAP')
    assert header == ['method', '10%', '50%', 'avg']
    assert rows == [['base', 40.0, None, 40.0], ['sarb', 50.0, 70.0, 60.0]]
    assert table_rows(table, 'CF1')[1][1] == ['sarb', 25.0, 35.0, 30.0]
    assert format_markdown(header, rows).splitlines()[2] == \
        '| base | 40.00 |  | 40.00 |'
    with pytest.raises(InvalidInputError, match="'XF1' is not in the logs"):
        table_rows(table, 'XF1')


# A sweepable config without the demo data: runs of it are faked below.
TINY_CONFIG = """
train_dataloader = dict(
    dataset=dict(type='PartialLabelDataset', known_ratio=0.1))
train_cfg = dict(max_epochs=2)
model = dict(head=dict(type='Head', in_channels=64), neck=None)
custom_hooks = [dict(type='PrototypeHook', interval=2)]
"""


def _tiny_config(tmp_path):
    path = tmp_path / 'tiny_p10.py'
    path.write_text(TINY_CONFIG)
    return str(path)


def _dumped_run(work_root,
                config,
                percent,
                options,
                finished=True,
                checkpoint=False):
    """What tools/train.py and mmengine leave in a work dir: the merged
    config dumped as <config name>.py, the log, maybe a checkpoint."""
    work_dir = run_dir(work_root, config, percent)
    cfg = Config.fromfile(config)
    merge_cfg_options(
        cfg,
        parse_cfg_options(
            [f'train_dataloader.dataset.known_ratio={percent / 100}'] +
            options))
    cfg.work_dir, cfg.launcher = work_dir, 'pytorch'  # as train.py sets
    os.makedirs(osp.join(work_dir, '20260101_000000', 'vis_data'))
    cfg.dump(osp.join(work_dir, osp.basename(config)))
    with open(
            osp.join(work_dir, '20260101_000000', 'vis_data', 'scalars.json'),
            'w') as f:
        f.write(
            json.dumps({
                'interp-multi-label/mAP': 10. + percent,
                'step': 2 if finished else 1
            }) + '\n')
    if checkpoint:
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(work_dir, 'epoch_1.pth'))
    return work_dir


def test_a_run_of_other_settings_is_not_reused(tmp_path):
    config, root = _tiny_config(tmp_path), str(tmp_path / 'root')
    options = ['model.head.in_channels=128', 'custom_hooks.0.interval=1']
    finished = _dumped_run(root, config, 10, options)
    # The same settings (read back from the config mmengine dumped): done.
    assert plan_run(finished, intended_settings(config, 10, options)) == \
        'finished'
    # Other --cfg-options: refused, naming the keys, old and new values.
    changed = [
        'model.head.in_channels=256', 'custom_hooks.0.interval=1',
        'train_cfg.val_interval=2'
    ]
    with pytest.raises(InvalidInputError) as err:
        plan_run(finished, intended_settings(config, 10, changed))
    message = str(err.value)
    assert f'{finished} holds a finished run made with other settings' \
        in message
    assert 'model.head.in_channels: 128 (run) -> 256 (now)' in message
    assert 'train_cfg.val_interval: not set (run) -> 2 (now)' in message
    assert '2 keys differ' in message
    assert 'another --work-root' in message and f'delete {finished}' in \
        message
    # An edited config file is another setting too.
    with open(config, 'a') as f:
        f.write("model['head']['dropout'] = 0.5\n")
    with pytest.raises(
            InvalidInputError,
            match=r'model\.head\.dropout: not set \(run\) -> '
            r'0\.5 \(now\)'):
        plan_run(finished, intended_settings(config, 10, options))


def test_an_unfinished_run_of_other_settings_is_not_resumed(tmp_path):
    config, root = _tiny_config(tmp_path), str(tmp_path / 'root')
    options = ['model.head.in_channels=128']
    stopped = _dumped_run(
        root, config, 30, options, finished=False, checkpoint=True)
    assert plan_run(stopped, intended_settings(config, 30,
                                               options)) == 'resume'
    with pytest.raises(
            InvalidInputError,
            match='holds an unfinished run the sweep would '
            r'resume .*\n  model\.head\.in_channels: 128 '):
        plan_run(stopped, intended_settings(config, 30, []))
    # Without a checkpoint nothing of it is reused: trained afresh.
    os.remove(osp.join(stopped, 'last_checkpoint'))
    assert plan_run(stopped, intended_settings(config, 30, [])) == 'train'


def test_recorded_settings_are_compared_first(tmp_path):
    """Runs the sweep started are compared with the settings it recorded,
    so flags of the --launch template (here --amp) do not count."""
    config, root = _tiny_config(tmp_path), str(tmp_path / 'root')
    work_dir = _dumped_run(root, config, 10,
                           ['optim_wrapper.type=AmpOptimWrapper'])
    intended = intended_settings(config, 10, [])
    with pytest.raises(InvalidInputError, match='optim_wrapper.type'):
        plan_run(work_dir, intended)
    with open(osp.join(work_dir, SETTINGS_FILE), 'w') as f:
        json.dump(intended, f)
    assert plan_run(work_dir, intended) == 'finished'
    with pytest.raises(
            InvalidInputError,
            match=r'\.json.*\n  model\.'
            r'head\.in_channels: 64 \(run\) -> 32 \(now\)'):
        plan_run(work_dir,
                 intended_settings(config, 10, ['model.head.in_channels=32']))
    with open(osp.join(work_dir, SETTINGS_FILE), 'w') as f:
        f.write('{"model.head')
    with pytest.raises(
            InvalidInputError, match='is not valid JSON .* Delete it'):
        plan_run(work_dir, intended)


def test_every_cell_is_checked_before_training(tmp_path):
    config, root = _tiny_config(tmp_path), str(tmp_path / 'root')
    _dumped_run(root, config, 10, [])
    for percent in (30, 50, 70, 90):
        _dumped_run(root, config, percent, ['randomness.seed=1'])
    with pytest.raises(InvalidInputError) as err:
        plan_sweep([config], [10, 30, 50, 70, 90], root, [])
    message = str(err.value)
    assert message.startswith('Nothing was trained: 4 work dirs of this '
                              'sweep hold runs made with other settings.')
    assert message.count('randomness.seed: 1 (run) -> not set (now)') == 3
    assert f'Also made with other settings: {run_dir(root, config, 90)}.' \
        in message
    plans = plan_sweep([config], [10, 20], root, [])
    assert [(p, action) for _, p, _, action in plans] == [(10, 'finished'),
                                                          (20, 'train')]


def _sweep_tool():
    return load_tool('tools/analysis/sweep.py')


def _no_training(*args, **kwargs):
    raise AssertionError(f'nothing may be trained: {args}')


def test_tool_refuses_before_training(tmp_path, monkeypatch, capsys):
    config, root = _tiny_config(tmp_path), str(tmp_path / 'root')
    _dumped_run(root, config, 10, [])
    monkeypatch.setattr(subprocess, 'run', _no_training)
    tool = _sweep_tool()
    with pytest.raises(InvalidInputError, match='model.head.in_channels'):
        tool.main([
            'run', config, '--known', '10', '20', '--work-root', root,
            '--cfg-options', 'model.head.in_channels=32'
        ])
    assert not osp.exists(osp.join(run_dir(root, config, 20)))
    # Outputs are checked before any cell is planned or trained.
    os.makedirs(osp.join(root, 'sweep_CF1.csv'))
    with pytest.raises(
            InvalidInputError, match='--out .*sweep_CF1.csv is a directory'):
        tool.main([
            'run', config, '--known', '20', '--work-root', root, '--metrics',
            'mAP', 'CF1'
        ])
    with pytest.raises(InvalidInputError, match="--metrics '../x'"):
        tool.main(['collect', root, '--metrics', '../x'])
    (tmp_path / 'file').write_text('')
    with pytest.raises(InvalidInputError, match='--work-root .*not a folder'):
        tool.main(['run', config, '--work-root', str(tmp_path / 'file')])
    # The finished cell alone: reported, tabulated, written whole.
    tool.main(['run', config, '--known', '10', '--work-root', root])
    assert 'finished already' in capsys.readouterr().out
    with open(osp.join(root, 'sweep_mAP.csv')) as f:
        assert list(csv.reader(f)) == [['method', '10%', 'avg'],
                                       ['tiny', '20.0000', '20.0000']]
    assert not [
        n for n in os.listdir(root)
        if n.endswith(('.tmp', '.md')) and n.startswith('.')
    ]


def test_collect_refuses_runs_of_one_method_with_other_settings(
        tmp_path, capsys):
    config, root = _tiny_config(tmp_path), str(tmp_path / 'root')
    _dumped_run(root, config, 10, [])
    _dumped_run(root, config, 30, ['model.head.in_channels=32'])
    _dumped_run(root, config, 50, ['randomness.seed=3'])
    with pytest.raises(InvalidInputError) as err:
        collect_sweep(root)
    message = str(err.value)
    assert 'The runs of tiny differ in settings other than the known ' \
        'proportion (2 keys):' in message
    assert 'model.head.in_channels: 64 (10%) -> 32 (30%)' in message
    assert 'randomness.seed: not set (10%) -> 3 (50%)' in message
    assert '--allow-mixed-settings' in message
    assert 'known_ratio' not in message and 'work_dir' not in message
    table = collect_sweep(root, allow_mixed=True)
    assert sorted(table['tiny']) == [10, 30, 50]
    assert 'warning: The runs of tiny differ' in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_trains_and_tabulates_end_to_end(tmp_path):
    root = str(tmp_path / 'sweep')
    options = tiny_options(
        str(tmp_path / 'data'), sarb=False, epochs=1, num_train=32, num_val=24)
    run_tool([
        'tools/analysis/sweep.py', 'run', BASELINE, '--known', '50', '20',
        '--work-root', root, '--metrics', 'mAP', 'OF1', '--cfg-options'
    ] + options)
    logged = {}
    for percent in (20, 50):
        work_dir = run_dir(root, BASELINE, percent)
        assert osp.isfile(osp.join(work_dir, 'partial_labels.npy'))
        evals = [
            e for e in read_scalars(work_dir) if 'interp-multi-label/mAP' in e
        ]
        logged[percent] = evals[-1]
    with open(osp.join(root, 'sweep_mAP.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['method', '20%', '50%', 'avg']
    values = [float(v) for v in rows[1][1:]]
    expected = [
        logged[20]['interp-multi-label/mAP'],
        logged[50]['interp-multi-label/mAP']
    ]
    assert values == pytest.approx(expected + [sum(expected) / 2], abs=1e-4)
    assert osp.getsize(osp.join(root, 'sweep_mAP.png')) > 1000
    assert osp.isfile(osp.join(root, 'sweep_OF1.md'))
    # Each run's intended settings were recorded before it started.
    work_dir = run_dir(root, BASELINE, 50)
    with open(osp.join(work_dir, SETTINGS_FILE)) as f:
        recorded = json.load(f)
    assert recorded['train_dataloader.dataset.known_ratio'] == 0.5
    assert recorded['train_cfg.max_epochs'] == 1
    # Without them the config mmengine dumped is compared: it holds the
    # same settings (no spurious difference), and another option differs.
    os.remove(osp.join(work_dir, SETTINGS_FILE))
    assert plan_run(work_dir, intended_settings(BASELINE, 50,
                                                options)) == 'finished'
    with pytest.raises(
            InvalidInputError,
            match=r'train_cfg\.max_epochs: 1 \(run\) -> 2 '):
        plan_run(
            work_dir,
            intended_settings(BASELINE, 50,
                              options + ['train_cfg.max_epochs=2']))
    # A second call finds both runs finished and trains nothing.
    again = run_tool([
        'tools/analysis/sweep.py', 'run', BASELINE, '--known', '50', '20',
        '--work-root', root, '--cfg-options'
    ] + options)
    assert again.stdout.count('finished already') == 2


def test_sweep_refuses_a_config_without_partial_labels(tmp_path):
    config = tmp_path / 'full.py'
    config.write_text("train_dataloader = dict(dataset=dict(type='X'))\n")
    proc = run_tool(['tools/analysis/sweep.py', 'run',
                     str(config)],
                    check=False)
    assert proc.returncode == 2
    assert 'not a PartialLabelDataset' in proc.stderr
