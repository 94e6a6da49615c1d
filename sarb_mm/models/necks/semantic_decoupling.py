"""Semantic decoupling: category attention pooling (docs/method.md)."""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.npy import load_checked_npy
from sarb_mm.utils.validation import check_int
from sarb_mm.utils.word_vectors import check_class_embeddings
from ..utils.quadrants import peak_quadrants


class _TanhProductScore(torch.autograd.Function):
    """``z[b,n,c] = sum_i v_i tanh(p[b,n,i] q[c,i])`` with hand-written
    backward: autograd would keep several (B, N, C, I) intermediates and
    reduce them through broadcasting, this keeps one and uses contractions."""

    @staticmethod
    def forward(ctx, p, q, v):
        hidden = torch.tanh_(p.unsqueeze(2) * q)  # the one (B, N, C, I) buffer
        ctx.save_for_backward(p, q, v, hidden)
        return torch.matmul(hidden, v)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_scores):
        p, q, v, hidden = ctx.saved_tensors
        flat = hidden.reshape(-1, hidden.shape[-1])
        grad_v = flat.T @ grad_scores.reshape(-1)
        # (g v) * (1 - h^2) in one fused pass.
        grad_pre = torch.ops.aten.tanh_backward(
            grad_scores.unsqueeze(-1) * v, hidden)
        grad_q = (grad_pre * p.unsqueeze(2)).sum((0, 1))
        grad_p = grad_pre.mul_(q).sum(2)
        return grad_p, grad_q, grad_v


def semantic_attention(proj_features: torch.Tensor,
                       proj_embeddings: torch.Tensor,
                       score_weight: torch.Tensor,
                       score_bias: torch.Tensor) -> torch.Tensor:
    """Category-wise attention over positions, softmax-normalised.

    ``z[b,n,c] = score_weight . tanh(proj_features[b,n] * proj_embeddings[c])
    + score_bias`` and ``a = softmax_n z``. Passing the collapsed
    ``w4 W3`` as ``score_weight`` means the (B, N, C, I) activation is only
    reduced once, never multiplied by an I x I matrix.

    Args:
        proj_features (Tensor): ``W1 x`` of shape (B, N, I).
        proj_embeddings (Tensor): ``W2 e`` of shape (C, I).
        score_weight (Tensor): ``w4 W3`` of shape (I,).
        score_bias (Tensor): ``w4 . b3 + b4``, a scalar tensor.

    Returns:
        Tensor: Attention (B, N, C) in float32, summing to 1 over N.
    """
    scores = _TanhProductScore.apply(proj_features,
                                     proj_embeddings.to(proj_features.dtype),
                                     score_weight.to(proj_features.dtype))
    return (scores + score_bias).float().softmax(dim=1)


def attention_pool(attention: torch.Tensor,
                   features: torch.Tensor) -> torch.Tensor:
    """Pool (B, N, D) features with (B, N, C) attention into (B, C, D)."""
    return torch.bmm(attention.transpose(1, 2).to(features.dtype), features)


# GloVe's width, used for learned embeddings when embed_dims is not given.
DEFAULT_EMBED_DIMS = 300


