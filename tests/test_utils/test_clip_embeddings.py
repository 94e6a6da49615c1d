"""CLIP class embeddings with a randomly initialised small text encoder.

Nothing is downloaded: the tokenizer is a tiny CLIP BPE vocabulary written
here, and weights come from files saved here.
"""
import json
import os
import os.path as osp
import re
import string

import numpy as np
import pytest
import torch
from torch import nn

from sarb_mm.utils import clip_embeddings
from sarb_mm.utils.clip_embeddings import (CLIP_PRESETS, TEMPLATE_SETS,
                                           build_clip_text_model,
                                           clip_class_embeddings,
                                           download_clip_checkpoint,
                                           load_clip_text_weights)
from sarb_mm.utils.errors import InvalidInputError, MissingInputFileError

os.environ.setdefault('HF_HUB_OFFLINE', '1')

WIDTH, PROJ_DIM, CONTEXT = 32, 24, 16
NAMES = ['cat', 'traffic light', 'dog', 'cell_phone']
TWO_TEMPLATES = ['a photo of a {}.', 'art of the {}.']


def make_tiny_tokenizer(directory, extra_words=()):
    """Write a CLIP BPE tokenizer whose words are single tokens.

    The vocabulary holds every ASCII character (alone and word-final, so
    any text tokenizes), the merges that build each word of mmpretrain's
    prompt templates and of ``extra_words``, and the two special tokens
    last: CLIP reads the text feature at the highest token id (the end
    token). Words keep the prompts within the 16-token context.

    Returns:
        int: The vocabulary size.
    """
    from mmpretrain.models.multimodal.clip.clip import PROMPT_MAP
    words = set(extra_words)
    for prompts in PROMPT_MAP.values():
        for prompt in prompts:
            words.update(re.findall(r'[a-z]+', prompt('')))
    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = list(chars) + [c + '</w>' for c in chars]
    merges = []
    for word in sorted(words):
        symbols = list(word[:-1]) + [word[-1] + '</w>']
        left = symbols[0]
        for right in symbols[1:]:
            merges.append(f'{left} {right}')
            left += right
            vocab.append(left)
    vocab = list(dict.fromkeys(vocab)) + ['<|startoftext|>', '<|endoftext|>']
    os.makedirs(directory, exist_ok=True)
    with open(osp.join(directory, 'vocab.json'), 'w') as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f)
    with open(osp.join(directory, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n')
        f.writelines(m + '\n' for m in dict.fromkeys(merges))
    with open(osp.join(directory, 'tokenizer_config.json'), 'w') as f:
        json.dump({'tokenizer_class': 'CLIPTokenizer'}, f)
    return len(vocab)


def tiny_clip_cfg(tokenizer_dir, vocab_size):
    """A CLIPZeroShot config: text width 32, 2 layers, 2 heads, E=24."""
    return dict(
        type='CLIPZeroShot',
        vision_backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=8,
                num_layers=1,
                num_heads=1,
                feedforward_channels=8),
            img_size=16,
            patch_size=16,
            # As in mmpretrain's CLIP configs: a name mmcv resolves in
            # mmpretrain's scope only.
            layer_cfgs=dict(act_cfg=dict(type='QuickGELU'))),
        projection=dict(type='CLIPProjection', in_channels=8, out_channels=24),
        text_backbone=dict(
            type='CLIPTransformer',
            width=WIDTH,
            layers=2,
            heads=2,
            attn_mask=True),
        tokenizer=dict(
            type='AutoTokenizer', name_or_path=tokenizer_dir, use_fast=False),
        vocab_size=vocab_size,
        transformer_width=WIDTH,
        proj_dim=PROJ_DIM,
        context_length=CONTEXT)


def text_state(model):
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(clip_embeddings.TEXT_KEY_PREFIXES)
    }


class Bag(nn.Module):
    """Holds parameters under given names, to script into an archive."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript(state, path):
    """Save ``state`` as a TorchScript archive like OpenAI's ``.pt``."""
    root = Bag()
    for key, value in state.items():
        *parents, leaf = key.split('.')
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, Bag())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value.clone(), False))
    with pytest.warns(FutureWarning):  # torch.jit is deprecated
        torch.jit.script(root).save(str(path))


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('clip_tokenizer'))
    vocab_size = make_tiny_tokenizer(directory, ['traffic', 'light', 'cell'])
    cfg = tiny_clip_cfg(directory, vocab_size)
    torch.manual_seed(0)
    return cfg, build_clip_text_model(cfg)


