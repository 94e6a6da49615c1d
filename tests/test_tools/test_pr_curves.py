"""tools/analysis/pr_curves.py and the figure it draws."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.image import imread
from sklearn.metrics import precision_recall_curve

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.visualization.pr_curves import plot_pr_curves
from .tiny import REPO, load_tool, run_tool

TOOL = osp.join(REPO, 'tools', 'analysis', 'pr_curves.py')
NAMES = ('ant', 'bee', 'cow', 'dog', 'eel', 'fox')


def _load_tool():
    return load_tool(osp.relpath(TOOL, REPO))


tool = _load_tool()


def _data():
    """60 images x 6 classes: the classes separate better and better
    (distinct APs), scores rounded (ties), some "difficult" entries, and
    'fox' has no positive."""
    rng = np.random.default_rng(0)
    labels = rng.random((60, 6)) < 0.35
    labels[:, 5] = False
    noise = rng.random((60, 6))
    strength = np.linspace(0.2, 1.6, 6)
    scores = np.round(1 / (1 + np.exp(-(labels * strength - 1 + 2 * noise))),
                      2)
    difficult = (rng.random((60, 6)) < 0.1) & ~labels
    return scores, labels, difficult


def _samples(with_classes=True):
    scores, labels, difficult = _data()
    samples = []
    for i in range(len(scores)):
        sample = dict(
            sample_idx=i,
            pred_score=torch.from_numpy(scores[i]),
            gt_label=torch.from_numpy(np.flatnonzero(labels[i])),
            gt_label_difficult=torch.from_numpy(np.flatnonzero(difficult[i])))
        if with_classes:
            sample['classes'] = NAMES
        samples.append(sample)
    return samples


def _voc_ap(y_true, y_score):
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    interpolated = np.maximum.accumulate(precision)
    return float(np.sum(-np.diff(recall) * interpolated[:-1]))


@pytest.fixture(scope='module')
def preds(tmp_path_factory):
    path = tmp_path_factory.mktemp('preds') / 'preds.pkl'
    with open(path, 'wb') as f:
        pickle.dump(_samples(), f)
    return str(path)


def _assert_drawn(path, colors):
    """The image is readable, not blank, and shows these line colours."""
    image = imread(path)[..., :3]
    assert image.shape[0] > 400 and image.shape[1] > 400
    assert (image.min(axis=2) < 0.9).mean() > 0.02  # not mostly white
    for color in colors:
        close = np.abs(image - np.array(to_rgb(color))).max(axis=2) < 0.08
        assert close.sum() > 100, color


def test_plot_pr_curves_writes_a_figure(tmp_path):
    path = str(tmp_path / 'pr.png')
    curves = [('a', np.array([0.5, 1.0, 1.0]), np.array([1.0, 0.5, 0.0])),
              ('b', np.array([0.3, 0.2, 1.0]), np.array([1.0, 0.4, 0.0]))]
    mean = ('mean', np.array([0.9, 0.4]), np.array([0.0, 1.0]))
    fig = plot_pr_curves(curves, mean, 'title', path)
    _assert_drawn(path, ['C0', 'C1', 'black'])
    assert [t.get_text()
            for t in fig.legends[0].get_texts()] == ['a', 'b', 'mean']


def test_best_and_worst_classes(preds, tmp_path):
    out = str(tmp_path / 'pr.png')
    fig = tool.main([preds, '--out', out, '--best', '2', '--worst', '1'])
    scores, labels, difficult = _data()
    valid = ~difficult
    ap = {
        NAMES[c]: _voc_ap(labels[valid[:, c], c], scores[valid[:, c], c]) * 100
        for c in range(5)
    }
    ranked = sorted(ap, key=ap.get, reverse=True)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    expected = [f'{n} (AP {ap[n]:.1f})' for n in ranked[:2] + ranked[-1:]]
    assert texts[:3] == expected
    assert texts[3] == (
        'mean of 5 classes (interpolated precision averaged at each '
        f'recall), mAP {np.mean(list(ap.values())):.1f}')
    # Each drawn curve is scikit-learn's, without the difficult entries.
    for line, name in zip(fig.axes[0].lines, ranked[:2] + ranked[-1:]):
        c = NAMES.index(name)
        precision, recall, _ = precision_recall_curve(labels[valid[:, c], c],
                                                      scores[valid[:, c], c])
        np.testing.assert_allclose(line.get_xdata(), recall)
        np.testing.assert_allclose(line.get_ydata(), precision)
    _assert_drawn(out, ['C0', 'C1', 'C2', 'black'])


def test_named_classes_and_errors(preds, tmp_path, capsys):
    out = str(tmp_path / 'pr.png')
    fig = tool.main([preds, '--out', out, '--classes', 'dog', 'ant'])
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(' ')[0] for t in texts[:2]] == ['dog', 'ant']
    with pytest.raises(
            InvalidInputError,
            match=r"unknown class name\(s\) "
            r"\['gnu'\]; the classes are \['ant'"):
        tool.main([preds, '--out', out, '--classes', 'gnu'])
    with pytest.raises(
            InvalidInputError, match=r"\['fox'\] have no "
            'positive'):
        tool.main([preds, '--out', out, '--classes', 'fox'])
    with pytest.raises(InvalidInputError, match='does not exist'):
        tool.main([str(tmp_path / 'none.pkl'), '--out', out])
    metrics = tmp_path / 'metrics.pkl'
    metrics.write_bytes(pickle.dumps({'mAP': 50.0}))
    with pytest.raises(
            InvalidInputError, match='not one written with '
            '--out-item metrics'):
        tool.main([str(metrics), '--out', out])
    broken = tmp_path / 'broken.pkl'
    broken.write_bytes(pickle.dumps([dict(gt_label=torch.tensor([0]))]))
    with pytest.raises(
            InvalidInputError, match='broken.pkl: .* has no '
            'pred_score'):
        tool.main([str(broken), '--out', out])
    with pytest.raises(InvalidInputError, match='use a .png, .pdf'):
        tool.main([preds, '--out', str(tmp_path / 'pr.txt')])

    # Without names in the file: indices, with a note on stderr.
    bare = tmp_path / 'bare.pkl'
    bare.write_bytes(pickle.dumps(_samples(with_classes=False)))
    fig = tool.main([str(bare), '--out', out, '--best', '1', '--worst', '0'])
    assert fig.legends[0].get_texts()[0].get_text().startswith('4 (AP ')
    assert 'holds no class names' in capsys.readouterr().err


def test_class_names_from_config(tmp_path):
    """Predictions without names take them from --config's dataset."""
    samples = _samples(with_classes=False)
    twelve = []
    for sample in samples:
        score = torch.cat([sample['pred_score'], sample['pred_score']])
        twelve.append(dict(sample, pred_score=score))
    path = tmp_path / 'preds.pkl'
    path.write_bytes(pickle.dumps(twelve))
    root = str(tmp_path / 'demo')
    fig = tool.main([
        str(path), '--out',
        str(tmp_path / 'pr.png'), '--best', '1', '--worst', '0', '--config',
        'configs/sarb_r18_demo_p10.py', '--cfg-options',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.num_train=4',
        'test_dataloader.dataset.num_val=4'
    ])
    from sarb_mm.datasets.demo import SyntheticCocoDataset
    names = SyntheticCocoDataset(
        data_root=root, split='val', num_train=4,
        num_val=4).metainfo['classes']
    label = fig.legends[0].get_texts()[0].get_text()
    assert label.split(' (AP')[0] in names[:5]


