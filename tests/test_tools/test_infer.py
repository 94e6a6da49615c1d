"""End to end: tools/infer.py on a freshly trained tiny demo checkpoint."""
import csv
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from sarb_mm.datasets.synthetic import DEMO_CATEGORIES
from .tiny import load_tool, run_tool

CONFIG = 'configs/sarb_r18_demo_p10.py'


@pytest.fixture(scope='module')
def trained(tiny_sarb_run):
    """(config, checkpoint, data root) of a one-epoch tiny SARB run; the
    config is the one tools/train.py dumps into the work dir, as a user
    would use it."""
    run = tiny_sarb_run
    return run['config'], run['checkpoint'], run['data_root']


@pytest.fixture(scope='module')
def images(trained, tmp_path_factory):
    """A folder of mixed formats, modes and sizes made from demo images."""
    folder = tmp_path_factory.mktemp('photos')
    val = osp.join(trained[2], 'val')
    first, second = sorted(os.listdir(val))[:2]
    with Image.open(osp.join(val, first)) as image:
        image.save(folder / 'a.jpg')
        image.convert('L').resize((90, 70)).save(folder / 'b_gray.png')
        image.convert('RGBA').resize((120, 120)).save(folder / 'c_rgba.png')
    os.makedirs(folder / 'more')
    with Image.open(osp.join(val, second)) as image:
        image.resize((40, 48)).save(folder / 'more' / 'd.bmp')
    return folder


def load_infer_tool():
    return load_tool('tools/infer.py')


@pytest.fixture(scope='module')
def json_run(trained, images, tmp_path_factory):
    """tools/infer.py on the folder plus an undecodable image, with --out
    JSON and --show-dir: (process, JSON records, broken path, drawing
    dir)."""
    config, checkpoint, _ = trained
    root = tmp_path_factory.mktemp('json_run')
    missing = str(root / 'broken.jpg')
    with open(missing, 'wb') as f:
        f.write(b'\xff\xd8 not a whole JPEG')
    out = str(root / 'results.json')
    show_dir = str(root / 'drawn')
    proc = run_tool([
        'tools/infer.py', config, checkpoint,
        str(images), missing, '--thr', '0.3', '--out', out, '--show-dir',
        show_dir, '--batch-size', '2', '--device', 'cpu'
    ],
                    check=False)
    records = None
    if osp.isfile(out):
        with open(out) as f:
            records = json.load(f)
    return proc, records, missing, show_dir


def test_infer_writes_json_and_drawings_past_a_broken_image(json_run, images):
    proc, records, missing, show_dir = json_run
    # Some image failed: non-zero, after processing and writing the rest.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert records is not None and 'FAILED' in proc.stdout
    assert missing in proc.stdout
    assert '5 image(s): 4 predicted, 1 failed' in proc.stdout

    expected = [
        str(images / name) for name in ('a.jpg', 'b_gray.png', 'c_rgba.png',
                                        osp.join('more', 'd.bmp'))
    ]
    assert [r['img'] for r in records] == expected + [missing]
    assert missing in records[-1]['error']
    assert 'scores' not in records[-1] and records[-1]['labels'] == []
    for record in records[:-1]:
        assert 'error' not in record
        # The class names come from the checkpoint's meta.
        assert list(record['scores']) == DEMO_CATEGORIES
        scores = record['scores']
        wanted = sorted((name for name in scores if scores[name] >= 0.3),
                        key=lambda name: -scores[name])
        assert [label['label'] for label in record['labels']] == wanted
        for label in record['labels']:
            assert label['score'] == scores[label['label']]
        # The line printed for the image names the same labels.
        line = next(line for line in proc.stdout.splitlines()
                    if line.startswith(record['img'] + ':'))
        for name in wanted:
            assert name in line

    drawn = sorted(os.listdir(show_dir))
    assert drawn == ['a.png', 'b_gray.png', 'c_rgba.png', 'd.png']
    for name in drawn:
        with Image.open(osp.join(show_dir, name)) as image:
            image.verify()


def test_infer_csv_matches_the_json(trained, images, json_run, tmp_path,
                                    capsys):
    config, checkpoint, _ = trained
    out = str(tmp_path / 'results.csv')
    tool = load_infer_tool()
    code = tool.main([
        config, checkpoint,
        str(images / '*.png'),
        str(images / 'more'), '--topk', '2', '--out', out
    ])
    assert code == 0
    assert '3 image(s): 3 predicted, 0 failed' in capsys.readouterr().out
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [osp.basename(r['image'])
            for r in rows] == ['b_gray.png', 'c_rgba.png', 'd.bmp']
    assert list(rows[0]) == ['image', 'labels', 'error', *DEMO_CATEGORIES]
    assert json_run[1] is not None, json_run[0].stderr[-3000:]
    json_records = {r['img']: r for r in json_run[1]}
    for row in rows:
        assert row['error'] == ''
        # The same checkpoint and images as the JSON run: same scores.
        want = json_records[row['image']]['scores']
        scores = [float(row[name]) for name in DEMO_CATEGORIES]
        np.testing.assert_allclose(
            scores, [want[name] for name in DEMO_CATEGORIES], atol=1e-4)
        labels = [part[:-1].split(' (') for part in row['labels'].split('; ')]
        assert [name for name, _ in labels] == sorted(
            want, key=lambda name: -want[name])[:2]
        for name, score in labels:
            assert score == row[name]  # both written with 4 decimals


