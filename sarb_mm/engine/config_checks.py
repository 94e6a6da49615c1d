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
from typing import Iterable, Optional

from mmengine.runner import Runner

from sarb_mm.utils.errors import InvalidInputError

# Top-level keys read by the Runner (its arguments) or by the tools.
RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {
    'self'
} | {
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
DEFAULT_HOOK_NAMES = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                      'param_scheduler', 'checkpoint', 'visualization')
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
    targets = []
    if issubclass(hook_cls, CheckpointHook):
        targets.append(Runner.save_checkpoint)
    try:
        from mmpretrain.engine.hooks import VisualizationHook
        from mmpretrain.visualization import UniversalVisualizer
        if issubclass(hook_cls, VisualizationHook):
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


def check_seed(cfg) -> None:
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not (
            0 <= seed < 2**32):
        raise InvalidInputError(
            f'randomness.seed must be None or an integer in [0, 2**32 - 1], '
            f'got {seed!r}.')


def check_config(cfg) -> None:
    """Every start-up check of a config, in one call."""
    check_top_level_keys(cfg)
    check_known_subkeys(cfg)
    check_hook_arguments(cfg)
    check_seed(cfg)