@MODELS.register_module()
class SemanticDecouplingNeck(BaseModule):
    """Channel reduction plus semantic decoupling (docs/method.md).

    Args:
        num_classes (int): Number of categories C.
        in_channels (int): Backbone channels D_b. Defaults to 2048.
        feat_channels (int): Channels D after reduction. Defaults to 1024.
        embed_dims (int, optional): Class-embedding width E. Defaults to
            None: the width of the ``word_vectors`` file (300 for GloVe, 512
            or 768 for CLIP text embeddings), or 300 for learned embeddings.
            When set together with a file, the file must have this width.
        attn_channels (int): Attention width I. Defaults to 512.
        word_vectors (str, optional): ``.npy`` file of shape (C, E) with the
            fixed category embeddings (GloVe in the published runs). Without
            it the embeddings are learned (a documented fallback that is not
            the published setting).
        input_pool (int): Side (and stride) of an average pooling of the
            backbone map before the reduction; 1 for none. The published
            ResNet-101 ends with ``AvgPool2d(2, stride=2)`` (a 7 x 7 map at
            448 px), so the ResNet-101 configs set 2. Defaults to 1.
        with_peak_quadrants (bool): Also return, before the category
            features, the quadrant (long (B, C)) of each class's peak on its
            attention-weighted map, which ``DSRBHead`` and
            ``QuadrantPrototypeHook`` need. Defaults to False.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 2048,
                 feat_channels: int = 1024,
                 embed_dims: Optional[int] = None,
                 attn_channels: int = 512,
                 word_vectors: Optional[str] = None,
                 input_pool: int = 1,
                 with_peak_quadrants: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.with_peak_quadrants = bool(with_peak_quadrants)
        self.num_classes = check_int(num_classes, 'neck num_classes')
        self.input_pool = check_int(input_pool, 'neck input_pool')
        for name, value in (('in_channels', in_channels),
                            ('feat_channels', feat_channels), ('attn_channels',
                                                               attn_channels)):
            check_int(value, f'neck {name}')
        if embed_dims is not None:
            check_int(embed_dims, 'neck embed_dims')
        if in_channels != feat_channels:
            self.reduce = nn.Sequential(
                nn.Conv2d(in_channels, feat_channels, 1, bias=False),
                nn.BatchNorm2d(feat_channels))
        else:
            self.reduce = nn.Identity()
        if word_vectors is not None:
            self.register_buffer(
                'embeddings',
                load_word_vectors(word_vectors, (num_classes, embed_dims)))
            embed_dims = self.embeddings.shape[1]
            if embed_dims == 0:
                raise InvalidInputError(
                    f'word_vectors file {word_vectors!r} has shape '
                    f'({num_classes}, 0): no embedding values. Make it with '
                    'tools/make_word_vectors.py.')
        else:
            embed_dims = embed_dims or DEFAULT_EMBED_DIMS
            self.embeddings = nn.Parameter(
                torch.randn(num_classes, embed_dims) * embed_dims**-0.5)
        self.feature_proj = nn.Linear(feat_channels, attn_channels, bias=False)
        self.embedding_proj = nn.Linear(embed_dims, attn_channels, bias=False)
        self.attn_fc = nn.Linear(attn_channels, attn_channels)
        self.attn_score = nn.Linear(attn_channels, 1)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Map the last backbone feature map to category features (B, C, D)
        (preceded by the peak quadrants with ``with_peak_quadrants``)."""
        features, attention, (height, width) = self._decouple(inputs)
        pooled = attention_pool(attention, features)
        if not self.with_peak_quadrants:
            return (pooled, )
        with torch.no_grad():
            # sum_d (a x)[n, c, d] = a[n, c] * sum_d x[n, d]: the channel
            # sums of the weighted maps without the (B, N, C, D) tensor.
            sums = attention * features.float().sum(-1, keepdim=True)
            quadrants = peak_quadrants(
                sums.reshape(sums.shape[0], height, width, -1))
        return quadrants, pooled

    def attention_maps(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The category attention that :meth:`forward` pools with.

        Computed by the same code as :meth:`forward` (so also in train mode
        the reduction's BatchNorm uses batch statistics), and differentiable
        like it. Call it under ``torch.no_grad()`` to only look at the maps.

        Args:
            inputs (Sequence[Tensor]): The backbone outputs; the last one,
                of shape (B, D_b, H, W), is used, as in :meth:`forward`.

        Returns:
            Tensor: Attention of shape (B, C, H, W) in float32, where
            ``[b, c]`` is class ``c``'s softmax over the H x W positions of
            the feature map (non-negative, summing to 1 over H and W). The
            category feature of class ``c`` is the sum of the reduced
            features weighted by this map.
        """
        _, attention, (height, width) = self._decouple(inputs)
        batch, _, num_classes = attention.shape
        return attention.transpose(1, 2).reshape(batch, num_classes, height,
                                                 width)

    def _decouple(
        self, inputs: Sequence[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, Tuple[int, int]]:
        """Reduced features (B, N, D), attention (B, N, C) and (H, W)."""
        x = inputs[-1]
        if self.input_pool > 1:
            x = F.avg_pool2d(x, self.input_pool, stride=self.input_pool)
        x = self.reduce(x)
        features = x.flatten(2).transpose(1, 2)  # (B, N, D)
        # w4 (W3 h + b3) + b4 == (w4 W3) h + (w4 b3 + b4): collapse once.
        score_weight = (self.attn_score.weight @ self.attn_fc.weight)[0]
        score_bias = (self.attn_score.weight @ self.attn_fc.bias +
                      self.attn_score.bias)[0]
        attention = semantic_attention(
            self.feature_proj(features), self.embedding_proj(self.embeddings),
            score_weight, score_bias)
        return features, attention, tuple(x.shape[2:])


def load_word_vectors(
        path: str, expected_shape: Tuple[int, Optional[int]]) -> torch.Tensor:
    """Load a (C, E) embedding ``.npy`` file, checking what it holds.

    The file must be a NumPy ``.npy`` array (not ``.npz``, not pickled) of
    integer or real floating dtype, of shape ``expected_shape`` (an ``E`` of
    None accepts any width), with finite values, no all-zero row and not
    one row for every class; anything else is an ``InvalidInputError`` (a
    ``ValueError``) naming the file and the fix. Returned as float32.
    """
    vectors = load_checked_npy(
        path,
        'word_vectors file',
        expected_shape,
        fix='Make it with tools/make_word_vectors.py, or set '
        'word_vectors=None to learn the embeddings (not the published '
        'setting).',
        shape_note='The shape is (num_classes, embed_dims); leave '
        'model.neck.embed_dims unset to take the width from the file.')
    with np.errstate(over='ignore'):
        vectors = vectors.astype(np.float32)
    if not np.isfinite(vectors).all():
        raise InvalidInputError(
            f'word_vectors file {path!r} has NaN/inf values (or values '
            'beyond the float32 range). Rebuild it with '
            'tools/make_word_vectors.py, which refuses such vectors.')
    check_class_embeddings(
        vectors,
        f'word_vectors file {path!r}',
        fix='Rebuild it with tools/make_word_vectors.py, which refuses such '
        'vectors.')
    return torch.from_numpy(vectors)
