import sys

import numpy as np
import pytest
import torch

from sarb_mm.datasets.voc import VOC2007_CLASSES
from sarb_mm.models.necks import SemanticDecouplingNeck
from sarb_mm.utils import build_word_vectors, name_to_words
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.word_vectors import read_glove
from tests.test_tools.tiny import load_tool, run_tool


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
                                 str(tmp_path / 'g.txt'),
                                 dim=5)
    np.testing.assert_allclose(
        vectors[0], (table['traffic'] + table['light']) / 2, atol=1e-5)
    np.testing.assert_allclose(vectors[1], table['cat'], atol=1e-5)


def test_missing_words_are_listed(tmp_path):
    _write_glove(tmp_path / 'g.txt', ['cat'])
    with pytest.raises(
            InvalidInputError,
            match="lacks words of 1 classes: 'hair drier': "
            r"\['hair', 'drier'\]"):
        build_word_vectors(['cat', 'hair drier'],
                           str(tmp_path / 'g.txt'),
                           dim=5)


def test_tool_writes_voc_file_the_neck_loads(tmp_path):
    words = sorted({w for n in VOC2007_CLASSES for w in name_to_words(n)})
    table = _write_glove(tmp_path / 'g.txt', words)
    out = tmp_path / 'voc.npy'
    run_tool([
        'tools/make_word_vectors.py',
        str(tmp_path / 'g.txt'),
        str(out), '--dataset', 'voc', '--dim', '5'
    ])
    vectors = np.load(out)
    assert vectors.shape == (20, 5)
    dining = VOC2007_CLASSES.index('diningtable')
    np.testing.assert_allclose(
        vectors[dining], (table['dining'] + table['table']) / 2, atol=1e-5)
    neck = SemanticDecouplingNeck(
        20,
        in_channels=8,
        feat_channels=8,
        embed_dims=5,
        attn_channels=4,
        word_vectors=str(out))
    torch.testing.assert_close(neck.embeddings, torch.from_numpy(vectors))


def test_tool_refuses_vg_placeholder_names(tmp_path):
    names = tmp_path / 'names.txt'
    names.write_text('vg_class_000\nvg_class_001\n')
    _write_glove(tmp_path / 'g.txt', ['vg', 'class', '000', '001'])
    proc = run_tool([
        'tools/make_word_vectors.py',
        str(tmp_path / 'g.txt'),
        str(tmp_path / 'out.npy'), '--classes',
        str(names), '--dim', '5'
    ],
                    check=False)
    assert proc.returncode != 0 and 'placeholders' in proc.stderr
    assert not (tmp_path / 'out.npy').exists()


@pytest.mark.parametrize('dim, found', [(300, 5), (4, 5), (6, 5)])
def test_wrong_dim_is_named_from_the_first_line(tmp_path, dim, found):
    _write_glove(tmp_path / 'g.txt', ['cat'])
    with pytest.raises(
            InvalidInputError,
            match=f'holds {found}-dimensional vectors .* but the '
            f'vector width \\(--dim\\) is {dim}\\. Pass --dim '
            f'{found}'):
        build_word_vectors(['cat'], str(tmp_path / 'g.txt'), dim=dim)


def test_numeric_first_token_is_not_a_width_error(tmp_path):
    path = tmp_path / 'g.txt'
    path.write_text('1 0.1 0.2 0.3\ncat 1 2 3\n')
    np.testing.assert_array_equal(
        build_word_vectors(['cat', '1'], str(path), dim=3),
        np.float32([[1, 2, 3], [0.1, 0.2, 0.3]]))
    path.write_text('just words here\n')
    with pytest.raises(
            InvalidInputError, match='first lines do not all end in numbers'):
        read_glove(str(path), ['cat'], dim=3)


def test_non_finite_vectors_are_refused_naming_the_words(tmp_path):
    path = tmp_path / 'g.txt'
    path.write_text('the 1 2 3\ncat nan 0 0\ndog 0 1e39 0\n'
                    'red 4 5 6\nbird 0 -inf 0\n')
    with pytest.raises(
            InvalidInputError,
            match=r"in the vectors of 3 words: 'cat' \(line 2\), "
            r"'dog' \(line 3\), 'bird' \(line 5\)\."):
        build_word_vectors(['cat', 'dog', 'red bird'], str(path), dim=3)
    # Words that are not asked for do not matter.
    np.testing.assert_array_equal(
        build_word_vectors(['the', 'red'], str(path), dim=3),
        [[1, 2, 3], [4, 5, 6]])


def _load_tool():
    return load_tool('tools/make_word_vectors.py')


