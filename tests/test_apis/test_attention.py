"""class_attention: maps, scores and image against a by-hand run."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image

import sarb_mm  # noqa: F401  (registers everything)
from sarb_mm.apis.attention import check_attention_config, class_attention
from sarb_mm.utils.errors import InvalidInputError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')
NAMES = ('c0', 'c1', 'c2', 'c3', 'c4')
MEAN = np.array([120.0, 110.0, 100.0])
STD = np.array([60.0, 55.0, 50.0])
# mmcv's Resize takes (width, height).
SIZE = (96, 64)
PIPELINE = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=SIZE, interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs'),
]


def _model(neck=None, head=None):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=MEAN.tolist(),
                std=STD.tolist(),
                to_rgb=True),
            backbone=dict(
                type='ResNet',
                depth=18,
                base_channels=4,
                stem_channels=4,
                out_indices=(3, )),
            neck=neck or dict(
                type='SemanticDecouplingNeck',
                num_classes=len(NAMES),
                in_channels=32,
                feat_channels=8,
                embed_dims=6,
                attn_channels=5),
            head=head or dict(
                type='SARBHead',
                num_classes=len(NAMES),
                in_channels=8,
                out_channels=8,
                num_prototypes=2)))
    # Spread the scores and maps: a fresh model's are nearly uniform.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith('backbone'):
                param.copy_(torch.randn(param.shape, generator=gen))
    model.cfg = Config(
        dict(test_dataloader=dict(dataset=dict(type='X', pipeline=PIPELINE))))
    model.dataset_meta = {'classes': NAMES}
    return model.eval()


@pytest.fixture(scope='module')
def model():
    return _model()


@pytest.fixture(scope='module')
def image_path(tmp_path_factory):
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, (50, 70, 3)).astype(np.uint8)
    rgb[10:30, 20:45] = (250, 20, 20)  # a red block, so RGB/BGR differ
    path = str(tmp_path_factory.mktemp('img') / 'image.png')
    Image.fromarray(rgb).save(path)
    return path


def _by_hand(model, path):
    """The resized RGB image, all maps (C, h, w) and sigmoid scores (C,)."""
    rgb = np.asarray(
        Image.open(path).convert('RGB').resize(SIZE, Image.BICUBIC))
    x = torch.from_numpy((rgb - MEAN) / STD).float().permute(2, 0, 1)[None]
    with torch.no_grad():
        feats = model.backbone(x)
        maps = model.neck.attention_maps(feats)[0]
        scores = torch.sigmoid(model.head(model.neck(feats)))[0]
    return rgb, maps.numpy(), scores.numpy()


def test_default_top3_matches_by_hand(model, image_path):
    rgb, maps, scores = _by_hand(model, image_path)
    result = class_attention(model, image_path)
    assert result.image.dtype == np.uint8
    np.testing.assert_array_equal(result.image, rgb)  # (64, 96, 3) RGB
    top = np.argsort(-scores, kind='stable')[:3]
    assert len(set(np.round(scores, 3))) == len(NAMES)  # a real ranking
    np.testing.assert_array_equal(result.indices, top)
    assert result.classes == [NAMES[i] for i in top]
    np.testing.assert_allclose(result.scores, scores[top], rtol=1e-5)
    assert result.maps.shape == (3, 2, 3)  # the stride-32 feature map
    np.testing.assert_allclose(result.maps, maps[top], rtol=1e-4, atol=1e-6)
    assert (result.maps >= 0).all()
    np.testing.assert_allclose(result.maps.sum((1, 2)), 1, rtol=1e-5)


def test_array_input_gives_the_same(model, image_path):
    from_path = class_attention(model, image_path, topk=2)
    from_array = class_attention(model, mmcv.imread(image_path), topk=2)
    np.testing.assert_array_equal(from_array.image, from_path.image)
    np.testing.assert_allclose(from_array.maps, from_path.maps)
    np.testing.assert_allclose(from_array.scores, from_path.scores)
    gray = class_attention(model, mmcv.imread(image_path, 'grayscale'))
    assert gray.image.shape == (64, 96, 3)
    assert (gray.image[..., 0] == gray.image[..., 2]).all()


def test_classes_by_name_keep_order(model, image_path):
    _, maps, scores = _by_hand(model, image_path)
    result = class_attention(model, image_path, classes=['c3', 'c0', 'c3'])
    assert result.classes == ['c3', 'c0']
    np.testing.assert_array_equal(result.indices, [3, 0])
    np.testing.assert_allclose(result.scores, scores[[3, 0]], rtol=1e-5)
    np.testing.assert_allclose(result.maps, maps[[3, 0]], rtol=1e-4, atol=1e-6)


def test_topk_beyond_the_classes_gives_all(model, image_path):
    result = class_attention(model, image_path, topk=50)
    assert sorted(result.classes) == list(NAMES)
    assert (np.diff(result.scores) <= 0).all()


@pytest.mark.parametrize('kwargs, match', [
    (dict(classes=['c1', 'dog']),
     r"Unknown class name\(s\) 'dog'\. The model's classes are: "
     r'c0, c1, c2, c3, c4\.'),
    (dict(classes=[]), 'classes is empty'),
    (dict(classes=['c1'], topk=2), 'either classes or topk, not both'),
    (dict(topk=0), r'topk must be an integer >= 1, got 0'),
    (dict(topk=1.5), r'topk must be an integer >= 1, got 1\.5'),
])
def test_bad_choice_is_a_clear_error(model, image_path, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        class_attention(model, image_path, **kwargs)


def test_bad_images(model, tmp_path):
    missing = str(tmp_path / 'nope.jpg')
    with pytest.raises(
            FileNotFoundError, match=f'Image file {missing} does not exist'):
        class_attention(model, missing)
    broken = tmp_path / 'broken.jpg'
    broken.write_text('not an image')
    with pytest.raises(
            InvalidInputError, match='Cannot use image .*broken.jpg.*decode'):
        class_attention(model, str(broken))
    with pytest.raises(InvalidInputError, match=r'uint8 of shape \(H, W, 3'):
        class_attention(model, np.zeros((8, 8, 3), np.float32))


def test_model_without_semantic_decoupling_neck(image_path):
    baseline = _model(
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='MultiLabelLinearClsHead',
            num_classes=len(NAMES),
            in_channels=32))
    with pytest.raises(
            InvalidInputError,
            match=r'need a model whose neck is a SemanticDecouplingNeck '
            r'\(SARB, SST, HST, DSRB\), but this model has '
            r'GlobalAveragePooling. '
            'Use such a config'):
        class_attention(baseline, image_path)


def test_check_attention_config():
    sarb = osp.join(CONFIGS, 'sarb_r18_demo_p10.py')
    check_attention_config(Config.fromfile(sarb))  # no error
    baseline = osp.join(CONFIGS, 'baseline_r18_demo_p10.py')
    with pytest.raises(
            InvalidInputError,
            match='baseline_r18_demo_p10.py has model.neck type '
            'GlobalAveragePooling'):
        check_attention_config(Config.fromfile(baseline))
    with pytest.raises(InvalidInputError, match='has no model.neck'):
        check_attention_config(Config(dict(model=dict(type='X'))))


def test_class_names_must_fit(image_path):
    model = _model()
    model.dataset_meta = {'classes': NAMES[:3]}
    with pytest.raises(
            InvalidInputError,
            match='has 5 classes but its dataset_meta names 3'):
        class_attention(model, image_path)
