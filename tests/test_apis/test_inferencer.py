"""MultiLabelInferencer: every label above the threshold, for every image."""
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from PIL import Image

from sarb_mm.apis import MultiLabelInferencer, init_model
from sarb_mm.utils.errors import InvalidInputError
from .helpers import CONFIG, tiny_cfg_options

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    torch.manual_seed(0)
    model = init_model(
        CONFIG,
        cfg_options=tiny_cfg_options(str(tmp_path_factory.mktemp('data'))))
    # Spread the untrained scores so that thresholds select a few labels.
    with torch.no_grad():
        model.head.class_bias.copy_(torch.linspace(-2, 2, 12))
    return model


@pytest.fixture(scope='module')
def inferencer(model):
    return MultiLabelInferencer(model)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """Lossless images of several formats, modes and sizes, one of them in
    a subfolder, and a file that is not an image."""
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)

    def pixels(h, w, c):
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)

    Image.fromarray(pixels(64, 64, 3)).save(root / 'a_rgb.png')
    Image.fromarray(pixels(80, 100, 1)[..., 0], 'L').save(root / 'b_gray.png')
    Image.fromarray(pixels(70, 50, 4), 'RGBA').save(root / 'c_rgba.png')
    os.makedirs(root / 'sub')
    Image.fromarray(pixels(30, 90, 3)).save(root / 'sub' / 'd_small.bmp')
    (root / 'notes.txt').write_text('not an image')
    return root


def independent_scores(model, path):
    """Scores computed without the inferencer or mmcv's pipeline: Pillow
    to RGB, bicubic 64 x 64, the config's normalisation, the network."""
    image = Image.open(path).convert('RGB').resize((64, 64), Image.BICUBIC)
    x = (np.asarray(image, dtype=np.float64) - MEAN) / STD
    x = torch.from_numpy(x.transpose(2, 0, 1)).float()[None]
    with torch.no_grad():
        logits = model(x, mode='tensor')
    return torch.sigmoid(logits.double())[0].numpy()


def test_folder_of_mixed_images_scores_like_the_network(
        model, inferencer, folder):
    results = inferencer(str(folder), thr=0.0, batch_size=3)
    names = [osp.relpath(r['img'], folder) for r in results]
    assert names == [
        'a_rgb.png', 'b_gray.png', 'c_rgba.png',
        osp.join('sub', 'd_small.bmp')
    ]
    for result in results:
        assert result['error'] is None
        expected = independent_scores(model, result['img'])
        np.testing.assert_allclose(result['scores'], expected, atol=1e-6)
        # thr=0 keeps every class, best first, named and indexed.
        assert len(result['labels']) == 12
        order = np.argsort(-expected, kind='stable')
        assert [label['index'] for label in result['labels']] == list(order)
        for label in result['labels']:
            assert label['label'] == model.dataset_meta['classes'][
                label['index']]
            assert label['score'] == pytest.approx(
                expected[label['index']], abs=1e-6)


def test_threshold_and_topk_select_several_labels(inferencer, folder):
    path = str(folder / 'a_rgb.png')
    scores = inferencer(path, thr=0.0)[0]['scores']
    thr = float(np.sort(scores)[-4])  # the fourth best score
    kept = inferencer(path, thr=thr)[0]['labels']
    expected = sorted(np.flatnonzero(scores >= thr), key=lambda i: -scores[i])
    assert [label['index'] for label in kept] == expected
    assert len(kept) == 4  # multi-label, not top-1

    top = inferencer(path, topk=2)[0]['labels']
    assert [label['index'] for label in top] == list(np.argsort(-scores)[:2])
    assert inferencer(path, thr=1.0)[0]['labels'] == []

    # Without thr: the head's (0.5).
    default = inferencer(path)[0]['labels']
    assert [label['index'] for label in default] == sorted(
        np.flatnonzero(scores >= 0.5), key=lambda i: -scores[i])


