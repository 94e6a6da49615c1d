"""Start-up config checks: typos fail at once with a suggestion."""
import glob
import os.path as osp
import sys

import pytest
from mmengine.config import Config

import sarb_mm  # noqa: F401
from sarb_mm.engine.config_checks import check_config
from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.launch import merge_cfg_options, run_tool
from ..test_tools.tiny import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _cfg(**entries):
    base = dict(
        model=dict(type='ImageClassifier'),
        work_dir='w',
        default_scope='mmpretrain',
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        # helper variables, as configs keep them
        data_root='data/coco',
        crop_sizes=(512, 448),
        train_pipeline=[],
        test_pipeline=[],
        vis_backends=[],
    )
    base.update(entries)
    return Config(base)


def test_helper_variables_and_shipped_configs_pass():
    check_config(_cfg())
    paths = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))
    assert len(paths) >= 35
    for path in paths:
        check_config(Config.fromfile(path))


@pytest.mark.parametrize('entries, match', [
    (dict(trian_cfg=dict(max_epochs=50)), "'trian_cfg'.*'train_cfg'"),
    (dict(val_evaluater=dict()), "'val_evaluator'"),
    (dict(optim_wraper=dict()), "'optim_wrapper'"),
    (dict(auto_scale_lr=dict(base_batch_size=8, enabel=True)),
     "auto_scale_lr.enabel.*'enable'"),
    (dict(randomness=dict(sed=1)), "randomness.sed.*'seed'"),
    (dict(default_hooks=dict(checkpiont=dict(type='CheckpointHook'))),
     "default_hooks.checkpiont.*'checkpoint'"),
    (dict(
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', intervl=1))),
     "'intervl'.*'interval'"),
    (dict(
        default_hooks=dict(
            visualization=dict(type='VisualizationHook', enabel=True))),
     "'enabel'.*'enable'"),
    (dict(custom_hooks=[dict(type='PrototypeHook', intervall=2)]),
     r"custom_hooks\[0\].*'intervall'.*'interval'"),
    (dict(custom_hooks=[dict(type='ProtoypeHook')]),
     "unknown hook type 'ProtoypeHook'.*'PrototypeHook'"),
    (dict(randomness=dict(seed=-1)), 'randomness.seed'),
    (dict(randomness=dict(seed=1.5)), 'randomness.seed'),
    (dict(optim_wrapper=dict(paramwise_cfg=dict(bias_decay_mul=0.0))),
     "paramwise_cfg.bias_decay_mul.*'bias_decay_mult'"),
    (dict(
        optim_wrapper=dict(
            paramwise_cfg=dict(custom_keys={'head.': dict(lr_mul=10.0)}))),
     "Did you mean 'lr_mult'"),
    (dict(optim_wrapper=dict(clip_grad=dict(max_nrom=1.0))),
     "clip_grad.max_nrom.*'max_norm'"),
    (dict(train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=0)),
     'train_cfg.val_interval must be an integer >= 1, got 0'),
    (dict(train_cfg=dict(by_epoch=True, max_epochs=0)),
     'train_cfg.max_epochs'),
    (dict(train_dataloader=dict(batch_size=None)),
     'train_dataloader.batch_size must be an integer >= 1, got None'),
    (dict(custom_hooks='PrototypeHook'), 'custom_hooks must be a list'),
    (dict(randomness=None), 'randomness must be a dict'),
    (dict(auto_scale_lr=dict(base_batch_size=0)),
     'base_batch_size must be a positive number'),
    (dict(
        optim_wrapper=dict(
            paramwise_cfg=dict(custom_keys={'head.': dict(decay_mul=0.0)}))),
     "'decay_mult'"),
    (dict(
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', out_dir='/dev/null/ckpts'))
    ), 'out_dir=.*cannot be written'),
    (dict(model=dict(type='ImageClassifier', head=3)),
     r"model\.head is 3, but it is built into an object .* a dict config "
     r"with a type, such as dict\(type='...', ...\)\..*model\.head\.type"),
    (dict(
        model=dict(
            type='ImageClassifier', head=dict(type='SARBHead', loss=1.0))),
     'model.head.loss is 1.0, but it is built'),
    (dict(model='ImageClassifier'), "model is 'ImageClassifier', but"),
    (dict(
        train_dataloader=dict(
            dataset=dict(type='PartialLabelDataset', dataset='coco'))),
     "train_dataloader.dataset.dataset is 'coco', but"),
    (dict(optim_wrapper=dict(optimizer='Adam')),
     "optim_wrapper.optimizer is 'Adam', but"),
    (dict(default_hooks=dict(logger=5)), 'default_hooks.logger is 5, but'),
    (dict(val_evaluator=[dict(type='VOCAveragePrecision'), 'mAP']),
     "val_evaluator.1 is 'mAP', but"),
])
def test_typos_fail_with_a_suggestion(entries, match):
    with pytest.raises(InvalidInputError, match=match):
        check_config(_cfg(**entries))