def test_infer_bad_input_exits_2_before_building(trained, tmp_path, capsys):
    config, checkpoint, _ = trained
    tool = load_infer_tool()
    from sarb_mm.utils.launch import run_tool as launch
    empty = tmp_path / 'empty'
    empty.mkdir()
    photo = str(tmp_path / 'photo.png')  # not read: refused before
    with open(photo, 'wb') as f:
        f.write(b'png')
    for argv, message in (
        ([str(tmp_path / '*.jpg')], 'matches no image file'),
        ([photo, str(tmp_path / 'gone')], '1 input(s) do not exist: '
         f'{tmp_path / "gone"}'),
        ([photo, '--thr', 'best-f1'], 'thresholds.json'),
        ([photo, '--thr', 'high'], 'give a number in [0, 1]'),
        ([str(empty)], 'holds no images'),
        ([str(empty), '--out', str(tmp_path / 'x.txt')], '.json or .csv'),
        ([str(empty), '--batch-size', '0'], '--batch-size'),
    ):
        with pytest.raises(SystemExit) as info:
            launch(lambda: tool.main([config, checkpoint, *argv]))
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_infer_never_draws_over_its_inputs(tmp_path, capsys):
    """--show-dir pointed at the input folder, --out pointed at an input:
    refused before the model is built (the config and checkpoint need not
    even exist), and the inputs are unchanged."""
    tool = load_infer_tool()
    from sarb_mm.utils.launch import run_tool as launch
    photos = tmp_path / 'photos'
    photos.mkdir()
    (photos / 'photo.png').write_bytes(b'original png')
    config, checkpoint = str(tmp_path / 'c.py'), str(tmp_path / 'w.pth')
    for argv, message in (
        ([str(photos), '--show-dir', str(photos)],
         f'the drawn image {photos}{os.sep}photo.png would overwrite the '
         f'input image {photos}{os.sep}photo.png'),
        ([str(photos / '*.png'), '--show-dir',
          str(photos / '.')], 'would overwrite the input image'),
    ):
        with pytest.raises(SystemExit) as info:
            launch(lambda: tool.main([config, checkpoint, *argv]))
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert message in err
    assert (photos / 'photo.png').read_bytes() == b'original png'
    # An --out that is one of the images read (a .json named image would
    # not be one; a .csv symlinked to an image is).
    os.symlink(photos / 'photo.png', tmp_path / 'alias.csv')
    with pytest.raises(SystemExit):
        launch(lambda: tool.main([
            config, checkpoint,
            str(photos), '--out',
            str(tmp_path / 'alias.csv')
        ]))
    assert 'would overwrite the input' in capsys.readouterr().err
    assert (photos / 'photo.png').read_bytes() == b'original png'


def test_infer_never_draws_through_a_hard_link(tmp_path, capsys):
    """A drawn file that is a hard link of an input is the same file."""
    tool = load_infer_tool()
    from sarb_mm.utils.launch import run_tool as launch
    (tmp_path / 'in').mkdir()
    (tmp_path / 'show').mkdir()
    image = tmp_path / 'in' / 'x.png'
    image.write_bytes(b'original png')
    os.link(image, tmp_path / 'show' / 'x.png')
    with pytest.raises(SystemExit):
        launch(lambda: tool.main([
            str(tmp_path / 'c.py'),
            str(tmp_path / 'w.pth'),
            str(image), '--show-dir',
            str(tmp_path / 'show')
        ]))
    assert 'would overwrite the input image' in capsys.readouterr().err
    assert image.read_bytes() == b'original png'


def test_per_class_thresholds_from_a_validation_run(trained, images, tmp_path,
                                                    capsys):
    """tools/test.py --out on the validation set, class_thresholds.py
    beside the checkpoint, then infer.py --thr best-f1: each class keeps
    the labels that reach its own threshold."""
    import shutil

    from sarb_mm.evaluation import load_prediction_arrays
    from sarb_mm.evaluation.thresholds import (best_f1_thresholds,
                                               load_thresholds)
    from .tiny import load_tool
    config, checkpoint, data = trained
    # A copy: the module's checkpoint folder stays as the other tests
    # expect it.
    run = tmp_path / 'run'
    run.mkdir()
    shutil.copy(checkpoint, run / 'epoch_1.pth')
    checkpoint = str(run / 'epoch_1.pth')
    preds = str(tmp_path / 'val.npz')
    run_tool([
        'tools/test.py', config, checkpoint, '--out', preds, '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={data}',
        'test_dataloader.num_workers=0'
    ])
    thresholds_tool = load_tool('tools/analysis/class_thresholds.py')
    thresholds_tool.main([preds, '--checkpoint', checkpoint])
    arrays = load_prediction_arrays(preds)
    targets = np.where(arrays['valid'], arrays['labels'].astype(int), -1)
    expected, _ = best_f1_thresholds(arrays['scores'], targets)
    stored = load_thresholds(str(run / 'thresholds.json'), DEMO_CATEGORIES)
    np.testing.assert_array_equal(stored, expected)
    capsys.readouterr()

    out = str(tmp_path / 'per_class.json')
    tool = load_infer_tool()
    assert tool.main(
        [config, checkpoint,
         str(images), '--thr', 'best-f1', '--out', out]) == 0
    with open(out) as f:
        records = json.load(f)
    for record in records:
        scores = record['scores']
        wanted = sorted((name for i, name in enumerate(DEMO_CATEGORIES)
                         if scores[name] >= stored[i]),
                        key=lambda name: -scores[name])
        assert [label['label'] for label in record['labels']] == wanted
