"""Every tool refuses, before its work, an output path that names one of
its inputs (directly or through a link), and leaves the input as it was."""
import os
import os.path as osp
import sys

import pytest

from sarb_mm.utils.launch import run_tool as launch
from .tiny import REPO, load_tool

CONFIG = osp.join(REPO, 'configs', 'sarb_r18_demo_p10.py')


def _tool(relpath):
    return load_tool(relpath)


def _refused(monkeypatch, capsys, relpath, *argv):
    """Run the tool's main with ``argv``; return its one-line error."""
    tool = _tool(relpath)
    monkeypatch.setattr(sys, 'argv', [osp.basename(relpath), *argv])
    with pytest.raises(SystemExit) as info:
        launch(tool.main)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    return err


def test_vg200_names_keeps_its_objects_file(tmp_path, monkeypatch, capsys):
    objects = tmp_path / 'objects.json'
    objects.write_text('[{"image_id": 1, "objects": []}]')
    before = objects.read_bytes()
    os.symlink(objects, tmp_path / 'names.txt')
    for out, extra in ((str(objects), []), (str(tmp_path / 'names.txt'), []),
                       (str(tmp_path / 'ok.txt'), ['--details',
                                                   str(objects)])):
        err = _refused(monkeypatch, capsys, 'tools/misc/vg200_names.py',
                       str(objects), out, *extra)
        assert f'would overwrite the input {objects}' in err
    err = _refused(monkeypatch, capsys, 'tools/misc/vg200_names.py',
                   str(objects), str(tmp_path / 'a.txt'), '--details',
                   str(tmp_path / 'a.txt'))
    assert 'would overwrite the input' in err  # details over the names
    assert objects.read_bytes() == before
    assert not (tmp_path / 'a.txt').exists()


def test_make_word_vectors_keeps_its_inputs(tmp_path, monkeypatch, capsys):
    glove = tmp_path / 'glove.npy'  # an odd name, but an input
    glove.write_text('cat 0.1 0.2\n')
    classes = tmp_path / 'classes.npy'
    classes.write_text('cat\n')
    for argv in ([str(glove),
                  str(glove), '--classes',
                  str(classes)],
                 [str(glove),
                  str(classes), '--classes',
                  str(classes)]):
        err = _refused(monkeypatch, capsys, 'tools/make_word_vectors.py',
                       *argv)
        assert 'would overwrite the input' in err
    assert glove.read_text() == 'cat 0.1 0.2\n'
    assert classes.read_text() == 'cat\n'


def test_check_data_keeps_its_config(tmp_path, monkeypatch, capsys):
    config = tmp_path / 'config.json'
    config.write_text('{"a": 1}')
    err = _refused(monkeypatch, capsys, 'tools/misc/check_data.py',
                   str(config), '--out', str(config))
    assert f'--out {config} would overwrite the input {config}' in err
    assert config.read_text() == '{"a": 1}'
    os.mkfifo(tmp_path / 'fifo.json')
    err = _refused(monkeypatch, capsys, 'tools/misc/check_data.py', CONFIG,
                   '--out', str(tmp_path / 'fifo.json'))
    assert 'is a FIFO' in err


def test_visualize_attention_keeps_its_image(tmp_path, monkeypatch, capsys):
    image = tmp_path / 'photo.png'
    image.write_bytes(b'png bytes')
    err = _refused(monkeypatch, capsys, 'tools/visualize_attention.py', CONFIG,
                   str(tmp_path / 'w.pth'), str(image), '--out', str(image))
    assert f'--out {image} would overwrite the input {image}' in err
    assert image.read_bytes() == b'png bytes'
