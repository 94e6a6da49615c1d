"""Input checks shared by the dataset classes.

Every failure is reported when the dataset is built, with the offending path
(or key) and what was expected, instead of surfacing later as a ``KeyError``
deep inside a dataloader worker.
"""
import json
import os.path as osp
from typing import Any, List


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
    """Raise :class:`FileNotFoundError` unless ``path`` is a file.

    Args:
        path (str): File that must exist.
        what (str): Human-readable role of the file, e.g.
            ``'annotation file'``.
        layout (str): Sketch of the expected on-disk layout of the dataset.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} not found: {path!r}\n{_layout_hint(layout)}')


def load_json_file(path: str) -> Any:
    """Load a JSON file, turning a decode error into a clear ``ValueError``.

    Args:
        path (str): JSON file; its existence must already be checked.

    Returns:
        Any: The decoded JSON document.
    """
    with open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(
                f'{path!r} is not valid JSON ({e.msg} at line {e.lineno}, '
                f'column {e.colno}); the file may be truncated or not a '
                'JSON annotation file.') from None


def read_list_file(path: str) -> List[str]:
    """Read the non-blank lines of a split / list file, in file order.

    Args:
        path (str): Text file with one entry per line; its existence must
            already be checked.

    Returns:
        list[str]: Stripped entries, blank lines skipped.
    """
    with open(path, encoding='utf-8') as f:
        entries = [line.strip() for line in f]
    entries = [entry for entry in entries if entry]
    if not entries:
        raise ValueError(f'Split file {path!r} lists no images; '
                         'expected one entry per line.')
    return entries


def _layout_hint(layout: str) -> str:
    return ('Expected dataset layout (paths are relative to `data_root`):\n' +
            layout.rstrip('\n'))
