import numpy as np
import pytest
import torch

from sarb_mm.datasets.voc import VOC2007_CLASSES
from sarb_mm.models.necks import SemanticDecouplingNeck
from sarb_mm.utils import build_word_vectors, name_to_words
from tests.test_tools.tiny import run_tool


def _write_glove(path, words, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    table = {w: rng.normal(size=dim).astype(np.float32) for w in words}
    with open(path, 'w', encoding='utf-8') as f:
        f.write('. . . ' + ' '.join(['0.5'] * dim) + '\n')  # spaced token
        for word, vec in table.items():
            f.write(word + ' ' + ' '.join(f'{v:.6f}' for v in vec) + '\n')
    return table


def test_multi_word_names_are_averaged(tmp_path):
    table = _write_glove(tmp_path / 'g.txt', ['traffic', 'light', 'cat'])
    vectors = build_word_vectors(['traffic light', 'cat'],
                                 str(tmp_path / 'g.txt'), dim=5)
    np.testing.assert_allclose(
        vectors[0], (table['traffic'] + table['light']) / 2, atol=1e-5)
    np.testing.assert_allclose(vectors[1], table['cat'], atol=1e-5)


def test_missing_words_are_listed(tmp_path):
    _write_glove(tmp_path / 'g.txt', ['cat'])
    with pytest.raises(KeyError, match="'hair drier'.*hair.*drier"):
        build_word_vectors(['cat', 'hair drier'], str(tmp_path / 'g.txt'),
                           dim=5)


def test_tool_writes_voc_file_the_neck_loads(tmp_path):
    words = sorted({w for n in VOC2007_CLASSES for w in name_to_words(n)})
    table = _write_glove(tmp_path / 'g.txt', words)
    out = tmp_path / 'voc.npy'
    run_tool(['tools/make_word_vectors.py', str(tmp_path / 'g.txt'),
              str(out), '--dataset', 'voc', '--dim', '5'])
    vectors = np.load(out)
    assert vectors.shape == (20, 5)
    dining = VOC2007_CLASSES.index('diningtable')
    np.testing.assert_allclose(vectors[dining],
                               (table['dining'] + table['table']) / 2,
                               atol=1e-5)
    neck = SemanticDecouplingNeck(
        20, in_channels=8, feat_channels=8, embed_dims=5, attn_channels=4,
        word_vectors=str(out))
    torch.testing.assert_close(neck.embeddings, torch.from_numpy(vectors))


def test_tool_refuses_vg_placeholder_names(tmp_path):
    names = tmp_path / 'names.txt'
    names.write_text('vg_class_000\nvg_class_001\n')
    _write_glove(tmp_path / 'g.txt', ['vg', 'class', '000', '001'])
    proc = run_tool(['tools/make_word_vectors.py', str(tmp_path / 'g.txt'),
                     str(tmp_path / 'out.npy'), '--classes', str(names),
                     '--dim', '5'], check=False)
    assert proc.returncode != 0 and 'placeholders' in proc.stderr
    assert not (tmp_path / 'out.npy').exists()
