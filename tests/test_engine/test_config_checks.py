"""Start-up config checks: typos fail at once with a suggestion."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import sarb_mm  # noqa: F401
from sarb_mm.engine.config_checks import check_config
from sarb_mm.utils.errors import InvalidInputError

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
