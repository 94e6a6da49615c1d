"""Parameters and FLOPs of a config's model, as mmpretrain's get_flops counts
them (mmengine's jit-traced FlopAnalyzer: one multiply-add is one FLOP), plus
the two ops that counter does not know."""
import copy
from math import prod
from typing import Dict, List

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config
from mmpretrain.registry import MODELS


def attention_flop_jit(inputs: List, outputs: List) -> int:
    """``scaled_dot_product_attention(q, k, v)``: ``q k^T`` and ``a v``.

    With q of shape (..., N, d), k of (..., M, d) and v of (..., M, d_v)
    that is ``prod(...) * N * M * (d + d_v)`` multiply-adds.
    """
    query, key, value = (get_shape(v) for v in inputs[:3])
    *batch, queries, dims = query
    return prod(batch) * queries * key[-2] * (dims + value[-1])


def tanh_product_flop_jit(inputs: List, outputs: List) -> int:
    """The neck's fused ``sum_i v_i tanh(p[b,n,i] q[c,i])``: the reduction
    over i is B * N * C * I multiply-adds (the elementwise product and tanh
    are not counted, as the analyzer counts no elementwise op)."""
    batch, positions, width = get_shape(inputs[0])
    classes = get_shape(inputs[1])[0]
    return batch * positions * classes * width


EXTRA_HANDLES = {
    'aten::scaled_dot_product_attention': attention_flop_jit,
    'prim::PythonOp._TanhProductScore': tanh_product_flop_jit,
}


def build_unweighted(cfg: Config) -> torch.nn.Module:
    """The config's model, randomly initialised: no pretrained download,
    learned class embeddings of the configured width in place of a missing
    word-vector file (the cost is the same)."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)
    if 'word_vectors' in (model_cfg.get('neck') or {}):
        model_cfg.neck.word_vectors = None
    return MODELS.build(model_cfg)


def model_complexity(model: torch.nn.Module,
                     img_size: int = 448) -> Dict[str, float]:
    """FLOPs of one image at ``img_size`` x ``img_size`` and parameters.

    Args:
        model (nn.Module): An mmpretrain classifier; its ``mode='tensor'``
            forward (backbone, neck and head) is traced.
        img_size (int): Input side in pixels. Defaults to 448.

    Returns:
        dict: ``params`` (all parameters), ``flops`` (as mmpretrain's
        get_flops counts: attention products and the neck's fused score are
        invisible to it), ``flops_all`` (with those two counted), and
        ``flops_<module>`` for the backbone, neck and head (all counted).
    """
    model = model.eval()
    inputs = (torch.rand(1, 3, img_size, img_size), )
    stock = FlopAnalyzer(model, inputs)
    full = FlopAnalyzer(model, inputs).set_op_handle(**EXTRA_HANDLES)
    result = dict(params=parameter_count(model)[''])
    with torch.no_grad():
        for analyzer in (stock, full):
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
        result['flops'] = stock.total()
        result['flops_all'] = full.total()
        by_module = full.by_module()
    for name in ('backbone', 'neck', 'head'):
        result[f'flops_{name}'] = by_module.get(name, 0)
    return result
