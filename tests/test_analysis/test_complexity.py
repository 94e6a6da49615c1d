"""FLOP counts against hand-computed multiply-adds."""
import os.path as osp

import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config

import sarb_mm  # noqa: F401
from sarb_mm.analysis.complexity import (EXTRA_HANDLES, build_unweighted,
                                         model_complexity)
from sarb_mm.models.necks.semantic_decoupling import SemanticDecouplingNeck

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
B, D, H, W, C, E, I = 2, 16, 3, 4, 5, 6, 8  # noqa: E741
N = H * W


class Attention(torch.nn.Module):

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


def count(module, inputs, extra):
    analyzer = FlopAnalyzer(module, inputs)
    if extra:
        analyzer.set_op_handle(**EXTRA_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    return analyzer.total()


def test_attention_multiply_adds():
    q = torch.rand(2, 3, 7, 4)  # (batch, heads, N, d)
    k = torch.rand(2, 3, 9, 4)  # M = 9
    v = torch.rand(2, 3, 9, 5)  # d_v = 5
    assert count(Attention(), (q, k, v), extra=False) == 0  # invisible
    assert count(Attention(), (q, k, v), extra=True) == 2 * 3 * 7 * 9 * (4 + 5)


def test_neck_multiply_adds_by_hand():
    torch.manual_seed(0)
    neck = SemanticDecouplingNeck(
        num_classes=C,
        in_channels=D,
        feat_channels=D,  # no reduction conv
        embed_dims=E,
        attn_channels=I).eval()
    x = (torch.rand(B, D, H, W), )
    known = (
        B * N * D * I  # feature projection
        + C * E * I  # embedding projection
        + I * I + I  # collapsing w4 W3 and w4 b3
        + B * C * N * D)  # attention pooling
    assert count(neck, (x, ), extra=False) == known
    assert count(neck, (x, ), extra=True) == known + B * N * C * I


def test_model_complexity_of_a_config():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'sarb_r18_demo_p10.py'))
    model = build_unweighted(cfg)
    stats = model_complexity(model, img_size=64)
    assert stats['params'] == sum(p.numel() for p in model.parameters())
    assert stats['flops_all'] == sum(stats[f'flops_{m}']
                                     for m in ('backbone', 'neck', 'head'))
    with torch.no_grad():
        side = model.backbone(torch.rand(1, 3, 64, 64))[-1].shape[-1]
    # The neck's fused score, B * N * C * I, is what the stock count misses.
    assert stats['flops_all'] - stats['flops'] == side * side * 12 * 128
