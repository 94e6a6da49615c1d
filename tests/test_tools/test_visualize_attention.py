"""tools/visualize_attention.py end to end on a tiny trained checkpoint."""
import os.path as osp
import re
import runpy
import sys

import numpy as np
import pytest
from PIL import Image

from .tiny import REPO, run_tool


@pytest.fixture(scope='module')
def trained(tiny_sarb_run):
    """A SARB checkpoint trained for one epoch, its dumped config and a
    validation image."""
    return dict(
        config=tiny_sarb_run['config'],
        checkpoint=tiny_sarb_run['checkpoint'],
        image=osp.join(tiny_sarb_run['data_root'], 'val', 'val_000001.jpg'))


def test_figure_and_scores(trained, tmp_path):
    out = str(tmp_path / 'attention.png')
    proc = run_tool([
        'tools/visualize_attention.py', trained['config'],
        trained['checkpoint'], trained['image'], '--topk', '2', '--out', out,
        '--device', 'cpu'
    ])
    printed = re.findall(r'^(\w+): (\d\.\d{4})$', proc.stdout, re.M)
    assert len(printed) == 2
    assert f'Saved the attention figure to {out}' in proc.stdout

    # The same as the Python API on the model init_model builds.
    from sarb_mm.apis.attention import class_attention
    from sarb_mm.apis.model import init_model
    model = init_model(trained['config'], trained['checkpoint'])
    result = class_attention(model, trained['image'], topk=2)
    assert [name for name, _ in printed] == result.classes
    np.testing.assert_allclose([float(s) for _, s in printed],
                               result.scores,
                               atol=1e-4)
    assert result.scores[0] >= result.scores[1]

    pixels = np.asarray(Image.open(out).convert('RGB'), dtype=np.float64)
    # The image, two class panels and the colour bar side by side.
    assert pixels.shape[1] > 2.5 * pixels.shape[0]
    assert pixels.var() > 100


def run_in_process(args, monkeypatch, capsys):
    """Run the tool as ``__main__`` in this process (no new interpreter to
    start); return its exit code and stderr."""
    tool = osp.join(REPO, 'tools', 'visualize_attention.py')
    monkeypatch.setattr(sys, 'argv', [tool] + args)
    with pytest.raises(SystemExit) as info:
        runpy.run_path(tool, run_name='__main__')
    return info.value.code, capsys.readouterr().err


def test_unknown_class_is_a_clean_error(trained, tmp_path, monkeypatch,
                                        capsys):
    out = tmp_path / 'attention.png'
    code, err = run_in_process([
        trained['config'], trained['checkpoint'], trained['image'],
        '--classes', 'red_circle', 'dog', '--out',
        str(out)
    ], monkeypatch, capsys)
    assert code == 2, err
    assert err.startswith('visualize_attention.py: error: ')
    assert "Unknown class name(s) 'dog'" in err
    assert "The model's classes are: red_circle, " in err
    assert not out.exists()


def test_baseline_config_is_a_clean_error(trained, tmp_path, monkeypatch,
                                          capsys):
    out = tmp_path / 'attention.png'
    code, err = run_in_process([
        osp.join(REPO, 'configs', 'baseline_r18_demo_p10.py'),
        trained['checkpoint'], trained['image'], '--out',
        str(out)
    ], monkeypatch, capsys)
    assert code == 2, err
    assert ('has model.neck type GlobalAveragePooling. Use such a config'
            in err)
    assert not out.exists()
