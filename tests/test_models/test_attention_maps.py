"""SemanticDecouplingNeck.attention_maps against a plain numpy computation."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from sarb_mm.models.necks.semantic_decoupling import SemanticDecouplingNeck
from tests.tiny_sarb import build_tiny_sarb

# H != W, so a transposed or mis-ordered layout of positions shows.
B, C, H, W, DB, D, I, E = 2, 4, 3, 5, 6, 8, 6, 7


@pytest.fixture
def neck():
    torch.manual_seed(0)
    module = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=DB,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.7)
        bn = module.reduce[1]
        bn.running_mean.copy_(torch.randn(D, generator=gen))
        bn.running_var.copy_(torch.rand(D, generator=gen) + 0.5)
    return module.eval()


def numpy_reduce(neck, x, batch_stats=False):
    """1x1 conv then BatchNorm with running (or batch) statistics."""
    conv, bn = neck.reduce
    weight = conv.weight.detach().double().numpy()[:, :, 0, 0]
    out = np.einsum('kd,bdhw->bkhw', weight, x.double().numpy())
    if batch_stats:
        mean = out.mean(axis=(0, 2, 3), keepdims=True)
        var = out.var(axis=(0, 2, 3), keepdims=True)
    else:
        mean = bn.running_mean.double().numpy()[None, :, None, None]
        var = bn.running_var.double().numpy()[None, :, None, None]
    gamma = bn.weight.detach().double().numpy()[None, :, None, None]
    beta = bn.bias.detach().double().numpy()[None, :, None, None]
    return (out - mean) / np.sqrt(var + bn.eps) * gamma + beta


def numpy_attention(neck, fmap):
    """a[b,c,r,s] = softmax over (r,s) of w4.(W3 tanh(W1 x * W2 e) + b3)+b4,
    one position at a time."""
    params = {
        k: v.detach().double().numpy()
        for k, v in neck.named_parameters()
    }
    w1, w2 = params['feature_proj.weight'], params['embedding_proj.weight']
    w3, b3 = params['attn_fc.weight'], params['attn_fc.bias']
    w4, b4 = params['attn_score.weight'][0], params['attn_score.bias'][0]
    emb = neck.embeddings.detach().double().numpy()
    b, _, h, w = fmap.shape
    scores = np.zeros((b, emb.shape[0], h, w))
    for i in range(b):
        for c in range(emb.shape[0]):
            for r in range(h):
                for s in range(w):
                    hidden = np.tanh((w1 @ fmap[i, :, r, s]) * (w2 @ emb[c]))
                    scores[i, c, r, s] = w4 @ (w3 @ hidden + b3) + b4
    flat = scores.reshape(b, emb.shape[0], h * w)
    flat = np.exp(flat - flat.max(-1, keepdims=True))
    return (flat / flat.sum(-1, keepdims=True)).reshape(scores.shape)


def test_attention_maps_match_numpy(neck):
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        maps = neck.attention_maps((torch.randn(B, 3, 2, 2), x))
    assert maps.shape == (B, C, H, W)
    assert maps.dtype == torch.float32
    assert (maps >= 0).all()
    torch.testing.assert_close(maps.sum((2, 3)), torch.ones(B, C))
    expected = numpy_attention(neck, numpy_reduce(neck, x))
    np.testing.assert_allclose(
        maps.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    # Not uniform: the test would not notice positions being ignored.
    assert expected.std(axis=(2, 3)).min() > 1e-3


def test_forward_pools_with_the_maps(neck):
    """forward's class feature c is the maps[c]-weighted sum of positions."""
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        maps = neck.attention_maps((x, ))
        (pooled, ) = neck((x, ))
    fmap = numpy_reduce(neck, x)
    expected = np.einsum('bchw,bdhw->bcd', maps.double().numpy(), fmap)
    np.testing.assert_allclose(
        pooled.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_train_mode_maps_use_batch_statistics_like_forward(neck):
    neck.train()
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        maps = neck.attention_maps((x, ))
        (pooled, ) = neck((x, ))
    reduced = numpy_reduce(neck, x, batch_stats=True)
    expected = numpy_attention(neck, reduced)
    np.testing.assert_allclose(
        maps.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        pooled.double().numpy(),
        np.einsum('bchw,bdhw->bcd', expected, reduced),
        rtol=1e-5,
        atol=1e-5)


def test_forward_gradients_match_plain_autograd(neck):
    """The shared code path keeps forward's gradients: compare them with
    autograd through a plain float64 re-computation."""
    x = torch.randn(B, DB, H, W, generator=torch.Generator().manual_seed(5))
    weights = torch.randn(B, C, D, generator=torch.Generator().manual_seed(6))
    neck.zero_grad()
    (neck((x, ))[0] * weights).sum().backward()
    got = {k: p.grad.clone() for k, p in neck.named_parameters()}

    plain = {
        k: p.detach().double().requires_grad_()
        for k, p in neck.named_parameters()
    }
    bn = neck.reduce[1]
    fmap = torch.einsum('kd,bdhw->bkhw', plain['reduce.0.weight'][:, :, 0, 0],
                        x.double())
    fmap = ((fmap - bn.running_mean.double()[:, None, None]) /
            (bn.running_var.double()[:, None, None] + bn.eps).sqrt() *
            plain['reduce.1.weight'][:, None, None] +
            plain['reduce.1.bias'][:, None, None])
    feats = fmap.flatten(2).transpose(1, 2)  # (B, N, D)
    proj_x = feats @ plain['feature_proj.weight'].T
    proj_e = plain['embeddings'] @ plain['embedding_proj.weight'].T
    hidden = torch.tanh(proj_x[:, :, None] * proj_e)  # (B, N, C, I)
    inner = hidden @ plain['attn_fc.weight'].T + plain['attn_fc.bias']
    z = (inner @ plain['attn_score.weight'].T)[...,
                                               0] + plain['attn_score.bias']
    pooled = torch.einsum('bnc,bnd->bcd', z.softmax(1), feats)
    (pooled * weights.double()).sum().backward()
    for name, param in plain.items():
        torch.testing.assert_close(
            got[name].double(), param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_attention_maps_are_differentiable(neck):
    x = torch.randn(1, DB, H, W, requires_grad=True)
    neck.attention_maps((x, ))[0, 1, 2, 3].backward()
    assert x.grad.abs().sum() > 0
    assert neck.embeddings.grad[1].abs().sum() > 0


def test_tiny_sarb_maps_have_the_backbone_map_shape():
    torch.manual_seed(0)
    model = build_tiny_sarb(num_classes=3).eval()
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = model.extract_feat(images, stage='backbone')
        maps = model.neck.attention_maps(feats)
    assert feats[-1].shape[2:] == (2, 3)  # stride 32
    assert maps.shape == (2, 3, 2, 3)
    torch.testing.assert_close(maps.sum((2, 3)), torch.ones(2, 3))


def test_no_reduction_layer():
    """in_channels == feat_channels: the maps use the backbone map as is."""
    torch.manual_seed(1)
    neck = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=D,
        feat_channels=D,
        embed_dims=E,
        attn_channels=I).eval()
    assert isinstance(neck.reduce, nn.Identity)
    x = torch.randn(B, D, H, W, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        maps = neck.attention_maps((x, ))
    np.testing.assert_allclose(
        maps.double().numpy(),
        numpy_attention(neck,
                        x.double().numpy()),
        rtol=1e-5,
        atol=1e-6)
