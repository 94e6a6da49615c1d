"""Reading checkpoints with errors that say what is wrong with them."""
import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional

import torch
from mmengine.runner.checkpoint import _load_checkpoint

from sarb_mm.utils.errors import InvalidInputError
from sarb_mm.utils.paths import check_input_file

_SHOWN = 8  # keys listed per kind of mismatch
_MAX_POINTER_CHARS = 4096


def read_checkpoint(filename: str,
                    map_location='cpu',
                    mmap: bool = False) -> dict:
    """``mmengine``'s checkpoint reader, with a clear error for a local
    file that is empty, truncated, or holds no state dict.

    ``mmap=True`` maps a local file's tensors instead of reading them (for
    checks that only need the structure).
    """
    is_local = '://' not in filename
    if is_local:
        check_input_file(
            filename, 'Checkpoint', hint='Give the path of a .pth file.')
    if is_local and osp.getsize(filename) == 0:
        raise InvalidInputError(
            f'Checkpoint {filename} is empty (0 bytes): the run that wrote '
            'it was probably killed while saving. Use an earlier checkpoint.')
    try:
        if mmap and is_local:
            checkpoint = torch.load(
                filename, map_location='cpu', mmap=True, weights_only=True)
        else:
            checkpoint = _load_checkpoint(filename, map_location=map_location)
    except Exception as err:
        if not is_local:
            raise
        first_line = (str(err).strip().splitlines() or [''])[0]
        raise InvalidInputError(
            f'Cannot read checkpoint {filename} ({type(err).__name__}: '
            f'{first_line}). It is truncated, corrupt or not a PyTorch '
            'checkpoint; use an earlier one. (A checkpoint that holds other '
            'objects than mmengine saves is refused on purpose; checkpoints '
            'of this project load once sarb_mm is imported.)') from err
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise InvalidInputError(
            f'Checkpoint {filename} holds no state dict (got '
            f'{type(checkpoint).__name__} {_short(checkpoint)}).')
    return checkpoint


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + '...'


