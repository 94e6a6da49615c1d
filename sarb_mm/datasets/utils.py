"""Input checks shared by the dataset classes.

Every failure is reported when the dataset is built, with the offending path
(or key) and what was expected, instead of surfacing later as a ``KeyError``
deep inside a dataloader worker.
"""
import json
import ntpath
import os.path as osp
import posixpath
import re
from typing import Any, List, Sequence


def require_dir(path: str, what: str, layout: str) -> None:
    """Raise :class:`FileNotFoundError` unless ``path`` is a directory.

    Args:
        path (str): Directory that must exist.
        what (str): Human-readable role of the directory, e.g.
            ``'image directory'``.
        layout (str): Sketch of the expected on-disk layout of the dataset,
            appended to the message.
    """
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{what} not found: {path!r}\n{_layout_hint(layout)}')


def require_file(path: str, what: str, layout: str) -> None:
    """Raise unless ``path`` is a regular file (or a link to one).

    A missing path raises :class:`FileNotFoundError` with the layout hint;
    a directory, FIFO or device raises ``ValueError``, since reading a FIFO
    blocks and a device may never end.

    Args:
        path (str): File that must exist.
        what (str): Human-readable role of the file, e.g.
            ``'annotation file'``.
        layout (str): Sketch of the expected on-disk layout of the dataset.
    """
    if osp.isfile(path):
        return
    if not osp.exists(path):
        raise FileNotFoundError(
            f'{what} not found: {path!r}\n{_layout_hint(layout)}')
    kind = 'a directory' if osp.isdir(path) else \
        'a FIFO, device or socket'
    raise ValueError(
        f'{what} {path!r} is {kind}, not a regular file; point the dataset '
        f'at the file itself.\n{_layout_hint(layout)}')


def load_json_file(path: str) -> Any:
    """Load a UTF-8 JSON file, turning decode errors into ``ValueError``.

    A UTF-8 byte order mark is accepted. A key repeated within one object
    is an error: JSON readers keep the last value, so the others would be
    lost silently (e.g. two label lists for one VG image).

    Args:
        path (str): JSON file; its existence must already be checked.

    Returns:
        Any: The decoded JSON document.
    """
    text = _read_text(path, 'JSON file')
    if not text.strip():
        raise ValueError(f'JSON file {path!r} is empty; it was probably not '
                         'written completely. Restore or regenerate it.')
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise ValueError(
            f'JSON file {path!r} has the key {short_repr(e.args[0])} twice in '
            'one object; only one value could be kept. Remove or rename '
            'one of them.') from None
    except json.JSONDecodeError as e:
        raise ValueError(
            f'{path!r} is not valid JSON ({e.msg} at line {e.lineno}, '
            f'column {e.colno}); the file may be truncated or not a '
            'JSON annotation file.') from None
    except RecursionError:
        raise ValueError(f'JSON file {path!r} is nested too deeply to be '
                         'an annotation file.') from None


def read_list_file(path: str, what: str = 'Split file') -> List[str]:
    """Read the non-blank lines of a split / list file, in file order.

    The same entry twice (after path normalisation, so ``a.jpg`` and
    ``./a.jpg`` are one entry) is an error naming both line numbers: the
    image would count twice in training and evaluation.

    Args:
        path (str): Text file with one entry per line; its existence must
            already be checked.
        what (str): Role of the file in messages. Defaults to
            ``'Split file'``.

    Returns:
        list[str]: Stripped entries, blank lines skipped.
    """
    entries, seen = [], {}
    for lineno, line in enumerate(_read_text(path, what).splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        key = osp.normpath(entry)
        if key in seen:
            first, first_line = seen[key]
            same = (
                repr(entry) if first == entry else f'{first!r} and {entry!r}')
            raise ValueError(
                f'{what} {path!r} lists {same} (one image) twice, on lines '
                f'{first_line} and {lineno}; it would count twice in '
                'training and evaluation. Remove one of the lines.')
        seen[key] = (entry, lineno)
        entries.append(entry)
    if not entries:
        raise ValueError(f'{what} {path!r} lists no images; '
                         'expected one entry per line.')
    return entries


def check_file_name(name: Any, where: str, allow_outside: bool) -> str:
    """Check a file name taken from an annotation or list file.

    Names are joined to the image (or annotation) directory, so an absolute
    name, a ``..`` component or a URL (``scheme://``, which mmengine would
    read with another storage backend) reaches files outside the data
    root. Those are refused unless ``allow_outside`` is set. Symbolic links
    inside the data root are not followed here (they are a common way to
    assemble a dataset).

    Args:
        name: The file name (or image id) as found in the file.
        where (str): Where it comes from, e.g. ``"COCO annotation file
            'x.json': image id 5 has file_name"``; the name is appended.
        allow_outside (bool): Accept names that leave the data root (the
            dataset argument ``allow_outside_data_root``).

    Returns:
        str: ``name`` unchanged.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f'{where} {short_repr(name)}; expected a non-empty string, the '
            'file name relative to the image directory. Fix the entry.')
    if '\x00' in name:
        raise ValueError(f'{where} {short_repr(name)}, which contains a NUL '
                         'character; no file can have that name. Fix the '
                         'entry.')
    if allow_outside:
        return name
    if (posixpath.isabs(name) or ntpath.isabs(name)
            or ntpath.splitdrive(name)[0]):
        why = 'it is an absolute path or names a drive'
    elif '..' in re.split(r'[\\/]', name):
        why = "it has a '..' component"
    elif '://' in name:
        why = "it is a URL ('://')"
    else:
        return name
    raise ValueError(
        f'{where} {short_repr(name)}, which leaves the data root ({why}). '
        'File names must be relative paths inside the image directory: fix '
        'the entry, or set allow_outside_data_root=True in the dataset '
        'config if this layout is intended.')


def check_class_names(names: Sequence, where: str) -> None:
    """Refuse repeated class names.

    Two classes with one name merge in mmpretrain's ``class_to_idx`` and
    overwrite each other's per-class results.

    Args:
        names (Sequence): Class names in class-index order.
        where (str): Where the names come from, for the message.
    """
    first = {}
    for i, name in enumerate(names):
        if name in first:
            raise ValueError(
                f'{where}: classes {first[name]} and {i} are both named '
                f'{name!r}; class names must be unique, because mmpretrain '
                'maps names to indices and reports results per name. Give '
                'one of them another name.')
        first[name] = i


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _read_text(path: str, what: str) -> str:
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise ValueError(
            f'{what} {path!r} is not UTF-8 text (byte {e.start} is '
            f'{data[e.start:e.start + 1]!r}); it may be in another encoding '
            'or not a text file. Re-save it as UTF-8.') from None


def _layout_hint(layout: str) -> str:
    return ('Expected dataset layout (paths are relative to `data_root`):\n' +
            layout.rstrip('\n'))