def test_valid_settings_pass():
    check_config(
        _cfg(
            auto_scale_lr=None,
            optim_wrapper=dict(
                optimizer=dict(type='Adam'),
                clip_grad=dict(max_norm=1.0, norm_type=2),
                paramwise_cfg=dict(
                    bias_decay_mult=0.0,
                    custom_keys={'head.': dict(lr_mult=10.0)})),
            # as mmpretrain's own configs have them
            val_evaluator=[
                dict(type='VOCMultiLabelMetric'),
                dict(type='VOCMultiLabelMetric', average='micro'),
                dict(type='VOCAveragePrecision')
            ]))
    check_config(
        _cfg(
            optim_wrapper=dict(
                paramwise_cfg=dict(
                    custom_keys={
                        'predictor': dict(fix_lr=True),
                        'bn': dict(decay_mult=0, lars_exclude=True),
                        'head': dict(momentum=0.5)
                    }))))


def test_optional_parts_may_be_none():
    check_config(
        _cfg(
            model=dict(
                type='ImageClassifier',
                neck=None,
                head=dict(type='SARBHead', loss=dict(type='X'))),
            val_dataloader=None,
            default_hooks=dict(visualization=None)))


def test_cfg_options_keep_component_dicts():
    """``--cfg-options model.head=3`` is refused by name at the merge,
    naming the component's type and how to set its entries."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'sarb_r18_demo_p10.py'))
    with pytest.raises(
            InvalidInputError,
            match=r"--cfg-options model\.head=3: model\.head is a component "
            r"config, dict\(type='SARBHead', \.\.\.\).* must stay a dict "
            r'config with a type\. Set its entries instead, e\.g\. '
            r'model\.head\.num_classes=VALUE'):
        merge_cfg_options(cfg, {'model.head': 3})
    for key, value in (('custom_hooks.2', 'PrototypeHook'),
                       ('train_dataloader.dataset.dataset',
                        [1, 2]), ('default_hooks.logger', 1)):
        with pytest.raises(InvalidInputError, match=f'{key} is a component'):
            merge_cfg_options(cfg, {key: value})
    assert cfg.model.head.type == 'SARBHead'
    # Entries of a component, and None for an optional one, still apply.
    merge_cfg_options(
        cfg, {
            'model.head.in_channels': 64,
            'model.neck': None,
            'custom_hooks.2.interval': 1
        })
    assert cfg.model.head.in_channels == 64 and cfg.model.neck is None
    assert cfg.custom_hooks[2].interval == 1


def test_train_tool_names_the_key(tmp_path, monkeypatch):
    tool = load_tool('tools/train.py')
    monkeypatch.setattr(sys, 'argv', [
        'train.py',
        osp.join(REPO, 'configs', 'sarb_r18_demo_p10.py'), '--cfg-options',
        'model.head=3', '--work-dir',
        str(tmp_path)
    ])
    with pytest.raises(InvalidInputError, match='model.head=3: model.head'):
        tool.main()


def test_run_tool_names_a_non_dict_component(capsys):
    """What no check caught: mmengine's bare TypeError is reported as a
    config problem, without a traceback."""
    from mmpretrain.registry import MODELS

    with pytest.raises(SystemExit) as exit_info:
        run_tool(lambda: MODELS.build(3))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'cfg should be a dict, ConfigDict or Config' in err
    assert 'must be a dict config with a type' in err
    assert 'Traceback' not in err
    with pytest.raises(TypeError, match='unrelated'):
        run_tool(lambda: (_ for _ in ()).throw(TypeError('unrelated')))


def test_forwarded_hook_arguments_are_accepted():
    check_config(
        _cfg(
            default_hooks=dict(
                checkpoint=dict(
                    type='CheckpointHook',
                    interval=2,
                    max_keep_ckpts=1,
                    save_optimizer=False),
                visualization=dict(
                    type='VisualizationHook', enable=False,
                    draw_score=False))))
