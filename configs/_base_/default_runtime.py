# Registers every sarb_mm component into the mmpretrain registries.
custom_imports = dict(imports=['sarb_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
# mmengine's Runner plus start-up config checks, strict checkpoint loading
# for evaluation / resume, auto-resume past a corrupt newest checkpoint, and
# auto_scale_lr by the effective batch (gradient accumulation included).
runner_type = 'CheckedRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # The reported number is the last epoch's: keeping the best epoch on the
    # test split would select on the test set.
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # Stops the run at the first NaN / inf loss, naming the loss terms.
    finite_loss=dict(type='FiniteLossHook'),
)
# PartialLabelHook: class-count check before the first iteration, and the
# partial-label matrix written to <work_dir>/partial_labels.npy.
# EpochSeedHook: reseeds every epoch so that resumed runs are exact.
custom_hooks = [dict(type='PartialLabelHook'), dict(type='EpochSeedHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