def test_zero_and_identical_class_vectors_are_refused(tmp_path, monkeypatch):
    path = tmp_path / 'g.txt'
    path.write_text('dog 1 2 3\ncat 0 0 0\npad 0 0 0\nhot 4 0 1\n')
    with pytest.raises(
            InvalidInputError,
            match=r"all-zero embeddings for 2 of its 4 classes \(indices "
            r"from 0\): 1 \('cat'\), 3 \('pad'\)\. .*--classes"):
        build_word_vectors(['dog', 'cat', 'hot dog', 'pad'], str(path), dim=3)
    # Words that average to zero are as bad.
    path.write_text('dog 1 2 3\nanti -1 -2 -3\nhot 4 0 1\n')
    with pytest.raises(InvalidInputError, match=r"0 \('anti dog'\)"):
        build_word_vectors(['anti dog', 'hot'], str(path), dim=3)
    # Two names of the same words: one embedding for every class.
    with pytest.raises(
            InvalidInputError,
            match='holds one embedding for all its 2 classes'):
        build_word_vectors(['dog', 'Dog'], str(path), dim=3)
    # A repeated row among others is allowed.
    vectors = build_word_vectors(['dog', 'Dog', 'hot'], str(path), dim=3)
    np.testing.assert_array_equal(vectors, [[1, 2, 3], [1, 2, 3], [4, 0, 1]])
    # The tool writes no file of them.
    names = tmp_path / 'names.txt'
    names.write_text('hot\nanti dog\n')
    out = tmp_path / 'out.npy'
    monkeypatch.setattr(sys, 'argv', [
        'make_word_vectors.py',
        str(path),
        str(out), '--classes',
        str(names), '--dim', '3'
    ])
    with pytest.raises(InvalidInputError, match=r"1 \('anti dog'\)"):
        _load_tool().main()
    assert not out.exists()


def test_large_finite_vectors_average_without_overflow(tmp_path):
    path = tmp_path / 'g.txt'
    path.write_text('big 3e38 0\nhuge 3e38 1\n')
    vectors = build_word_vectors(['big huge'], str(path), dim=2)
    np.testing.assert_allclose(vectors, [[3e38, 0.5]], rtol=1e-6)


def test_glove_file_must_be_a_regular_utf8_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nlp.stanford.edu') as err:
        read_glove(str(tmp_path / 'nope.txt'), ['cat'])
    assert isinstance(err.value, InvalidInputError)
    with pytest.raises(InvalidInputError, match='not a regular file'):
        read_glove(str(tmp_path), ['cat'])
    path = tmp_path / 'latin1.txt'
    path.write_bytes('caf\xe9 1 2\n'.encode('latin-1'))
    with pytest.raises(InvalidInputError, match=r'is not UTF-8 text'):
        read_glove(str(path), ['cat'], dim=2)


def test_tool_appends_npy_and_reports_the_real_path(tmp_path):
    words = sorted({w for n in VOC2007_CLASSES for w in name_to_words(n)})
    _write_glove(tmp_path / 'g.txt', words)
    out = tmp_path / 'sub' / 'voc'
    proc = run_tool([
        'tools/make_word_vectors.py',
        str(tmp_path / 'g.txt'),
        str(out), '--dataset', 'voc', '--dim', '5'
    ])
    assert f'to {out}.npy (.npy appended to {str(out)!r})' in proc.stdout
    assert not out.exists()
    assert np.load(f'{out}.npy').shape == (20, 5)


def test_tool_errors_have_no_traceback(tmp_path):
    _write_glove(tmp_path / 'g.txt', ['cat', 'dog'])
    proc = run_tool([
        'tools/make_word_vectors.py',
        str(tmp_path / 'g.txt'),
        str(tmp_path / 'out.npy'), '--dataset', 'voc'
    ],
                    check=False)  # --dim 300 on a 5-d file
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert 'make_word_vectors.py: error: GloVe file ' in proc.stderr
    assert 'holds 5-dimensional vectors' in proc.stderr
    assert not (tmp_path / 'out.npy').exists()


def test_tool_output_path(tmp_path):
    tool = _load_tool()
    assert tool.output_path('a/b') == 'a/b.npy'
    assert tool.output_path('a/b.npy') == 'a/b.npy'
    (tmp_path / 'vecs.npy').mkdir()
    for out in (str(tmp_path), str(tmp_path / 'vecs'), 'data/'):
        with pytest.raises(InvalidInputError, match='is a directory'):
            tool.output_path(out)


def test_glove_line_padded_to_megabytes_is_refused(tmp_path, monkeypatch):
    import tracemalloc

    import sarb_mm.datasets.utils as dataset_utils
    monkeypatch.setattr(dataset_utils, 'MAX_LINE_LENGTH', 4096)
    path = tmp_path / 'glove.txt'
    with open(path, 'w') as f:
        f.write('cat 0.1 0.2\ndog 0.3 0.4\n')
        f.write('pad' + 'd' * 4_000_000 + ' 0.5 0.6\n')
        f.write('cow 0.7 0.8\n')
    tracemalloc.start()
    with pytest.raises(
            InvalidInputError,
            match='GloVe file .*glove.txt.*line 3 is longer than '
            '4,096'):
        read_glove(str(path), ['cow'], dim=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000  # the 4 MB line is never read whole
