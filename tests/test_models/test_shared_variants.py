"""The blended copies' shortcut (reuse F's products, multiply only the
blended rows) equals running the head on the stacked 3B batch."""
import torch
from mmpretrain.registry import MODELS

import sarb_mm  # noqa: F401
from sarb_mm.models.utils import (instance_blend, instance_blend_mask,
                                  prototype_blend, prototype_blend_mask)
from sarb_mm.models.utils.graph import masked_rows_linear


def test_masked_rows_linear_matches_dense_product():
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(3, 5, generator=gen) < 0.4
    x = torch.randn(3, 5, 4, generator=gen) * mask.unsqueeze(-1)
    weight = torch.randn(6, 4, generator=gen)
    torch.testing.assert_close(
        masked_rows_linear(x, mask, weight), x @ weight.T)


def test_variants_equal_stacked_batch_values_and_gradients():
    torch.manual_seed(0)
    C, D = 6, 8
    head = MODELS.build(
        dict(type='SARBHead', num_classes=C, in_channels=D,
             out_channels=7)).double()
    head.cooccurrence.copy_(torch.rand(C, C, dtype=torch.float64))
    targets = torch.tensor([[1, 0, -1, 0, 0, 1], [0, 1, 0, 0, -1, 0],
                            [0, 0, 1, -1, 0, 0], [1, 1, 0, 0, 0, -1]],
                           dtype=torch.float64)
    prototypes = torch.randn(C, D, dtype=torch.float64)
    classes = torch.tensor([1, -1, 4, 2])

    def run(shared):
        features = torch.randn(
            4,
            C,
            D,
            dtype=torch.float64,
            generator=torch.Generator().manual_seed(1),
            requires_grad=True)
        head.zero_grad()
        ilrb, _ = instance_blend(features, targets, head.alpha)
        plrb, _ = prototype_blend(features, targets, prototypes, classes,
                                  head.beta)
        if shared:
            logits = head.classify(features, [
                (ilrb - features, instance_blend_mask(targets)),
                (plrb - features, prototype_blend_mask(classes, C)),
            ])
        else:
            logits = head.classify(torch.cat([features, ilrb, plrb]))
        weights = torch.linspace(
            -1, 1, logits.numel(), dtype=torch.float64).view_as(logits)
        (logits * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in head.named_parameters()}
        return logits.detach(), features.grad, grads

    shared, stacked = run(True), run(False)
    assert instance_blend_mask(targets).any()
    torch.testing.assert_close(shared[0], stacked[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(shared[1], stacked[1], rtol=0, atol=1e-12)
    for name in stacked[2]:
        torch.testing.assert_close(
            shared[2][name], stacked[2][name], rtol=0, atol=1e-12, msg=name)
    assert stacked[2]['alpha'].abs() > 0 and stacked[2]['beta'].abs() > 0