def reference_embeddings(model, names, templates):
    """Per class, in the given order: tokenize, encode, normalise each
    prompt, average, normalise (numpy)."""
    rows = []
    for name in names:
        tokens = model.tokenize([t.format(name) for t in templates])
        with torch.no_grad():
            feats = model.extract_text_feat(tokens).numpy().astype(np.float64)
        feats /= np.linalg.norm(feats, axis=1, keepdims=True)
        mean = feats.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


def test_presets_are_mmpretrain_text_settings():
    from mmengine.config import Config
    from mmpretrain.models.multimodal.clip.clip import PROMPT_MAP
    root = osp.join(
        osp.dirname(__import__('mmpretrain').__file__), '.mim', 'configs',
        'clip')
    for arch, name, width in (('ViT-B/16', 'base-p16', 512),
                              ('ViT-L/14', 'large-p14', 768)):
        ref = Config.fromfile(
            osp.join(root, f'clip_vit-{name}_zeroshot-cls_in1k.py')).model
        preset = CLIP_PRESETS[arch]['model']
        for key in ('text_backbone', 'tokenizer', 'vocab_size',
                    'transformer_width', 'proj_dim', 'context_length'):
            assert preset[key] == ref[key], (arch, key)
        assert preset['proj_dim'] == width
        assert CLIP_PRESETS[arch]['sha256'] in CLIP_PRESETS[arch]['url']
    assert set(TEMPLATE_SETS) == set(PROMPT_MAP)


def test_shape_unit_norm_and_determinism(tiny):
    cfg, model = tiny
    first = clip_class_embeddings(model, NAMES)  # 80 templates
    assert first.shape == (len(NAMES), PROJ_DIM)
    assert first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(first, clip_class_embeddings(model, NAMES))
    torch.manual_seed(0)
    again = build_clip_text_model(cfg)
    np.testing.assert_array_equal(first, clip_class_embeddings(again, NAMES))
    assert np.abs(first[0] - first[2]).max() > 1e-3  # classes differ


def test_rows_follow_the_class_order(tiny):
    _, model = tiny
    got = clip_class_embeddings(model, NAMES, TWO_TEMPLATES)
    # Computed independently, in reverse order; 'cell_phone' is written
    # with a space.
    texts = [n.replace('_', ' ') for n in NAMES][::-1]
    expected = reference_embeddings(model, texts, TWO_TEMPLATES)[::-1]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_multi_word_names_use_every_word(tiny):
    _, model = tiny
    vocab = model.tokenizer.get_vocab()
    tokens = model.tokenize('a photo of a traffic light.')[0].tolist()
    assert vocab['traffic</w>'] in tokens and vocab['light</w>'] in tokens
    both, first, last = clip_class_embeddings(
        model, ['traffic light', 'traffic', 'light'], TWO_TEMPLATES)
    assert np.abs(both - first).max() > 1e-3
    assert np.abs(both - last).max() > 1e-3


