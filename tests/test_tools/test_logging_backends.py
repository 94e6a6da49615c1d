"""Curves of every loss term and of alpha/beta, and TensorBoard logging."""
import glob
import json
import os
import os.path as osp

import pytest
from tensorboard.backend.event_processing import event_accumulator

from tests.test_tools.tiny import REPO, run_tool, tiny_options

TERMS = ('loss', 'loss_cls', 'loss_ilrb', 'loss_plrb', 'loss_con', 'alpha',
         'beta')


def _mmpretrain_tool(name):
    import mmpretrain
    return osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'tools', 'analysis_tools',
        name)


@pytest.mark.slow
def test_tensorboard_backend_logs_the_same_scalars(tmp_path):
    config = tmp_path / 'sarb_tb.py'
    # The lines docs/train.md gives for TensorBoard.
    config.write_text(
        f"_base_ = [{osp.join(REPO, 'configs', 'sarb_r18_demo_p10.py')!r}]\n"
        'visualizer = dict(vis_backends=[\n'
        "    dict(type='LocalVisBackend'),\n"
        "    dict(type='TensorboardVisBackend')])\n")
    work_dir = str(tmp_path / 'work')
    run_tool([
        'tools/train.py',
        str(config), '--work-dir', work_dir, '--cfg-options'
    ] + tiny_options(str(tmp_path / 'data'), epochs=2))
    events = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1
    accumulator = event_accumulator.EventAccumulator(events[0])
    accumulator.Reload()
    with open(
            glob.glob(osp.join(work_dir, '*', 'vis_data',
                               'scalars.json'))[0]) as f:
        logged = [json.loads(line) for line in f]
    for term in TERMS + ('interp-multi-label/mAP', ):
        json_values = [(e['step'], e[term]) for e in logged if term in e]
        tb_values = [(e.step, e.value) for e in accumulator.Scalars(term)]
        assert len(json_values) == len(tb_values) > 0, term
        for (step, value), (tb_step, tb_value) in zip(json_values, tb_values):
            assert tb_step == step
            assert tb_value == pytest.approx(value, rel=1e-6), term

    # mmpretrain's analyze_logs draws every loss term and alpha/beta from
    # the same run's JSON log, one figure per call.
    curve = str(tmp_path / 'terms.png')
    log = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))[0]
    run_tool([
        _mmpretrain_tool('analyze_logs.py'), 'plot_curve', log, '--keys',
        *TERMS, '--out', curve
    ])
    assert os.path.getsize(curve) > 5000
