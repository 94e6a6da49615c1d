"""tools/test.py: --report, --show-dir, --out-item and --tta, end to end
on a tiny trained checkpoint, and the flag checks."""
import argparse
import csv
import glob
import json
import os
import os.path as osp
import pickle
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from sarb_mm.engine.hooks import MultiLabelVisualizationHook
from sarb_mm.utils.errors import InvalidInputError
from .tiny import REPO, load_tool, read_scalars, run_tool, tiny_options

SARB = 'configs/sarb_r18_demo_p10.py'
NUM_VAL = 24
TTA_LINES = """
tta_model = dict(type='MultiLabelAverageScoreTTA')
tta_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), interpolation='bicubic',
         backend='pillow'),
    dict(type='TestTimeAug',
         transforms=[[dict(type='RandomFlip', prob=1.),
                      dict(type='RandomFlip', prob=0.)],
                     [dict(type='PackInputs')]]),
]
"""


def _load_test_tool():
    return load_tool('tools/test.py')


test_tool = _load_test_tool()


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('demo_flags'))


@pytest.fixture(scope='module')
def options(demo_root):
    return tiny_options(demo_root, epochs=1, num_train=32, num_val=NUM_VAL)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, options):
    work_dir = str(tmp_path_factory.mktemp('trained_flags'))
    run_tool(
        ['tools/train.py', SARB, '--work-dir', work_dir, '--cfg-options'] +
        options)
    return work_dir


def _log_table(work_dir):
    """The per-class table of the test log, as rows of cell strings."""
    log = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(log) == 1, log
    with open(log[0]) as f:
        lines = [ln.strip() for ln in f if ln.startswith('|')]
    cells = [[c.strip() for c in ln.strip('|').split('|')] for ln in lines]
    return [c for c in cells if not set(''.join(c)) <= set('-:')]


def test_report_show_dir_and_metrics(tmp_path, trained, demo_root, options):
    work_dir = str(tmp_path / 'test')
    metrics_file = str(tmp_path / 'metrics.json')
    show_dir = str(tmp_path / 'show')
    run_tool([
        'tools/test.py', SARB,
        osp.join(trained, 'epoch_1.pth'), '--work-dir', work_dir, '--report',
        '--show-dir', show_dir, '--interval', '8', '--out', metrics_file,
        '--out-item', 'metrics', '--cfg-options'
    ] + options + ['test_evaluator.per_class=True'])

    # --out-item metrics: the metrics dict the run logged.
    with open(metrics_file) as f:
        dumped = json.load(f)
    logged = read_scalars(work_dir)[-1]
    assert len(dumped) == 13 + 12  # mAP, P/R/F1 (+top-3), 12 AP_<class>
    for key, value in dumped.items():
        assert logged[key] == pytest.approx(value, abs=1e-4)

    # --report: the CSV in the work dir equals the logged table, and its AP
    # column is the metric's per-class AP.
    with open(osp.join(work_dir, 'per_class_report.csv'), newline='') as f:
        rows = list(csv.reader(f))
    table = _log_table(work_dir)
    assert rows[0] == table[0] and rows[0][:3] == ['class', 'index', 'AP']
    assert len(rows) == len(table) == 13
    aps = []
    for line, shown in zip(rows[1:], table[1:]):
        assert line[:2] == shown[:2]
        assert line[3:6] == shown[3:6]  # positives, predicted, TP
        for col in (2, 6, 7, 8):
            assert shown[col] == (f'{float(line[col]):.2f}'
                                  if line[col] else '')
        assert float(line[2]) == pytest.approx(
            dumped[f'interp-multi-label/AP_{line[0]}'])
        aps.append(float(line[2]))
    assert aps == sorted(aps, reverse=True)

    # --show-dir: every 8th image, in RGB, enlarged to 224 px. Away from
    # the label text the drawing is the image itself.
    drawn = sorted(os.listdir(show_dir))
    assert len(drawn) == NUM_VAL // 8
    for name in drawn:
        assert name.endswith('.jpg_0.png')
        image = mmcv.imread(osp.join(show_dir, name), channel_order='rgb')
        source = mmcv.imread(
            osp.join(demo_root, 'val', name[:-len('_0.png')]),
            channel_order='rgb')
        expected = mmcv.imresize(source, (224, 224))
        assert image.shape == expected.shape
        corner = np.s_[150:, 150:]
        error = np.abs(image[corner].astype(float) - expected[corner])
        swapped = np.abs(image[corner].astype(float) -
                         expected[corner][..., ::-1])
        assert error.mean() < 2 and error.mean() < swapped.mean()
        # The top left holds the label text.
        assert np.abs(image[:40, :100].astype(float) -
                      expected[:40, :100]).mean() > 10


