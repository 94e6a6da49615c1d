"""The ViT / Swin / ConvNeXt configs: build without weights, run at 448 px,
load 224-px weights, decay the lr layer by layer, and train on the demo."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import sarb_mm  # noqa: F401
from sarb_mm.utils.launch import build_runner

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LR = 1e-5
WEIGHT_DECAY = 0.05
# config -> (backbone channels, map side at 448 px, layer decay rate,
#            number of depths get_layer_depth counts, a stem parameter)
BACKBONES = {
    'sarb_vit-b16-clip_coco_p10.py':
    (768, 28, 0.65, 12 + 2, 'backbone.patch_embed.projection.weight'),
    'sarb_swin-b_coco_p10.py':
    (1024, 14, 0.9, 24 + 2, 'backbone.patch_embed.projection.weight'),
    'sarb_convnext-b_coco_p10.py':
    (1024, 14, 0.7, 12 + 2, 'backbone.downsample_layers.0.0.weight'),
}
CONFIGS = sorted(BACKBONES)


def load(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    cfg.model.backbone.pop('init_cfg')  # no download in tests
    cfg.model.neck.word_vectors = None  # learned: no GloVe file here
    return cfg


def build(cfg):
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', CONFIGS)
def test_recipe_differs_from_r101_only_where_it_must(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    r101 = Config.fromfile(osp.join(REPO, 'configs', 'sarb_r101_coco_p10.py'))
    channels, _, rate, _, _ = BACKBONES[name]
    for key in ('backbone', 'neck'):
        cfg.model.pop(key)
        r101.model.pop(key)
    assert cfg.model == r101.model  # head, preprocessor, classifier
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator',
                'train_cfg', 'param_scheduler', 'custom_hooks',
                'default_hooks'):
        assert cfg[key] == r101[key], key
    neck = Config.fromfile(osp.join(REPO, 'configs', name)).model.neck
    assert neck.in_channels == channels
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == rate


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_forward_at_448_gives_category_features(name):
    channels, side, _, _, _ = BACKBONES[name]
    model = build(load(name)).eval()
    with torch.no_grad():
        feature_map = model.backbone(torch.rand(1, 3, 448, 448))[-1]
        category = model.neck((feature_map, ))[0]
        scores = model.head(model.neck((feature_map, )))
    assert feature_map.shape == (1, channels, side, side)
    assert category.shape == (1, 80, 1024)
    assert scores.shape == (1, 80)
    assert torch.isfinite(scores).all()


def test_vit_resizes_224px_position_embeddings_on_load(tmp_path):
    """The CLIP weights are 224-px (14 x 14 patches): loading them into the
    448-px ViT resizes the grid bicubically and keeps the class token."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'sarb_vit-b16-clip_coco_p10.py'))
    source = dict(cfg.model.backbone, img_size=224)
    source.pop('init_cfg')
    torch.manual_seed(1)
    weights = MODELS.build(source).state_dict()
    path = tmp_path / 'clip_vit_224.pth'
    torch.save(
        {'state_dict': {
            f'backbone.{k}': v
            for k, v in weights.items()
        }}, path)
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()

    pos = weights['pos_embed']  # (1, 1 + 14 * 14, 768)
    assert pos.shape == (1, 197, 768)
    grid = pos[:, 1:].reshape(1, 14, 14, 768).permute(0, 3, 1, 2)
    expected = F.interpolate(
        grid, size=(28, 28), mode='bicubic', align_corners=False)
    expected = expected.flatten(2).transpose(1, 2)
    assert backbone.pos_embed.shape == (1, 1 + 28 * 28, 768)
    torch.testing.assert_close(backbone.pos_embed[:, :1], pos[:, :1])
    torch.testing.assert_close(backbone.pos_embed[:, 1:], expected)
    torch.testing.assert_close(backbone.patch_embed.projection.weight,
                               weights['patch_embed.projection.weight'])


