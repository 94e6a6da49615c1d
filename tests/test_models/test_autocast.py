"""Under autocast (what --amp does) softmax and every loss stay float32."""
import torch
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.models.necks.semantic_decoupling import semantic_attention
from tests.tiny_sarb import build_tiny_sarb

C = 5


def _model():
    torch.manual_seed(0)
    model = build_tiny_sarb(C, num_prototypes=2, blend_start_epoch=0)
    head = model.head
    head.cooccurrence.copy_(torch.rand(C, C))
    head.set_prototypes(
        torch.randn_like(head.prototypes), torch.ones(C, dtype=torch.bool))
    head.set_progress(1, 0, 2)
    return model


def test_losses_are_float32_and_close_to_full_precision():
    model = _model()
    inputs = torch.randn(4, 3, 64, 64)
    targets = torch.tensor([[1, 0, -1, 0, 1], [0, 1, 1, -1, 0],
                            [-1, 0, 0, 1, 1], [1, -1, 0, 0, -1]]).float()
    samples = [DataSample().set_gt_score(t) for t in targets]
    torch.manual_seed(1)
    full = model(inputs, samples, mode='loss')
    torch.manual_seed(1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = model(inputs, samples, mode='loss')
    for name in ('loss_cls', 'loss_ilrb', 'loss_plrb', 'loss_con'):
        assert mixed[name].dtype == torch.float32, name
        assert torch.isfinite(mixed[name])
        assert abs(mixed[name].item() - full[name].item()) < 0.05, name
    sum(v for k, v in mixed.items() if 'loss' in k).backward()
    assert model.head.alpha.grad is not None


def test_attention_softmax_is_float32_under_autocast():
    proj_x = torch.randn(2, 6, 4)
    proj_e = torch.randn(3, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        attention = semantic_attention(proj_x.bfloat16(), proj_e.bfloat16(),
                                       torch.randn(4), torch.tensor(0.1))
    assert attention.dtype == torch.float32
    torch.testing.assert_close(attention.sum(1), torch.ones(2, 3))