def test_mmpretrain_keys_and_per_class_thresholds(inferencer, folder,
                                                  tmp_path):
    from sarb_mm.evaluation.thresholds import save_thresholds
    path = str(folder / 'a_rgb.png')
    result = inferencer(path, thr=0.0)[0]
    scores = result['pred_scores']
    assert result['scores'] is scores  # the earlier name, kept
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    assert result['pred_label'] == order
    assert result['pred_score'] == [float(scores[i]) for i in order]
    assert result['pred_class'] == [inferencer.classes[i] for i in order]
    # One threshold per class: between the scores of alternate classes.
    thresholds = np.where(
        np.arange(len(scores)) % 2 == 0, scores - 1e-6,
        np.minimum(scores + 1e-6, 1.0))
    kept = inferencer(path, thr=list(thresholds))[0]['pred_label']
    assert kept == [i for i in order if i % 2 == 0]
    file = str(tmp_path / 'thresholds.json')
    save_thresholds(file, inferencer.classes, thresholds)
    assert inferencer(path, thr=file)[0]['pred_label'] == kept
    with pytest.raises(ValueError, match='12 thresholds in \\[0, 1\\]'):
        inferencer(path, thr=[0.5, 0.5])
    # A 0-d array is one threshold, as a numpy scalar is.
    assert inferencer(path, thr=np.array(0.5))[0]['pred_label'] == \
        inferencer(path, thr=np.float32(0.5))[0]['pred_label']


def test_batches_arrays_and_globs_agree(inferencer, folder):
    one_by_one = inferencer(str(folder), batch_size=1)
    batched = inferencer(str(folder), batch_size=4)
    for a, b in zip(one_by_one, batched):
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-6)

    path = str(folder / 'c_rgba.png')
    bgra = mmcv.imread(path, flag='unchanged')
    from_array = inferencer([bgra, bgra[..., :3]])
    from_path = inferencer(path)[0]
    for result in from_array:
        assert result['img'] is None and result['error'] is None
        np.testing.assert_allclose(
            result['scores'], from_path['scores'], atol=1e-6)

    matched = inferencer(str(folder / '**' / '*.bmp'))
    assert [r['img'] for r in matched] == [str(folder / 'sub' / 'd_small.bmp')]


def test_missing_and_broken_images_are_reported_not_fatal(
        inferencer, folder, tmp_path, warnings_seen):
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8 truncated')
    missing = str(tmp_path / 'absent.png')
    good = str(folder / 'a_rgb.png')
    # An input that names nothing: an error before any image is processed,
    # as a pattern or folder without images is.
    with pytest.raises(
            ValueError, match=f'1 input\\(s\\) do not exist: '
            f'{missing}'):
        inferencer([good, missing])
    results = inferencer([str(broken), good, str(broken), good], batch_size=2)
    assert [r['img'] for r in results] == [str(broken), good] * 2
    assert str(broken) in results[0]['error']
    assert str(broken) in results[2]['error']
    for failed in (results[0], results[2]):
        assert failed['scores'] is None and failed['labels'] == []
        assert failed['pred_scores'] is None and failed['pred_label'] == []
    for ok in (results[1], results[3]):
        assert ok['error'] is None
    np.testing.assert_allclose(results[1]['scores'], results[3]['scores'])
    assert sum('Skipped' in m for m in warnings_seen) == 2

    bad_array = inferencer(np.zeros((4, 4, 2), np.uint8))[0]
    assert 'H x W x 3' in bad_array['error']


def test_bad_arguments_are_errors(inferencer, folder, tmp_path):
    empty = tmp_path / 'empty'
    os.makedirs(empty / 'deeper')
    (empty / 'deeper' / 'readme.txt').write_text('x')
    with pytest.raises(InvalidInputError, match='holds no images'):
        inferencer(str(empty))
    with pytest.raises(InvalidInputError, match='matches no image'):
        inferencer(str(folder / '*.gif'))
    with pytest.raises(InvalidInputError, match='not both'):
        inferencer(str(folder), thr=0.5, topk=2)
    with pytest.raises(InvalidInputError, match=r'\[0, 1\]'):
        inferencer(str(folder), thr=1.5)
    with pytest.raises(InvalidInputError, match='more than the 12'):
        inferencer(str(folder), topk=13)
    with pytest.raises(InvalidInputError, match='batch_size'):
        inferencer(str(folder), batch_size=0)
    taken = tmp_path / 'taken'
    taken.write_text('a file, not a folder')
    with pytest.raises(InvalidInputError, match='show_dir'):
        inferencer(str(folder), show_dir=str(taken / 'drawn'))
    # numpy numbers are numbers.
    assert inferencer(
        str(folder / 'a_rgb.png'), thr=np.float32(0.5))[0]['error'] is None


def test_show_dir_draws_every_processed_image(inferencer, folder, tmp_path):
    out = tmp_path / 'drawn'
    results = inferencer([str(folder), str(folder / 'a_rgb.png')],
                         topk=3,
                         show_dir=str(out))
    written = [r['drawn'] for r in results]
    # Two inputs named a_rgb: neither overwrites the other.
    assert len(set(written)) == len(results) == 5
    for path in written:
        with Image.open(path) as image:
            assert min(image.size) >= 256
            pixels = np.asarray(image.convert('RGB'))
        assert pixels.std() > 0
