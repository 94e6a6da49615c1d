"""Config checks that turn silent mistakes into errors at start-up.

mmengine reads the top-level keys it knows and ignores every other one
(configs keep helper variables such as ``data_root`` there), so a typo such
as ``trian_cfg`` silently trains with the defaults. Some dicts are read key
by key (``auto_scale_lr``, ``randomness``, ``env_cfg``) and some hooks pass
extra arguments on to a later call (``CheckpointHook`` to
``Runner.save_checkpoint`` at the end of the first epoch), so their typos go
unnoticed or fail late.
"""
import difflib
import inspect
import os
from typing import Iterable, Optional

import torch
from mmengine.runner import Runner

from sarb_mm.utils.errors import InvalidInputError

# Top-level keys read by the Runner (its arguments) or by the tools.
RUNNER_KEYS = frozenset(inspect.signature(
    Runner.__init__).parameters) - {'self'} | {
        'runner_type', 'custom_imports', 'model_wrapper_cfg', 'compile',
        'activation_checkpointing', 'efficient_conv_bn_eval', 'tta_model',
        'load_strict'
    }
# Dicts whose keys are read one by one (a typo is silently ignored).
KNOWN_SUBKEYS = {
    'auto_scale_lr': {'base_batch_size', 'enable'},
    'randomness': {'seed', 'deterministic', 'diff_rank_seed'},
    'env_cfg': {'cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit'},
}
# Keys the stock optimizer-wrapper constructors read from paramwise_cfg.
PARAMWISE_KEYS = {
    None: {
        'custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult',
        'dwconv_decay_mult', 'flat_decay_mult', 'bypass_duplicate',
        'dcn_offset_lr_mult'
    },
    'DefaultOptimWrapperConstructor': None,  # same as None, filled below
    'LearningRateDecayOptimWrapperConstructor': {
        'custom_keys', 'bias_decay_mult', 'norm_decay_mult', 'flat_decay_mult',
        'layer_decay_rate'
    },
}
PARAMWISE_KEYS['DefaultOptimWrapperConstructor'] = PARAMWISE_KEYS[None]
PARAMWISE_KEYS['SARBLayerDecayOptimWrapperConstructor'] = PARAMWISE_KEYS[
    'LearningRateDecayOptimWrapperConstructor']
CUSTOM_KEY_OPTIONS = {'lr_mult', 'decay_mult'}
DEFAULT_HOOK_NAMES = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                      'param_scheduler', 'checkpoint', 'visualization')
# Entries that mmengine builds into objects through a registry, which
# fails with a bare "cfg should be a dict" TypeError on a plain value: the
# top-level keys, and the keys built within each (searched at any depth
# under it, e.g. the wrapped dataset of a PartialLabelDataset).
BUILT_ENTRIES = {
    'model': ('backbone', 'neck', 'head', 'loss', 'data_preprocessor'),
    'tta_model': ('module', ),
    'train_dataloader': ('dataset', 'sampler', 'batch_sampler'),
    'val_dataloader': ('dataset', 'sampler', 'batch_sampler'),
    'test_dataloader': ('dataset', 'sampler', 'batch_sampler'),
    'optim_wrapper': ('optimizer', ),
    'param_scheduler': (),
    'val_evaluator': (),
    'test_evaluator': (),
    'visualizer': (),
}
SIMILARITY = 0.8


def _close(name: str, known: Iterable[str]) -> Optional[str]:
    matches = difflib.get_close_matches(
        name, sorted(known), n=1, cutoff=SIMILARITY)
    return matches[0] if matches else None


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    match = _close(name, known)
    return f' Did you mean {match!r}?' if match else ''


def check_top_level_keys(cfg) -> None:
    """Refuse top-level keys that look like a misspelt Runner key.

    Keys that resemble no known key are helper variables and pass.
    """
    for key in cfg.keys():
        if key in RUNNER_KEYS or key.startswith('_'):
            continue
        match = _close(key, RUNNER_KEYS)
        if match is not None:
            raise InvalidInputError(
                f'Unknown config key {key!r}: nothing reads it, so it would '
                f'be silently ignored. Did you mean {match!r}? (Rename it in '
                'the config or in --cfg-options.)')


def check_known_subkeys(cfg) -> None:
    for name, known in KNOWN_SUBKEYS.items():
        value = cfg.get(name)
        if not isinstance(value, dict):
            continue
        for key in value:
            if key not in known:
                raise InvalidInputError(
                    f'Unknown key {name}.{key}: {name} takes '
                    f'{sorted(known)}.{_did_you_mean(key, known)}')
    hooks = cfg.get('default_hooks') or {}
    for name in hooks:
        match = _close(name, DEFAULT_HOOK_NAMES)
        if name not in DEFAULT_HOOK_NAMES and match is not None:
            raise InvalidInputError(
                f'default_hooks.{name} looks like a misspelt {match!r}: it '
                f'would register a second hook next to the default '
                f'{match!r} instead of configuring it. Rename it to '
                f'{match!r}.')