def state_dict_of(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The model weights of a checkpoint, without DDP's ``module.``."""
    state = checkpoint.get('state_dict', checkpoint)
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def check_checkpoint_fits(model: torch.nn.Module,
                          checkpoint: dict,
                          filename: str,
                          non_strict_hint: bool = True) -> None:
    """Refuse weights that do not fit ``model`` exactly or are not finite.

    Lists missing, unexpected and shape-mismatched keys (the first few of
    each, with their counts). Checked before anything is loaded.

    Args:
        non_strict_hint (bool): Whether the message mentions
            ``tools/test.py --non-strict`` (not where no such flag exists,
            e.g. for inference).
    """
    state = state_dict_of(checkpoint)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f'{k}: checkpoint {tuple(state[k].shape)} vs model '
        f'{tuple(v.shape)}' for k, v in expected.items()
        if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for what, keys in (('missing from the checkpoint',
                        missing), ('unexpected in the checkpoint', unexpected),
                       ('with another shape', mismatched)):
        if keys:
            shown = '\n    '.join(keys[:_SHOWN])
            more = f'\n    ... and {len(keys) - _SHOWN} more' if len(
                keys) > _SHOWN else ''
            problems.append(f'  {len(keys)} key(s) {what}:\n    {shown}{more}')
    if problems:
        raise InvalidInputError(
            f'Checkpoint {filename} does not fit the model of this config:\n' +
            '\n'.join(problems) + '\nIt was trained with another config '
            '(class count, backbone or head); use that config' +
            (', or pass --non-strict to tools/test.py (load_strict=False) '
             'to evaluate a partly loaded model on purpose.'
             if non_strict_hint else '.'))
    bad = [
        k for k, v in state.items() if torch.is_tensor(v)
        and v.is_floating_point() and not torch.isfinite(v).all()
    ]
    if bad:
        raise InvalidInputError(
            f'Checkpoint {filename} has NaN or infinite values in '
            f'{len(bad)} tensor(s), e.g. {bad[:_SHOWN]}: the run that wrote '
            'it diverged. Use an earlier checkpoint.')


def check_checkpoint_overlaps(model: torch.nn.Module,
                              checkpoint: dict,
                              filename: str,
                              logger=None) -> None:
    """For a partial load (``load_from`` to fine-tune): refuse a checkpoint
    of which nothing would load, or whose loaded part is not finite.

    mmengine loads such a file key by key and only prints what it skipped,
    so a checkpoint with, say, an extra key prefix trains from scratch.
    """
    state = state_dict_of(checkpoint)
    expected = model.state_dict()
    loaded = [
        k for k, v in expected.items()
        if k in state and torch.is_tensor(state[k])
        and tuple(state[k].shape) == tuple(v.shape)
    ]
    if not loaded:
        raise InvalidInputError(
            f'load_from={filename}: none of its {len(state)} tensors fits '
            f'the model (e.g. checkpoint {list(state)[:3]} vs model '
            f'{list(expected)[:3]}), so training would start from scratch. '
            'Use a checkpoint of this architecture, or fix its key names.')
    bad = [
        k for k in loaded
        if torch.is_tensor(state[k]) and state[k].is_floating_point()
        and not torch.isfinite(state[k]).all()
    ]
    if bad:
        raise InvalidInputError(
            f'load_from={filename} has NaN or infinite values in '
            f'{len(bad)} tensor(s), e.g. {bad[:_SHOWN]}.')
    if logger is not None and len(loaded) < len(expected):
        logger.warning(
            f'load_from={filename}: {len(loaded)} of the model\'s '
            f'{len(expected)} tensors come from the checkpoint; the others '
            'keep their initialisation.')


def checkpoint_candidates(work_dir: str, logger=None) -> List[str]:
    """Checkpoints of a work dir, newest first: the one ``last_checkpoint``
    names, then ``*.pth`` by modification time.

    A ``last_checkpoint`` that points into another directory (a copied
    work dir) is replaced by the file of the same name in this one, if
    there is one: resuming another run's checkpoint would mix two runs.
    """
    candidates = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, errors='replace') as f:
            # A path, never more: a pointer padded to gigabytes stays unread.
            named = f.read(_MAX_POINTER_CHARS).strip()
        here = osp.join(work_dir, osp.basename(named)) if named else ''
        outside = named and osp.dirname(
            osp.abspath(named)) != osp.abspath(work_dir)
        if outside and osp.isfile(here):
            if logger is not None:
                logger.warning(
                    f'{pointer} names {named}, outside this work dir; '
                    f'using {here} instead.')
            named = here
        if named and not osp.exists(named):
            if logger is not None:
                logger.warning(f'{pointer} names {named}, which no longer '
                               'exists.')
            named = ''
        if named:
            candidates.append(named)
    others = sorted(
        glob.glob(osp.join(work_dir, '*.pth')),
        key=lambda p: (os.stat(p).st_mtime_ns, p),
        reverse=True)
    normalized = {osp.abspath(c) for c in candidates}
    candidates += [p for p in others if osp.abspath(p) not in normalized]
    return candidates


def find_resumable_checkpoint(work_dir: str, logger=None) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that can be read.

    An unreadable newer one (a run killed while saving) is skipped with a
    warning. None when the work dir has no checkpoint at all.

    Raises:
        InvalidInputError: If there are checkpoints but none is readable:
            starting afresh would silently throw the run away.
    """
    candidates = checkpoint_candidates(work_dir, logger)
    if not candidates:
        return None
    skipped = []
    for path in candidates:
        try:
            # Memory-mapped: a readability check, not a second full load.
            checkpoint = read_checkpoint(path, mmap=True)
        except InvalidInputError as err:
            skipped.append(str(err))
            continue
        if 'meta' not in checkpoint or 'state_dict' not in checkpoint:
            skipped.append(f'{path} has no "meta"/"state_dict": not a '
                           'training checkpoint.')
            continue
        for reason in skipped:
            if logger is not None:
                logger.warning(f'Auto-resume skips a checkpoint: {reason}')
        return path
    raise InvalidInputError(
        f'--resume: none of the {len(candidates)} checkpoint(s) in '
        f'{work_dir} can be read:\n  ' + '\n  '.join(skipped) +
        '\nGive a checkpoint with --resume PATH, or remove them to start '
        'afresh.')