@pytest.mark.parametrize('name', CONFIGS)
def test_layer_wise_lr_decay_and_no_decay_groups(name):
    _, _, rate, depths, stem = BACKBONES[name]
    cfg = load(name)
    model = build(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # The wrapper's own param_groups add a base-lr entry for logging.
    groups = wrapper.optimizer.param_groups
    by_name = {g['param_name']: g for g in groups}
    # Stem: depth 0 of `depths`, so lr * rate ** (depths - 1).
    assert by_name[stem]['lr'] == pytest.approx(LR * rate**(depths - 1))
    assert by_name[stem]['weight_decay'] == WEIGHT_DECAY
    for key in ('neck.feature_proj.weight', 'head.fc.weight'):
        assert by_name[key]['lr'] == pytest.approx(LR)
        assert by_name[key]['weight_decay'] == WEIGHT_DECAY
    assert by_name['head.class_bias']['lr'] == pytest.approx(LR)
    for scalar in ('head.alpha', 'head.beta'):  # 0-d: mmpretrain decays it
        assert by_name[scalar]['params'][0].ndim == 0
        assert by_name[scalar]['weight_decay'] == 0
    for param_name, group in by_name.items():
        # Norms, biases and layer scales (1-d), SARB's alpha and beta (0-d)
        # and position tables: no decay.
        exempt = group['params'][0].ndim <= 1 or param_name.endswith(
            ('pos_embed', 'cls_token', 'relative_position_bias_table'))
        if exempt:
            assert group['weight_decay'] == 0, param_name
        else:
            assert group['weight_decay'] == WEIGHT_DECAY, param_name
        assert LR * rate**(depths - 1) - 1e-20 <= group['lr'] <= LR
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(g['params'][0].numel() for g in groups) == trainable


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_trains_two_iterations_on_the_demo(name, tmp_path):
    cfg = load(name)
    demo = Config.fromfile(osp.join(REPO, 'configs', 'sarb_r18_demo_p10.py'))
    train_loader = demo.train_dataloader
    train_loader.dataset.dataset.update(
        data_root=str(tmp_path / 'demo'), num_train=16, num_val=8)
    train_loader.update(batch_size=8, num_workers=0)
    cfg.train_dataloader = train_loader
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator',
                'test_dataloader', 'test_cfg', 'test_evaluator'):
        cfg[key] = None
    cfg.model.neck.num_classes = cfg.model.head.num_classes = 12
    cfg.model.head.blend_start_epoch = 0  # ILRB and PLRB from the start
    cfg.custom_hooks[2].interval = 1
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.randomness = dict(seed=0)

    runner = build_runner(cfg)
    stem = BACKBONES[name][4].replace('backbone.', '', 1)
    stem_before = runner.model.backbone.state_dict()[stem].clone()
    runner.train()
    assert runner.iter == 2
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 2 and all(
        map(torch.isfinite, map(torch.tensor, losses)))
    assert runner.model.head.prototype_mask.any()  # PLRB had prototypes
    after = runner.model.backbone.state_dict()[stem]
    assert not torch.equal(after, stem_before)  # the whole backbone trains
    assert osp.isfile(osp.join(cfg.work_dir, 'epoch_1.pth'))


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_float32_islands_under_bf16_autocast(name):
    """What --amp does on a GPU, with CPU bfloat16: the backbone runs in low
    precision, the attention softmax, losses and scores do not."""
    cfg = load(name)
    cfg.model.neck.num_classes = cfg.model.head.num_classes = 5
    model = build(cfg)
    head = model.head
    head.cooccurrence.copy_(torch.rand(5, 5))
    head.set_prototypes(
        torch.randn_like(head.prototypes), torch.ones(5, dtype=torch.bool))
    head.set_progress(head.blend_start_epoch, 0, 2)
    inputs = torch.rand(4, 3, 64, 64)
    targets = torch.tensor([[1, 0, -1, 0, 1], [0, 1, 1, -1, 0],
                            [-1, 0, 0, 1, 1], [1, -1, 0, 0, -1]]).float()
    samples = [DataSample().set_gt_score(t) for t in targets]

    def run():
        torch.manual_seed(1)
        losses = model(inputs, samples, mode='loss')
        model.eval()
        with torch.no_grad():
            feature_map = model.backbone(inputs)
            attention = model.neck.attention_maps(feature_map)
            scores = torch.stack(
                [s.pred_score for s in model(inputs, mode='predict')])
        model.train()
        return losses, feature_map[-1], attention, scores

    full = run()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = run()
    # Autocast is really on: the backbone's convolutions / matmuls ran in
    # bfloat16 (its final norm may hand out float32).
    assert not torch.equal(mixed[1].float(), full[1])
    for name in ('loss_cls', 'loss_ilrb', 'loss_plrb', 'loss_con'):
        assert mixed[0][name].dtype == torch.float32, name
        assert torch.isfinite(mixed[0][name]), name
        assert mixed[0][name].item() == pytest.approx(
            full[0][name].item(), rel=0.05, abs=0.02), name
    assert mixed[2].dtype == torch.float32
    torch.testing.assert_close(
        mixed[2].sum((2, 3)), torch.ones(4, 5), rtol=0, atol=1e-5)
    assert mixed[3].dtype == full[3].dtype
    assert mixed[3].dtype in (torch.float32, torch.float64)
    torch.testing.assert_close(mixed[3], full[3], rtol=0, atol=0.05)


def test_layer_decay_recipe_leaves_hst_margins_undecayed():
    """HST's learnable margins are 0-d, like SARB's alpha and beta: the
    layer-decay constructor exempts them from weight decay too."""
    cfg = load('sarb_convnext-b_coco_p10.py')
    hst = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'models', 'hst_r101.py'))
    cfg.model.head = hst.model.head
    model = build(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    by_name = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    for margin in ('head.intra_margin', 'head.inter_margin'):
        assert by_name[margin]['params'][0].ndim == 0
        assert by_name[margin]['weight_decay'] == 0
    assert by_name['head.pair_fc1.weight']['weight_decay'] == WEIGHT_DECAY
