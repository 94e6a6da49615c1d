"""SemanticDecouplingNeck against a naive loop form of docs/method.md."""
import math
import os
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import sarb_mm  # noqa: F401  (registers everything)
from sarb_mm.models.necks.semantic_decoupling import (SemanticDecouplingNeck,
                                                      attention_pool,
                                                      load_word_vectors,
                                                      semantic_attention)
from sarb_mm.utils.errors import InvalidInputError

B, C, H, W, DB, D, I, E = 3, 5, 3, 3, 6, 8, 6, 7


def _randomise(module, scale=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(
                    torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(
                    torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + .5)


def naive_reduce(neck, x, batch_stats=False):
    """1x1 conv without bias then BatchNorm, with loops over positions."""
    x = x.double()
    if isinstance(neck.reduce, nn.Identity):
        return x
    conv, bn = neck.reduce
    wc = conv.weight.detach().double()[:, :, 0, 0]
    b, _, h, w = x.shape
    out = torch.zeros(b, wc.shape[0], h, w, dtype=torch.float64)
    for i in range(b):
        for r in range(h):
            for s in range(w):
                out[i, :, r, s] = wc @ x[i, :, r, s]
    if batch_stats:
        mean = out.mean(dim=(0, 2, 3))
        var = out.var(dim=(0, 2, 3), unbiased=False)
    else:
        mean = bn.running_mean.double()
        var = bn.running_var.double()
    g, beta = bn.weight.detach().double(), bn.bias.detach().double()
    for k in range(out.shape[1]):
        out[:, k] = (out[:, k] - mean[k]) / math.sqrt(var[k] + bn.eps) * g[k] \
            + beta[k]
    return out


def naive_decouple(neck, fmap, embeddings):
    """z[n,c] = w4.(W3.tanh((W1 x_n)*(W2 e_c)) + b3) + b4, softmax_n, pool."""
    W1 = neck.feature_proj.weight.detach().double()
    W2 = neck.embedding_proj.weight.detach().double()
    W3 = neck.attn_fc.weight.detach().double()
    b3 = neck.attn_fc.bias.detach().double()
    w4 = neck.attn_score.weight.detach().double()[0]
    b4 = float(neck.attn_score.bias.detach()[0])
    emb = embeddings.detach().double()
    b, d, h, w = fmap.shape
    n_pos = h * w
    n_cls = emb.shape[0]
    out = torch.zeros(b, n_cls, d, dtype=torch.float64)
    att = torch.zeros(b, n_pos, n_cls, dtype=torch.float64)
    for i in range(b):
        xs = [fmap[i, :, r, s] for r in range(h) for s in range(w)]
        for c in range(n_cls):
            ec = W2 @ emb[c]
            z = []
            for n in range(n_pos):
                hidden = torch.tanh((W1 @ xs[n]) * ec)
                z.append(float(w4 @ (W3 @ hidden + b3)) + b4)
            zmax = max(z)
            ex = [math.exp(v - zmax) for v in z]
            tot = sum(ex)
            f = torch.zeros(d, dtype=torch.float64)
            for n in range(n_pos):
                a = ex[n] / tot
                att[i, n, c] = a
                f += a * xs[n]
            out[i, c] = f
    return out, att


@pytest.fixture
def neck():
    torch.manual_seed(0)
    m = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=DB,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I)
    _randomise(m)
    return m


def test_neck_matches_naive_eval(neck):
    neck.eval()
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        (out, ) = neck((torch.randn(B, 2, 2, 2), x))  # uses the last map
    assert out.shape == (B, C, D)
    fmap = naive_reduce(neck, x)
    expected, _ = naive_decouple(neck, fmap, neck.embeddings)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_input_pool_is_the_published_resnet_average_pool(neck):
    """The published ResNet-101 ends with nn.AvgPool2d(2, stride=2): the
    neck with input_pool=2 attends over that pooled map (an odd side
    drops its last row and column, as AvgPool2d does)."""
    pooled = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=DB,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I,
        input_pool=2)
    pooled.load_state_dict(neck.state_dict())
    neck.eval()
    pooled.eval()
    x = torch.randn(B, DB, 7, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        (out, ) = pooled((x, ))
        maps = pooled.attention_maps((x, ))
    fmap = naive_reduce(neck, nn.AvgPool2d(2, stride=2)(x))
    expected, _ = naive_decouple(neck, fmap, neck.embeddings)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    assert maps.shape == (B, C, 3, 3)


def test_neck_reduction_train_mode_uses_batch_stats(neck):
    neck.train()
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        (out, ) = neck((x, ))
    fmap = naive_reduce(neck, x, batch_stats=True)
    expected, _ = naive_decouple(neck, fmap, neck.embeddings)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_reduction_structure(neck):
    conv, bn = neck.reduce
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert conv.kernel_size == (1, 1)
    assert (conv.in_channels, conv.out_channels) == (DB, D)
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == D
    # W3, b3, w4, b4 are stored separately (weights interchangeable)
    assert neck.feature_proj.bias is None
    assert neck.embedding_proj.bias is None
    assert neck.feature_proj.weight.shape == (I, D)
    assert neck.embedding_proj.weight.shape == (I, E)
    assert neck.attn_fc.weight.shape == (I, I)
    assert neck.attn_fc.bias.shape == (I, )
    assert neck.attn_score.weight.shape == (1, I)
    assert neck.attn_score.bias.shape == (1, )


def test_no_reduction_when_channels_match():
    torch.manual_seed(0)
    neck = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=D,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I)
    _randomise(neck, seed=3)
    assert isinstance(neck.reduce, nn.Identity)
    assert not any(
        isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) for m in neck.modules())
    neck.train()  # no BN, so train mode is deterministic too
    x = torch.randn(B, D, H, W, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        (out, ) = neck((x, ))
    expected, _ = naive_decouple(neck, x.double(), neck.embeddings)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_plain_functions_match_naive(neck):
    neck.eval()
    x = torch.randn(B, D, H, W, generator=torch.Generator().manual_seed(5))
    feats = x.flatten(2).transpose(1, 2)
    w4W3 = (neck.attn_score.weight @ neck.attn_fc.weight)[0]
    bias = (neck.attn_score.weight @ neck.attn_fc.bias +
            neck.attn_score.bias)[0]
    with torch.no_grad():
        att = semantic_attention(
            neck.feature_proj(feats), neck.embedding_proj(neck.embeddings),
            w4W3, bias)
        pooled = attention_pool(att, feats)
    expected_f, expected_a = naive_decouple(neck, x.double(), neck.embeddings)
    assert att.shape == (B, H * W, C)
    torch.testing.assert_close(att.sum(1), torch.ones(B, C))
    torch.testing.assert_close(att.double(), expected_a, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        pooled.double(), expected_f, atol=1e-5, rtol=1e-5)
    # attention_pool alone, against a loop
    a = torch.rand(B, H * W, C, dtype=torch.float64)
    f = torch.randn(B, H * W, D, dtype=torch.float64)
    loop = torch.zeros(B, C, D, dtype=torch.float64)
    for i in range(B):
        for c in range(C):
            for n in range(H * W):
                loop[i, c] += a[i, n, c] * f[i, n]
    torch.testing.assert_close(attention_pool(a, f), loop)


def test_efficient_form_realistic_size():
    """B=2, N=49, C=20, D=64, I=32 vs. a W3-applied (uncollapsed) version."""
    b, c, d, i, e = 2, 20, 64, 32, 16
    torch.manual_seed(0)
    neck = SemanticDecouplingNeck(
        num_classes=c,
        in_channels=d,
        feat_channels=d,
        embed_dims=e,
        attn_channels=i)
    _randomise(neck, scale=0.3, seed=6)
    x = torch.randn(b, d, 7, 7, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        (out, ) = neck((x, ))
    xd = x.double().flatten(2).transpose(1, 2)  # (B, N, D)
    p = {k: v.detach().double() for k, v in neck.state_dict().items()}
    proj_x = xd @ p['feature_proj.weight'].T  # (B, N, I)
    proj_e = p['embeddings'] @ p['embedding_proj.weight'].T  # (C, I)
    hidden = torch.tanh(proj_x[:, :, None, :] * proj_e[None, None])
    inner = hidden @ p['attn_fc.weight'].T + p['attn_fc.bias']  # W3 applied
    z = (inner @ p['attn_score.weight'].T)[..., 0] + p['attn_score.bias']
    a = z.softmax(dim=1)  # (B, N, C)
    expected = torch.einsum('bnc,bnd->bcd', a, xd)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)


def test_word_vectors_fixed_buffer(tmp_path):
    vec = np.random.RandomState(0).randn(C, E)  # float64 on disk
    path = tmp_path / 'glove.npy'
    np.save(path, vec)
    neck = MODELS.build(
        dict(
            type='SemanticDecouplingNeck',
            num_classes=C,
            in_channels=DB,
            feat_channels=D,
            embed_dims=E,
            attn_channels=I,
            word_vectors=str(path)))
    buffers = dict(neck.named_buffers())
    params = dict(neck.named_parameters())
    assert 'embeddings' in buffers and 'embeddings' not in params
    assert 'embeddings' in neck.state_dict()  # checkpoints carry it
    assert not neck.embeddings.requires_grad
    assert neck.embeddings.dtype == torch.float32
    np.testing.assert_allclose(neck.embeddings.numpy(), vec, rtol=1e-6)
    # the loaded vectors are the ones used
    _randomise(neck, seed=8)
    neck.eval()
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        (out, ) = neck((x, ))
    expected, _ = naive_decouple(neck, naive_reduce(neck, x),
                                 torch.from_numpy(vec))
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    # not trained: an optimiser step leaves it unchanged
    neck.train()
    before = neck.embeddings.clone()
    opt = torch.optim.SGD(neck.parameters(), lr=1.0)
    neck((x, ))[0].square().sum().backward()
    opt.step()
    assert torch.equal(neck.embeddings, before)
    # load_word_vectors itself
    loaded = load_word_vectors(str(path), (C, E))
    assert loaded.dtype == torch.float32 and loaded.shape == (C, E)


def test_word_vectors_wrong_shape(tmp_path):
    path = tmp_path / 'bad.npy'
    np.save(path, np.zeros((C + 1, E)))
    with pytest.raises(ValueError) as info:
        SemanticDecouplingNeck(
            num_classes=C,
            in_channels=DB,
            feat_channels=D,
            embed_dims=E,
            attn_channels=I,
            word_vectors=str(path))
    msg = str(info.value)
    assert str(path) in msg
    assert str((C, E)) in msg  # expected
    assert str((C + 1, E)) in msg  # found


def test_word_vectors_missing_file(tmp_path):
    path = tmp_path / 'nope.npy'
    with pytest.raises(FileNotFoundError, match='nope.npy') as info:
        SemanticDecouplingNeck(
            num_classes=C,
            in_channels=DB,
            feat_channels=D,
            embed_dims=E,
            attn_channels=I,
            word_vectors=str(path))
    assert isinstance(info.value, InvalidInputError)


def test_no_word_vectors_learnable(neck):
    assert isinstance(neck.embeddings, nn.Parameter)
    assert neck.embeddings.requires_grad
    assert neck.embeddings.shape == (C, E)
    assert 'embeddings' in dict(neck.named_parameters())
    neck.eval()
    x = torch.randn(B, DB, H, W)
    neck((x, ))[0].sum().backward()
    assert neck.embeddings.grad is not None
    assert neck.embeddings.grad.abs().sum() > 0


def test_hand_written_backward_passes_gradcheck():
    from sarb_mm.models.necks.semantic_decoupling import _TanhProductScore
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(2, 5, 4, dtype=torch.float64, generator=gen)
    q = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    v = torch.randn(4, dtype=torch.float64, generator=gen)
    for tensor in (p, q, v):
        tensor.requires_grad_()
    assert torch.autograd.gradcheck(_TanhProductScore.apply, (p, q, v))


def _npz(path):
    with open(path, 'wb') as f:  # np.savez would append .npz to a name
        np.savez(f, vectors=np.zeros((C, E)))


def _truncated(path):
    np.save(path, np.zeros((C, E)))
    with open(path, 'r+b') as f:
        f.truncate(200)  # inside the data: the 128-byte header is intact


def _header_only(path):
    # A tiny file whose header declares (C, E) but holds one value.
    with open(path, 'wb') as f:
        np.lib.format.write_array_header_1_0(
            f, dict(descr='<f8', fortran_order=False, shape=(C, E)))
        f.write(b'\0' * 8)


def _huge_header(path):
    # np.load would allocate 80 GB before noticing the data is missing.
    with open(path, 'wb') as f:
        np.lib.format.write_array_header_1_0(
            f, dict(descr='<f8', fortran_order=False, shape=(100000, 100000)))


@pytest.mark.parametrize(
    'write, match', [
        (lambda p: np.save(p, np.full(
            (C, E), 'word')), r'holds <U4 values; expected real numbers'),
        (lambda p: np.save(p, np.ones(
            (C, E), dtype=bool)), r'holds bool values; expected real numbers'),
        (lambda p: np.save(p, np.ones(
            (C, E), dtype=complex)), r'holds complex128 values'),
        (lambda p: np.save(p, np.full(
            (C, E), None), allow_pickle=True), r'holds object values'),
        (lambda p: np.save(p, np.zeros((C, E), dtype=[('x', '<f4')])),
         r"holds \[\('x', '<f4'\)\] values"),
        (lambda p: open(p, 'w').write('the quick brown fox\n'),
         r'is not a NumPy \.npy file'),
        (lambda p: open(p, 'w').close(), r'is not a NumPy \.npy file'),
        (_npz, r'is an \.npz \(zip\) archive'),
        (_truncated, r'cannot be read .*truncated'),
        (_header_only, r'cannot be read .*truncated'),
        (_huge_header, r'has shape \(100000, 100000\), expected \(5, 7\)'),
        (lambda p: np.save(p, np.full((C, E), 1e300)),
         r'NaN/inf values \(or values beyond the float32 range\)'),
    ],
    ids=[
        'str', 'bool', 'complex', 'object', 'structured', 'text', 'empty',
        'npz', 'truncated', 'header_only', 'huge_header', 'float32_overflow'
    ])
def test_word_vectors_bad_file(tmp_path, write, match):
    path = str(tmp_path / 'bad.npy')
    write(path)
    # The tools print InvalidInputError (a ValueError) without a traceback.
    with pytest.raises(InvalidInputError) as info:
        load_word_vectors(path, (C, E))
    message = str(info.value)
    assert re.search(match, message), message
    assert repr(path) in message
    if 'shape' not in match and 'NaN' not in match:
        assert 'tools/make_word_vectors.py' in message  # the fix


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs os.mkfifo')
def test_word_vectors_not_a_file(tmp_path):
    for path in (str(tmp_path), str(tmp_path / 'fifo.npy')):
        if path.endswith('.npy'):
            os.mkfifo(path)  # np.load would block on it
        with pytest.raises(
                InvalidInputError,
                match=re.escape(repr(path)) + ' is not a regular file'):
            load_word_vectors(path, (C, E))
    with pytest.raises(TypeError, match='must be the path of a .npy file'):
        load_word_vectors(3, (C, E))  # not a file descriptor


@pytest.mark.parametrize(
    'dtype', [np.float16, np.float32, np.int8, np.uint16, np.longdouble])
def test_word_vectors_numeric_dtypes(tmp_path, dtype):
    values = np.arange(C * E).reshape(C, E) % 50 - 20
    path = tmp_path / 'ok.npy'
    np.save(
        path,
        values.astype(dtype)
        if dtype != np.uint16 else np.abs(values).astype(dtype))
    loaded = load_word_vectors(str(path), (C, E))
    assert loaded.dtype == torch.float32
    expected = values if dtype != np.uint16 else np.abs(values)
    np.testing.assert_array_equal(loaded.numpy(), expected)


def _neck_without_embed_dims(word_vectors=None, **kwargs):
    return SemanticDecouplingNeck(
        num_classes=C,
        in_channels=DB,
        feat_channels=D,
        attn_channels=I,
        word_vectors=word_vectors,
        **kwargs)


@pytest.mark.parametrize('width', [300, 512, 768])
def test_embed_dims_taken_from_the_file(tmp_path, width):
    path = tmp_path / f'vectors_{width}.npy'
    vectors = np.random.default_rng(width).normal(size=(C, width))
    np.save(path, vectors.astype(np.float32))
    neck = _neck_without_embed_dims(str(path))
    assert neck.embeddings.shape == (C, width)
    assert neck.embedding_proj.in_features == width
    torch.testing.assert_close(neck.embeddings,
                               torch.from_numpy(vectors).float())
    out = neck((torch.randn(B, DB, H, W), ))[0]
    assert out.shape == (B, C, D)


def test_explicit_embed_dims_must_match_the_file(tmp_path):
    path = tmp_path / 'clip.npy'
    np.save(path, np.zeros((C, 512), np.float32))
    with pytest.raises(ValueError, match='leave model.neck.embed_dims unset'):
        _neck_without_embed_dims(str(path), embed_dims=300)


def test_zero_or_identical_embeddings_are_refused(tmp_path):
    path = str(tmp_path / 'vectors.npy')
    vectors = np.random.default_rng(0).normal(size=(C, E))
    vectors[[1, 3]] = 0  # e.g. rows padded for classes without a vector
    np.save(path, vectors)
    with pytest.raises(
            InvalidInputError,
            match=re.escape(f'word_vectors file {path!r} has all-zero '
                            'embeddings for 2 of its 5 classes (indices from '
                            '0): 1, 3.') + '.*make_word_vectors'):
        _neck_without_embed_dims(path)
    np.save(path, np.tile(vectors[:1], (C, 1)))
    with pytest.raises(
            InvalidInputError,
            match='holds one embedding for all its 5 classes'):
        load_word_vectors(path, (C, E))
    # A repeated row among others is fine.
    vectors[[1, 3]] = vectors[0]
    np.save(path, vectors)
    assert load_word_vectors(path, (C, E)).shape == (C, E)


def test_learned_embeddings_default_to_300_dims():
    assert _neck_without_embed_dims().embeddings.shape == (C, 300)


def test_empty_embedding_file_is_an_error(tmp_path):
    path = tmp_path / 'empty.npy'
    np.save(path, np.zeros((C, 0), np.float32))
    with pytest.raises(ValueError, match='no embedding values'):
        _neck_without_embed_dims(str(path))
