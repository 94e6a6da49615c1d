"""tools/make_word_vectors.py --source clip, and its argument checks."""
import os
import sys

import numpy as np
import pytest
import torch

from sarb_mm.models.necks import SemanticDecouplingNeck
from sarb_mm.utils.clip_embeddings import (build_clip_text_model,
                                           clip_class_embeddings,
                                           load_clip_text_weights)
from sarb_mm.utils.errors import InvalidInputError
from tests.test_tools.tiny import load_tool, run_tool
from tests.test_utils.test_clip_embeddings import (PROJ_DIM,
                                                   make_tiny_tokenizer,
                                                   text_state, tiny_clip_cfg)

NAMES = ['traffic_light', 'cat', 'cell phone', 'dog']


def _tool():
    return load_tool('tools/make_word_vectors.py')


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory):
    """A tokenizer dir, a model config file, a checkpoint, a names file."""
    root = tmp_path_factory.mktemp('clip_tool')
    tokenizer = str(root / 'tokenizer')
    cfg = tiny_clip_cfg(tokenizer,
                        make_tiny_tokenizer(tokenizer, ['traffic', 'cell']))
    (root / 'tiny_clip.py').write_text(f'model = {cfg!r}\n')
    torch.manual_seed(0)
    torch.save(text_state(build_clip_text_model(cfg)), root / 'tiny.pth')
    (root / 'names.txt').write_text('\n'.join(NAMES) + '\n')
    return root, cfg


def _clip_args(root, out):
    return [
        'tools/make_word_vectors.py',
        str(out), '--source', 'clip', '--model-config',
        str(root / 'tiny_clip.py'), '--checkpoint',
        str(root / 'tiny.pth'), '--tokenizer',
        str(root / 'tokenizer'), '--classes',
        str(root / 'names.txt')
    ]


def _offline_env():
    return dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')


@pytest.mark.slow
def test_clip_file_is_what_the_neck_loads(tiny_files, tmp_path):
    root, cfg = tiny_files
    out = tmp_path / 'clip_vectors.npy'
    proc = run_tool(_clip_args(root, out), env=_offline_env())
    assert f'Wrote ({len(NAMES)}, {PROJ_DIM}) embeddings' in proc.stdout
    vectors = np.load(out)
    assert vectors.shape == (len(NAMES), PROJ_DIM)
    assert vectors.dtype == np.float32
    # The same weights in this process, with a model initialised
    # differently: the file holds the checkpoint's embeddings, in order.
    torch.manual_seed(5)
    model = build_clip_text_model(cfg)
    load_clip_text_weights(model, str(root / 'tiny.pth'))
    np.testing.assert_allclose(
        vectors, clip_class_embeddings(model, NAMES), atol=1e-5)
    neck = SemanticDecouplingNeck(
        num_classes=len(NAMES),
        in_channels=8,
        feat_channels=8,
        attn_channels=8,
        word_vectors=str(out))
    assert neck.embeddings.shape[1] == PROJ_DIM
    torch.testing.assert_close(neck.embeddings, torch.from_numpy(vectors))
    assert neck.embedding_proj.in_features == PROJ_DIM


@pytest.mark.slow
def test_clip_checkpoint_error_has_no_traceback(tiny_files, tmp_path):
    root, _ = tiny_files
    bad = tmp_path / 'bad.pth'
    torch.save({'token_embedding.weight': torch.zeros(3, 3)}, bad)
    args = _clip_args(root, tmp_path / 'out.npy')
    args[args.index('--checkpoint') + 1] = str(bad)
    proc = run_tool(args, env=_offline_env(), check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert (f"make_word_vectors.py: error: CLIP checkpoint '{bad}' lacks "
            in proc.stderr)
    assert not (tmp_path / 'out.npy').exists()


def _usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        _tool().parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


CLIP = 'out.npy --source clip --dataset coco'


@pytest.mark.parametrize('argv, message', [
    ('out.npy --dataset coco', '--source glove takes two paths, GLOVE OUT; '
     'got 1 (out.npy). For CLIP embeddings pass --source clip'),
    ('g.txt a.npy b.npy --dataset coco',
     '--source glove takes two paths, GLOVE OUT; got 3'),
    ('g.txt out.npy --source clip --dataset coco',
     '--source clip takes one path, OUT; got 2 (g.txt out.npy). A GloVe '
     'file is not used'),
    ('g.txt out.npy --dataset coco --checkpoint c.pt --templates vanilla',
     '--checkpoint, --templates only apply to --source clip.'),
    (f'{CLIP} --dim 5', '--dim only applies to --source glove'),
    (f'{CLIP} --arch ViT-L/14 --model-config m.py --checkpoint c.pt',
     'Give --arch or --model-config, not both.'),
    (f'{CLIP} --model-config m.py', '--model-config needs --checkpoint'),
    (f'{CLIP} --templates imagenet',
     "argument --templates: invalid choice: 'imagenet'"),
])
def test_wrong_arguments_are_usage_errors(capsys, argv, message):
    err = _usage_error(capsys, argv.split())
    assert ': error: ' in err
    assert message in err


def test_arguments_of_each_source():
    tool = _tool()
    args = tool.parse_args(['g.txt', 'o.npy', '--dataset', 'coco'])
    assert (args.source, args.glove, args.out, args.dim) == ('glove', 'g.txt',
                                                             'o.npy', 300)
    args = tool.parse_args(['o.npy', '--source', 'clip', '--dataset', 'voc'])
    assert (args.out, args.arch, args.templates, args.checkpoint,
            args.device) == ('o.npy', 'ViT-B/16', 'openai_imagenet', None,
                             'cpu')


def test_clip_source_refuses_vg_placeholder_names(tmp_path, monkeypatch):
    names = tmp_path / 'names.txt'
    names.write_text('vg_class_000\nvg_class_001\n')
    out = tmp_path / 'out.npy'
    monkeypatch.setattr(sys, 'argv', [
        'make_word_vectors.py',
        str(out), '--source', 'clip', '--classes',
        str(names)
    ])
    with pytest.raises(InvalidInputError, match='2 class names are placeh'):
        _tool().main()  # before any download or model
    assert not out.exists()