def _flip_averaged_scores(trained):
    """Scores of the trained model on each test image and its mirror image,
    averaged, computed here without mmpretrain's TTA machinery."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    cfg = Config.fromfile(osp.join(trained, osp.basename(SARB)))
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, osp.join(trained, 'epoch_1.pth'), 'cpu')
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    scores = {}
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            image, sample = item['inputs'], item['data_samples']
            out = model.test_step({
                'inputs': [image, image.flip(-1)],
                'data_samples': [sample, sample.clone()]
            })
            scores[sample.sample_idx] = (out[0].pred_score.numpy(),
                                         out[1].pred_score.numpy())
    return scores


def test_tta_averages_the_flipped_scores(tmp_path, trained, options):
    config = tmp_path / 'tta.py'
    config.write_text(f"_base_ = '{osp.join(REPO, SARB)}'\n" + TTA_LINES)
    out = str(tmp_path / 'tta.pkl')
    run_tool([
        'tools/test.py',
        str(config),
        osp.join(trained, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--tta', '--out', out, '--cfg-options'
    ] + options)
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == NUM_VAL
    assert predictions[0]['classes'][0] == 'red_circle'
    views = _flip_averaged_scores(trained)
    differs = 0
    for pred in predictions:
        plain, flipped = views[pred['sample_idx']]
        np.testing.assert_allclose(
            pred['pred_score'].numpy(), (plain + flipped) / 2, rtol=1e-5)
        # The labels are the averaged score's (mmpretrain's merge would
        # keep the first view's).
        np.testing.assert_array_equal(
            pred['pred_label'].numpy(),
            np.flatnonzero(pred['pred_score'].numpy() >= 0.5))
        differs += not np.allclose(plain, flipped, rtol=1e-3)
    assert differs > NUM_VAL // 2  # the mirror image is another view


def test_npz_predictions_reproduce_the_metric(tmp_path, trained, options):
    """--out preds.npz: plain arrays (no pickle) from which an independent
    VOC AP (scikit-learn's curve, interpolated) gives the logged AP."""
    from sklearn.metrics import precision_recall_curve
    work_dir, out = str(tmp_path / 'test'), str(tmp_path / 'preds.npz')
    run_tool([
        'tools/test.py', SARB,
        osp.join(trained, 'epoch_1.pth'), '--work-dir', work_dir, '--out', out,
        '--cfg-options'
    ] + options + ['test_evaluator.per_class=True'])
    with np.load(out, allow_pickle=False) as archive:
        arrays = dict(archive)
    assert sorted(arrays) == ['classes', 'img_paths', 'scores', 'targets']
    scores, targets = arrays['scores'], arrays['targets']
    assert scores.shape == targets.shape == (NUM_VAL, 12)
    assert set(np.unique(targets)) <= {0, 1}  # fully labelled val set
    assert all(osp.isfile(p) for p in arrays['img_paths'])
    logged = read_scalars(work_dir)[-1]
    for c, name in enumerate(arrays['classes']):
        known = targets[:, c] != -1
        if not targets[known, c].any():
            continue
        precision, recall, _ = precision_recall_curve(targets[known, c],
                                                      scores[known, c])
        interpolated = np.maximum.accumulate(precision)
        ap = float(np.sum(-np.diff(recall) * interpolated[:-1])) * 100
        assert logged[f'interp-multi-label/AP_{name}'] == pytest.approx(
            ap, abs=1e-3)


def _args(monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', ['test.py', *argv])
    return test_tool.parse_args()


def test_flag_checks(tmp_path, monkeypatch):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')

    def refused(match, *argv, config=SARB):
        args = _args(monkeypatch, config, str(checkpoint), *argv)
        with pytest.raises(InvalidInputError, match=match):
            test_tool.check_flags(args)
            test_tool.merge_args(test_tool.load_config(args), args)

    refused('--out-item metrics needs --out FILE', '--out-item', 'metrics')
    refused('use a .npz file name', '--out', 'preds.txt')
    refused('for the metrics as JSON / YAML add --out-item metrics', '--out',
            'preds.json')
    refused('use a .json, .yaml or .pkl file name', '--out', 'm.txt',
            '--out-item', 'metrics')
    refused('--show-dir / --show cannot be combined with --tta', '--tta',
            '--show-dir', str(tmp_path / 'show'))
    refused('--tta: the config defines no tta_pipeline', '--tta',
            '--cfg-options', 'tta_pipeline=None')
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    refused(f'--report {blocker}{os.sep}r.csv: its folder {blocker} is a file',
            '--report', str(blocker / 'r.csv'))
    # Outputs that would replace an input, or cannot be written to.
    weights = tmp_path / 'weights.pkl'
    weights.write_bytes(b'')
    args = _args(monkeypatch, SARB, str(weights), '--out', str(weights),
                 '--out-item', 'metrics')
    with pytest.raises(InvalidInputError, match='would overwrite the input'):
        test_tool.check_flags(args)
    refused('--show-dir .* is a file', '--show-dir', str(blocker))
    os.mkfifo(tmp_path / 'fifo.npz')
    refused('fifo.npz is a FIFO', '--out', str(tmp_path / 'fifo.npz'))
    refused(
        '--report needs exactly one InterpolatedMultiLabelMetric in '
        'test_evaluator, found 0', '--report', str(tmp_path / 'r.csv'),
        '--cfg-options', 'test_evaluator.type=AveragePrecision')


def test_flags_edit_the_config(tmp_path, monkeypatch):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')
    config = tmp_path / 'tta.py'
    config.write_text(f"_base_ = '{osp.join(REPO, SARB)}'\n" + TTA_LINES)
    args = _args(monkeypatch, str(config), str(checkpoint), '--tta',
                 '--report', str(tmp_path / 'reports'), '--out',
                 str(tmp_path / 'p.pkl'), '--work-dir', str(tmp_path))
    test_tool.check_flags(args)
    cfg = test_tool.merge_args(test_tool.load_config(args), args)
    assert cfg.model.type == 'MultiLabelAverageScoreTTA'
    assert cfg.model.module.type == 'ImageClassifier'
    assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'
    metric, dump = cfg.test_evaluator
    assert metric.report_file == str(tmp_path / 'reports' /
                                     'per_class_report.csv')
    assert dump == dict(
        type='DumpResultsWithClasses', out_file_path=str(tmp_path / 'p.pkl'))

    vis = str(tmp_path / 'vis')
    args = _args(monkeypatch, SARB, str(checkpoint), '--show-dir', vis,
                 '--interval', '3', '--work-dir', str(tmp_path), '--out',
                 str(tmp_path / 'p.npz'))
    test_tool.check_flags(args)
    assert osp.isdir(vis)  # made before the test pass
    cfg = test_tool.merge_args(test_tool.load_config(args), args)
    hook = cfg.default_hooks.visualization
    assert hook.type == 'MultiLabelVisualizationHook'
    assert (hook.enable, hook.out_dir, hook.interval) == (True, vis, 3)
    assert cfg.test_evaluator[-1] == dict(
        type='DumpPredictionArrays', out_file_path=str(tmp_path / 'p.npz'))


class _Recorder:
    """Stands in for the visualizer: records what the hook asks to draw."""

    def __init__(self):
        self.calls = []

    def visualize_cls(self, image, data_sample, **kwargs):
        self.calls.append((image, data_sample, kwargs))


def test_visualization_hook_colours_size_and_order():
    from mmpretrain.structures import DataSample
    from mmpretrain.visualization import UniversalVisualizer
    UniversalVisualizer.get_instance('sarb_test_flags_visualizer')
    hook = MultiLabelVisualizationHook(enable=True, interval=1)
    recorder = _Recorder()
    hook._visualizer = recorder
    model = argparse.Namespace(
        data_preprocessor=argparse.Namespace(to_rgb=True))
    hook.before_run(argparse.Namespace(model=model))

    image = torch.arange(3 * 8 * 10, dtype=torch.uint8).reshape(3, 8, 10)
    sample = DataSample().set_gt_label([1, 3]).set_pred_score(
        torch.tensor([0.1, 0.6, 0.2, 0.9, 0.7]))
    sample.set_pred_label(torch.tensor([1, 3, 4]))
    hook.after_test_iter(None, 0, {'inputs': [image]}, [sample])
    drawn, drawn_sample, kwargs = recorder.calls[0]
    # RGB order for the visualizer, whose input is RGB.
    np.testing.assert_array_equal(drawn,
                                  image.flip(0).permute(1, 2, 0).numpy())
    assert kwargs['resize'] == 224
    # Every label above the threshold, by score.
    assert drawn_sample.pred_label.tolist() == [3, 4, 1]
    assert drawn_sample.gt_label.tolist() == [1, 3]
    assert sample.pred_label.tolist() == [1, 3, 4]  # the output is intact