def test_command_line(preds, tmp_path):
    out = str(tmp_path / 'fig.png')
    proc = run_tool([TOOL, preds, '--out', out])
    assert 'Precision-recall curves of 5 class(es)' in proc.stdout
    _assert_drawn(out, ['C0', 'black'])


class _ShellPayload:
    """What a hostile predictions file holds: unpickling it runs a
    command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f'touch {self.marker}', )


def test_a_pickled_payload_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    samples = _samples()
    samples[3]['img_path'] = _ShellPayload(marker)
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps(samples))
    with pytest.raises(InvalidInputError) as info:
        tool.main([str(evil), '--out', str(tmp_path / 'pr.png')])
    assert not marker.exists()
    assert 'not plain data' in str(info.value)
    assert not (tmp_path / 'pr.png').exists()


def _npz(tmp_path, with_names=True):
    """The samples of _data() as tools/test.py --out preds.npz writes
    them (difficult entries -1)."""
    from sarb_mm.evaluation import save_prediction_arrays
    scores, labels, difficult = _data()
    targets = np.where(difficult, -1, labels.astype(np.int8))
    path = str(tmp_path / 'preds.npz')
    names = NAMES if with_names else [str(i) for i in range(6)]
    save_prediction_arrays(path, scores, targets, names,
                           [f'{i}.jpg' for i in range(len(scores))])
    return path


def test_npz_predictions_draw_the_same_curves(preds, tmp_path):
    from_pkl = tool.main([preds, '--out', str(tmp_path / 'a.png')])
    from_npz = tool.main([_npz(tmp_path), '--out', str(tmp_path / 'b.png')])
    assert ([t.get_text() for t in from_npz.legends[0].get_texts()
             ] == [t.get_text() for t in from_pkl.legends[0].get_texts()])
    for a, b in zip(from_pkl.axes[0].lines, from_npz.axes[0].lines):
        np.testing.assert_allclose(a.get_xydata(), b.get_xydata())


def test_figure_may_not_replace_the_predictions(tmp_path):
    path = _npz(tmp_path)
    before = open(path, 'rb').read()
    png_named = tmp_path / 'preds.png'
    os.symlink(path, png_named)  # the input, reached under a figure name
    with pytest.raises(InvalidInputError, match='would overwrite the input'):
        tool.main([str(png_named), '--out', str(png_named)])
    (tmp_path / 'fig.png').mkdir()
    with pytest.raises(InvalidInputError, match='fig.png is a directory'):
        tool.main([path, '--out', str(tmp_path / 'fig.png')])
    assert open(path, 'rb').read() == before
