"""Under autocast (what --amp does) softmax and every loss stay float32."""
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.models.necks.semantic_decoupling import semantic_attention

C = 5


def _model():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='ResNet', depth=18, base_channels=4,
                          stem_channels=4, out_indices=(3, )),
            neck=dict(type='SemanticDecouplingNeck', num_classes=C,
                      in_channels=32, feat_channels=8, embed_dims=6,
                      attn_channels=5),
            head=dict(type='SARBHead', num_classes=C, in_channels=8,
                      out_channels=8, num_prototypes=2,
                      blend_start_epoch=0)))
    head = model.head
    head.cooccurrence.copy_(torch.rand(C, C))
    head.set_prototypes(torch.randn_like(head.prototypes),
                        torch.ones(C, dtype=torch.bool))
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
