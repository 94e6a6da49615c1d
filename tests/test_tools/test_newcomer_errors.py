"""The first errors a newcomer meets: one message naming the config key,
before mmengine prints its page of environment, config and hooks."""
import functools
import http.server
import os.path as osp
import sys
import threading

import pytest
from mmengine.config import Config

from sarb_mm.engine.input_checks import (check_dataset_roots,
                                         check_pretrained_weights)
from sarb_mm.utils.launch import run_tool
from .tiny import REPO, load_tool

COCO_BASELINE = osp.join(REPO, 'configs', 'baseline_r101_coco_p10.py')
COCO_SARB = osp.join(REPO, 'configs', 'sarb_r101_coco_p10.py')
DEMO = osp.join(REPO, 'configs', 'baseline_r18_demo_p10.py')


def _refused(monkeypatch, capsys, tool, *argv):
    """Run tools/<tool> in this process; return its one-line error."""
    module = load_tool(f'tools/{tool}')
    monkeypatch.setattr(sys, 'argv', [tool, *argv])
    with pytest.raises(SystemExit) as info:
        run_tool(module.main)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.err
    # Nothing of mmengine's start-up page was printed before the error.
    assert 'System environment' not in captured.out + captured.err
    (line, ) = captured.err.strip().splitlines()
    assert line.startswith(f'{tool}: error: ')
    return line


def test_a_dataset_that_is_not_there(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = _refused(monkeypatch, capsys, 'train.py', COCO_BASELINE,
                   '--work-dir', str(tmp_path / 'w'))
    assert ("The train dataset (CocoMultiLabelDataset) is not there: its "
            "data_root 'data/coco' does not exist (config key "
            'train_dataloader.dataset.dataset.data_root') in err
    assert '--cfg-options train_dataloader.dataset.dataset.data_root=' \
        '/path/to/coco' in err
    checkpoint = tmp_path / 'epoch_20.pth'
    err = _refused(monkeypatch, capsys, 'test.py', COCO_BASELINE,
                   str(checkpoint), '--work-dir', str(tmp_path / 'w'))
    assert f'Checkpoint file {checkpoint} does not exist' in err
    checkpoint.write_bytes(b'')
    err = _refused(monkeypatch, capsys, 'test.py', COCO_BASELINE,
                   str(checkpoint), '--work-dir', str(tmp_path / 'w'))
    assert 'The test dataset (CocoMultiLabelDataset) is not there' in err


def test_weights_that_cannot_be_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    common = [
        '--work-dir',
        str(tmp_path / 'w'), '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={tmp_path}',
        f'val_dataloader.dataset.data_root={tmp_path}'
    ]
    # Unreachable (a closed port on this machine: no network needed).
    url = 'http://127.0.0.1:9/resnet101.pth'
    err = _refused(monkeypatch, capsys, 'train.py', COCO_BASELINE, *common,
                   f'model.backbone.init_cfg.checkpoint={url}')
    assert f'Cannot download the pretrained weights {url} (config key ' \
        'model.backbone.init_cfg.checkpoint)' in err
    assert '--cfg-options model.backbone.init_cfg=None' in err
    missing = str(tmp_path / 'r101.pth')
    err = _refused(monkeypatch, capsys, 'train.py', COCO_BASELINE, *common,
                   f'model.backbone.init_cfg.checkpoint={missing}')
    assert f"The pretrained weights '{missing}' (config key " \
        'model.backbone.init_cfg.checkpoint) do not exist' in err
    err = _refused(monkeypatch, capsys, 'train.py', COCO_SARB, *common,
                   'model.backbone.init_cfg=None')
    assert ("The class embeddings 'data/word_vectors/coco_glove_300d.npy' "
            '(config key model.neck.word_vectors) do not exist') in err
    err = _refused(monkeypatch, capsys, 'train.py', COCO_BASELINE, *common,
                   'model.backbone.init_cfg=None', f'load_from={missing}')
    assert f"load_from '{missing}' does not exist" in err


def test_reachable_weights_are_fetched_where_mmengine_looks(
        tmp_path, monkeypatch):
    served = tmp_path / 'served'
    served.mkdir()
    (served / 'weights.pth').write_bytes(b'0123456789')
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
        url = f'http://127.0.0.1:{server.server_address[1]}/weights.pth'
        cfg = Config(
            dict(
                model=dict(
                    backbone=dict(
                        init_cfg=dict(type='Pretrained', checkpoint=url)))))
        check_pretrained_weights(cfg, download=False)  # other ranks: no-op
        cached = tmp_path / 'torch' / 'hub' / 'checkpoints' / 'weights.pth'
        assert not cached.exists()
        check_pretrained_weights(cfg)
        assert cached.read_bytes() == b'0123456789'
    finally:
        server.shutdown()
        server.server_close()


def test_generated_and_present_datasets_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo's data/demo does not exist
    check_dataset_roots(Config.fromfile(DEMO), ['train', 'val', 'test'])
    cfg = Config.fromfile(COCO_BASELINE)
    cfg.train_dataloader.dataset.dataset.data_root = str(tmp_path)
    check_dataset_roots(cfg, ['train'])
    with pytest.raises(ValueError, match='val_dataloader.dataset.data_root'):
        check_dataset_roots(cfg, ['train', 'val'])


def test_what_mmengine_accepts_is_not_refused(tmp_path, monkeypatch):
    from sarb_mm.engine.input_checks import _cache_path
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'w.pth').write_bytes(b'x')
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    init_cfg=dict(type='Pretrained', checkpoint='~/w.pth'))),
            load_from='~/w.pth'))
    check_pretrained_weights(cfg, download=False)  # mmengine expands ~
    # Datasets that download into their data_root (mmpretrain's CIFAR).
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(type='CIFAR10', data_root='data/not_yet'))))
    check_dataset_roots(cfg, ['train'])
    # Where mmengine (torch's load_state_dict_from_url) looks.
    assert _cache_path('https://h/x.pth#sha') == _cache_path(
        'https://h/x.pth?v=1') == _cache_path('https://h/x.pth')
    assert _cache_path('https://h/x.pth').endswith(
        osp.join('checkpoints', 'x.pth'))


def test_random_weights_advice_for_a_list_of_initialisations(tmp_path):
    missing = str(tmp_path / 'w.pth')
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(init_cfg=[
                    dict(type='Kaiming', layer='Conv2d'),
                    dict(type='Pretrained', checkpoint=missing)
                ]))))
    with pytest.raises(ValueError) as err:
        check_pretrained_weights(cfg)
    assert 'model.backbone.init_cfg.1.checkpoint' in str(err.value)
    assert '--cfg-options model.backbone.init_cfg=None' in str(err.value)
