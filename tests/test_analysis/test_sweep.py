"""Known-proportion sweep: commands, finished-run detection, the table."""
import csv
import json
import os
import os.path as osp

import pytest

from sarb_mm.analysis.sweep import (check_proportions, collect_sweep,
                                    format_markdown, method_name, read_run,
                                    table_rows, train_command)
from sarb_mm.utils.errors import InvalidInputError
from tests.test_tools.tiny import read_scalars, run_tool, tiny_options

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
        work_dir = osp.join(root, 'baseline_r18_demo', f'known{percent}')
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