def _forwarded_arguments(hook_cls) -> Optional[set]:
    """Where a hook's ``**kwargs`` end up, as a set of argument names."""
    from mmengine.hooks import CheckpointHook

    # Only the stock classes: a subclass may consume **kwargs itself.
    targets = []
    if hook_cls is CheckpointHook:
        targets.append(Runner.save_checkpoint)
    try:
        from mmpretrain.engine.hooks import VisualizationHook
        from mmpretrain.visualization import UniversalVisualizer
        if hook_cls is VisualizationHook:
            targets.append(UniversalVisualizer.visualize_cls)
    except ImportError:  # pragma: no cover - mmpretrain is a dependency
        pass
    if not targets:
        return None
    return set().union(*(inspect.signature(t).parameters for t in targets))


def check_hook_arguments(cfg) -> None:
    """Hook arguments that no code would accept fail now, not after an
    epoch (``CheckpointHook`` forwards unknown ones to its first save)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import HOOKS
    hooks = [(f'default_hooks.{name}', hook)
             for name, hook in (cfg.get('default_hooks') or {}).items()]
    hooks += [(f'custom_hooks[{i}]', hook)
              for i, hook in enumerate(cfg.get('custom_hooks') or [])]
    scope = cfg.get('default_scope') or 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        for where, hook in hooks:
            if not isinstance(hook, dict) or not isinstance(
                    hook.get('type'), str):
                continue
            hook_cls = HOOKS.get(hook['type'])
            if hook_cls is None:
                raise InvalidInputError(
                    f'{where}: unknown hook type {hook["type"]!r}.'
                    f'{_did_you_mean(hook["type"], HOOKS.module_dict)}')
            params = inspect.signature(hook_cls.__init__).parameters
            accepted = set(params) - {'self'}
            takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
            if takes_any:
                forwarded = _forwarded_arguments(hook_cls)
                if forwarded is None:
                    continue  # cannot tell where they go
                accepted |= forwarded
            for key in hook:
                if key not in accepted | {'type', 'priority'}:
                    raise InvalidInputError(
                        f'{where} ({hook["type"]}) has an unknown argument '
                        f'{key!r}.{_did_you_mean(key, accepted)} It would '
                        'fail only when the hook first uses it.')


def check_optim_wrapper(cfg) -> None:
    """paramwise_cfg and clip_grad are read key by key: typos are ignored,
    or (clip_grad) fail only at the first optimizer step."""
    optim = cfg.get('optim_wrapper')
    if not isinstance(optim, dict):
        return
    paramwise = optim.get('paramwise_cfg')
    known = PARAMWISE_KEYS.get(optim.get('constructor'))
    custom = (paramwise or {}).get('custom_keys') if isinstance(
        paramwise, dict) else None
    if paramwise is not None and not isinstance(paramwise, dict) or (
            custom is not None and not (isinstance(custom, dict) and all(
                isinstance(v, dict) for v in custom.values()))):
        raise InvalidInputError(
            'optim_wrapper.paramwise_cfg must be a dict, and its custom_keys '
            "a dict of dicts such as {'head.': dict(lr_mult=10.0)}; got "
            f'{paramwise!r}. (--cfg-options cannot write dicts: put them in '
            'a config file.)')
    if isinstance(paramwise, dict) and known is not None:
        for key in paramwise:
            if key not in known:
                raise InvalidInputError(
                    f'Unknown key optim_wrapper.paramwise_cfg.{key}: the '
                    f'optimizer constructor reads {sorted(known)}.'
                    f'{_did_you_mean(key, known)}')
        # Other entries go into the parameter group as they are (momentum,
        # fix_lr, ...), so only near-misses of the multipliers are typos.
        for name, options in (paramwise.get('custom_keys') or {}).items():
            for key in (options or {}):
                match = _close(key, CUSTOM_KEY_OPTIONS)
                if key not in CUSTOM_KEY_OPTIONS and match is not None:
                    raise InvalidInputError(
                        'Unknown key optim_wrapper.paramwise_cfg.custom_keys'
                        f'[{name!r}].{key}. Did you mean {match!r}?')
    clip = optim.get('clip_grad')
    if isinstance(clip, dict):
        clip_type = clip.get('type', 'norm')
        func = dict(
            norm=torch.nn.utils.clip_grad_norm_,
            value=torch.nn.utils.clip_grad_value_).get(clip_type)
        if func is None:
            raise InvalidInputError(
                "optim_wrapper.clip_grad.type must be 'norm' or 'value', got "
                f'{clip_type!r}.')
        accepted = set(inspect.signature(func).parameters) - {'parameters'}
        for key in clip:
            if key not in accepted | {'type'}:
                raise InvalidInputError(
                    f'Unknown key optim_wrapper.clip_grad.{key} (type '
                    f'{clip_type!r} takes {sorted(accepted)}).'
                    f'{_did_you_mean(key, accepted)}')


def _check_count(value, where: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidInputError(
            f'{where} must be an integer >= 1, got {value!r}.')


def check_loops_and_loaders(cfg) -> None:
    """Values mmengine takes as given and fails on later (a zero
    val_interval after the first epoch, a None batch size deep in the
    sampler)."""
    train_cfg = cfg.get('train_cfg')
    if isinstance(train_cfg, dict) and 'type' not in train_cfg:
        for key in ('max_epochs', 'max_iters', 'val_interval'):
            if key in train_cfg:
                _check_count(train_cfg[key], f'train_cfg.{key}')
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict) and 'batch_size' in loader:
            _check_count(loader['batch_size'],
                         f'{split}_dataloader.batch_size')
    hooks = cfg.get('custom_hooks')
    if hooks is not None and (not isinstance(hooks, (list, tuple))
                              or any(not isinstance(h, dict) for h in hooks)):
        raise InvalidInputError(
            'custom_hooks must be a list of dicts such as '
            f"[dict(type='PrototypeHook')], got {hooks!r}.")
    for name in ('randomness', 'env_cfg', 'auto_scale_lr'):
        value = cfg.get(name)
        if name == 'auto_scale_lr' and value is None:
            continue  # no scaling
        if name in cfg and not isinstance(value, dict):
            raise InvalidInputError(
                f'{name} must be a dict, got {value!r}; delete the line to '
                'use the default.')
    scale = cfg.get('auto_scale_lr') or {}
    base = scale.get('base_batch_size')
    if base is not None and (isinstance(base, bool)
                             or not isinstance(base,
                                               (int, float)) or not base > 0):
        raise InvalidInputError(
            'auto_scale_lr.base_batch_size must be a positive number (the '
            f'total batch the configured lr is meant for), got {base!r}.')


def _plain_value(value) -> bool:
    # Built objects and None (an optional part switched off) pass: only
    # values that can never be a component are refused.
    return isinstance(value, (str, int, float))


def _refuse_plain(path: str, value) -> None:
    raise InvalidInputError(
        f'{path} is {value!r}, but it is built into an object (a model part, '
        'dataset, optimizer, hook, ...), so it must be a dict config with a '
        "type, such as dict(type='...', ...). Set its entries one by one "
        f'instead (e.g. --cfg-options {path}.type=NAME to change its class),'
        ' not the entry itself.')


def _find_plain_entries(node, path: str, keys) -> None:
    """Refuse a plain value under one of ``keys`` anywhere below ``node``."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        where = f'{path}.{key}'
        if key in keys and _plain_value(value):
            _refuse_plain(where, value)
        _find_plain_entries(value, where, keys)