def test_templates_are_averaged(tiny):
    _, model = tiny
    both = clip_class_embeddings(model, NAMES, TWO_TEMPLATES)
    one, two = (
        clip_class_embeddings(model, NAMES, [t]) for t in TWO_TEMPLATES)
    mean = (one + two) / 2
    np.testing.assert_allclose(
        both, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    # A set name is its templates.
    np.testing.assert_allclose(
        clip_class_embeddings(model, NAMES, 'vanilla'),
        clip_class_embeddings(model, NAMES, ['a photo of a {}']),
        atol=1e-6)


def test_bad_templates_and_names(tiny):
    _, model = tiny
    with pytest.raises(InvalidInputError, match="'openai_imagenet_sub'"):
        clip_class_embeddings(model, NAMES, 'imagenet')
    with pytest.raises(InvalidInputError, match='with a {} for the class'):
        clip_class_embeddings(model, NAMES, ['a photo'])
    with pytest.raises(InvalidInputError, match='No class names'):
        clip_class_embeddings(model, [], 'vanilla')


def _random_model(cfg, seed):
    torch.manual_seed(seed)
    return build_clip_text_model(cfg)


def trust_torchscript(monkeypatch, path):
    """Register the archive at ``path`` as an official one: only archives
    of known sha256 are loaded (loading one runs its TorchScript code)."""
    monkeypatch.setattr(
        clip_embeddings, 'OFFICIAL_TORCHSCRIPT_SHA256',
        clip_embeddings.OFFICIAL_TORCHSCRIPT_SHA256
        | {clip_embeddings.file_sha256(str(path))})


@pytest.mark.parametrize('fmt', ['state_dict', 'mmengine', 'torchscript'])
def test_weights_load_from_each_format(tiny, tmp_path, monkeypatch, fmt):
    cfg, _ = tiny
    source, target = _random_model(cfg, 1), _random_model(cfg, 2)
    names = ['cat', 'dog']
    expected = clip_class_embeddings(source, names, TWO_TEMPLATES)
    assert not np.allclose(expected,
                           clip_class_embeddings(target, names, TWO_TEMPLATES))
    state = text_state(source)
    # The vision tower and logit scale are not loaded (other shapes here).
    state['visual.conv1.weight'] = torch.zeros(3)
    state['logit_scale'] = torch.zeros(2)
    path = tmp_path / 'clip.pt'
    if fmt == 'torchscript':
        save_torchscript(state, path)
        trust_torchscript(monkeypatch, path)
    else:
        torch.save({'state_dict': state} if fmt == 'mmengine' else state, path)
    loaded = load_clip_text_weights(target, str(path))
    assert set(loaded) == set(text_state(source))
    np.testing.assert_allclose(
        clip_class_embeddings(target, names, TWO_TEMPLATES),
        expected,
        atol=1e-6)


def test_unknown_torchscript_archive_is_not_loaded(tiny, tmp_path,
                                                   monkeypatch):
    cfg, _ = tiny
    source, target = _random_model(cfg, 1), _random_model(cfg, 2)
    path = tmp_path / 'clip.pt'
    save_torchscript(text_state(source), path)
    sha256 = clip_embeddings.file_sha256(str(path))
    assert sha256 not in clip_embeddings.OFFICIAL_TORCHSCRIPT_SHA256
    with monkeypatch.context() as patch:

        def no_jit_load(*args, **kwargs):
            raise AssertionError('the archive\'s code must not run')

        patch.setattr(torch.jit, 'load', no_jit_load)
        with pytest.raises(InvalidInputError) as err:
            load_clip_text_weights(target, str(path))
    message = str(err.value)
    assert f"'{path}' is a TorchScript archive, but not one of OpenAI's " \
        f'(its sha256 is {sha256};' in message
    # The conversion it suggests (run here, where the archive is trusted)
    # gives a state dict that loads.
    command = re.search(r'python -c "(.*)", and pass that file', message)
    with pytest.warns(FutureWarning):  # torch.jit is deprecated
        exec(command.group(1), {})
    converted = tmp_path / 'clip_state_dict.pth'
    loaded = load_clip_text_weights(target, str(converted))
    assert set(loaded) == set(text_state(source))
    np.testing.assert_allclose(
        clip_class_embeddings(target, ['cat', 'dog'], TWO_TEMPLATES),
        clip_class_embeddings(source, ['cat', 'dog'], TWO_TEMPLATES),
        atol=1e-6)
    # The official hashes are those of the presets' downloads.
    assert clip_embeddings.OFFICIAL_TORCHSCRIPT_SHA256 == {
        preset['sha256']
        for preset in CLIP_PRESETS.values()
    }


def test_checkpoint_errors(tiny, tmp_path):
    cfg, model = tiny
    state = text_state(model)
    path = str(tmp_path / 'clip.pth')
    with pytest.raises(MissingInputFileError, match='does not exist'):
        load_clip_text_weights(model, path)
    (tmp_path / 'clip.pth').write_text('not a checkpoint')
    with pytest.raises(InvalidInputError, match='Cannot read CLIP checkp'):
        load_clip_text_weights(model, path)
    partial = dict(state)
    del partial['ln_final.weight']
    torch.save(partial, path)
    with pytest.raises(
            InvalidInputError,
            match=r"clip\.pth' lacks 1 of the 29 text-encoder weights .*"
            r'\(first: ln_final\.weight\)'):
        load_clip_text_weights(model, path)
    torch.save(dict(state, text_projection=torch.zeros(WIDTH, 7)), path)
    with pytest.raises(
            InvalidInputError,
            match=r'text_projection is a tensor of shape \(32, 7\) there '
            r'but a tensor of shape \(32, 24\) in the model \(1 mismatched'):
        load_clip_text_weights(model, path)
    torch.save(dict(state, positional_embedding=[0.5]), path)
    with pytest.raises(
            InvalidInputError, match='positional_embedding is a list there'):
        load_clip_text_weights(model, path)
    torch.save({'text_model.' + k: v for k, v in state.items()}, path)
    with pytest.raises(InvalidInputError, match='HuggingFace transformers'):
        load_clip_text_weights(model, path)


def test_non_finite_weights_are_refused(tiny, tmp_path):
    cfg, _ = tiny
    model = _random_model(cfg, 3)
    with torch.no_grad():
        model.ln_final.weight[0] = float('nan')
    with pytest.raises(InvalidInputError, match='not finite'):
        clip_class_embeddings(model, NAMES, TWO_TEMPLATES)


def test_one_embedding_for_all_classes_is_refused(tiny):
    """Without token embeddings, prompts of as many tokens embed alike."""
    cfg, _ = tiny
    model = _random_model(cfg, 4)
    with torch.no_grad():
        model.token_embedding.weight.zero_()
    with pytest.raises(
            InvalidInputError,
            match='The CLIP class-embedding matrix holds one embedding for '
            'all its 2 classes'):
        clip_class_embeddings(model, ['cat', 'dog'], TWO_TEMPLATES)


def test_download_checks_sha256(tmp_path, monkeypatch):
    import hashlib
    src = tmp_path / 'ViT-T.pt'
    src.write_bytes(b'weights')
    url = src.as_uri()
    right = hashlib.sha256(b'weights').hexdigest()
    cache = tmp_path / 'cache'
    with pytest.raises(
            InvalidInputError, match='does not have the published sha256'):
        download_clip_checkpoint(url, '0' * 64, str(cache))
    assert not (cache / 'ViT-T.pt').exists()
    path = download_clip_checkpoint(url, right, str(cache))
    assert path == str(cache / 'ViT-T.pt')
    assert open(path, 'rb').read() == b'weights'
    with pytest.raises(InvalidInputError, match='Cannot download'):
        download_clip_checkpoint((tmp_path / 'none.pt').as_uri(), right,
                                 str(tmp_path / 'other'))

    def offline(*args, **kwargs):
        raise AssertionError('a cached file is not downloaded again')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    assert download_clip_checkpoint(url, right, str(cache)) == path
    # A cached file is checked again at every use: one replaced after the
    # download is refused, named, and left for the user to delete.
    with open(path, 'wb') as f:
        f.write(b'weights, replaced')
    with pytest.raises(InvalidInputError) as err:
        download_clip_checkpoint(url, right, str(cache))
    message = str(err.value)
    assert f'The cached CLIP checkpoint {path} does not have the published ' \
        f'sha256 of {url} (it has ' \
        f'{hashlib.sha256(b"weights, replaced").hexdigest()}, expected ' \
        f'{right})' in message
    assert f'Delete it to download {url} again' in message
    assert open(path, 'rb').read() == b'weights, replaced'
    os.remove(path)
    os.mkdir(path)
    with pytest.raises(
            InvalidInputError,
            match='cached CLIP checkpoint .* is a directory'):
        download_clip_checkpoint(url, right, str(cache))


@pytest.mark.parametrize('found', ['4.52.0', '4.30.2', None])
def test_transformers_version_is_checked(tiny, monkeypatch, found):
    import importlib.metadata
    cfg, _ = tiny

    def version(name):
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(importlib.metadata, 'version', version)
    with pytest.raises(InvalidInputError) as err:
        build_clip_text_model(cfg)
    assert "pip install 'transformers>=4.43,<4.52'" in str(err.value)


def test_bad_model_and_tokenizer(tiny, tmp_path):
    cfg, _ = tiny
    with pytest.raises(InvalidInputError, match="'ViT-B/16', 'ViT-L/14'"):
        build_clip_text_model('ViT-B/32')
    with pytest.raises(InvalidInputError, match="type 'BLIP'"):
        build_clip_text_model(dict(cfg, type='BLIP'))
    partial = dict(cfg)
    del partial['vocab_size']
    with pytest.raises(InvalidInputError, match='config lacks vocab_size;'):
        build_clip_text_model(partial)
    with pytest.raises(
            InvalidInputError,
            match='Cannot load the CLIP tokenizer .*--tokenizer'):
        build_clip_text_model(cfg, tokenizer=str(tmp_path / 'no' / 'dir'))
    with pytest.raises(InvalidInputError, match=r'CLIP model only 10 \(voc'):
        build_clip_text_model(dict(cfg, vocab_size=10))


def test_preset_builds_with_its_width(tiny):
    """ViT-B/16's text encoder (random init; the tiny tokenizer instead of
    the downloaded one)."""
    cfg, _ = tiny
    model = build_clip_text_model(
        'ViT-B/16', tokenizer=cfg['tokenizer']['name_or_path'])
    assert tuple(model.text_projection.shape) == (512, 512)
    assert len(model.transformer.resblocks) == 12
    assert clip_class_embeddings(model, ['cat'], ['a {}']).shape == (1, 512)