def check_built_entries(cfg) -> None:
    """Entries that are built into objects (``BUILT_ENTRIES``, the default
    hooks) must be dict configs, not plain values such as the ``3`` of
    ``--cfg-options model.head=3``: mmengine would fail on them with a
    ``TypeError`` that names neither the key nor the fix."""
    for name, keys in BUILT_ENTRIES.items():
        value = cfg.get(name)
        if _plain_value(value):
            _refuse_plain(name, value)
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if _plain_value(item):
                    _refuse_plain(f'{name}.{i}', item)
        _find_plain_entries(value, name, keys)
    hooks = cfg.get('default_hooks')
    if isinstance(hooks, dict):
        for name, hook in hooks.items():
            if _plain_value(hook):
                _refuse_plain(f'default_hooks.{name}', hook)


def check_output_dirs(cfg) -> None:
    """A checkpoint out_dir that cannot be written fails at start, not
    after the first epoch."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    out_dir = hook.get('out_dir') if isinstance(hook, dict) else None
    if not out_dir or '://' in str(out_dir):
        return
    existing = os.path.abspath(out_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        raise InvalidInputError(
            f'default_hooks.checkpoint.out_dir={out_dir!r} cannot be '
            f'written ({existing!r} is not a writable directory); '
            'checkpoints would fail after the first epoch.')


def check_seed(cfg) -> None:
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is None:
        return
    if isinstance(
            seed,
            bool) or not isinstance(seed, int) or not (0 <= seed < 2**32):
        raise InvalidInputError(
            f'randomness.seed must be None or an integer in [0, 2**32 - 1], '
            f'got {seed!r}.')


def check_config(cfg) -> None:
    """Every start-up check of a config, in one call."""
    check_top_level_keys(cfg)
    check_built_entries(cfg)
    check_loops_and_loaders(cfg)
    check_known_subkeys(cfg)
    check_hook_arguments(cfg)
    check_optim_wrapper(cfg)
    check_output_dirs(cfg)
    check_seed(cfg)
