"""Input checks shared by the dataset classes.

Every failure is reported when the dataset is built, with the offending path
(or key) and what was expected, instead of surfacing later as a ``KeyError``
deep inside a dataloader worker.

Files come from other people, so every reader here has bounded memory: text
files are read line by line with a cap on the line length
(:data:`MAX_LINE_LENGTH`), JSON files element by element with a cap on the
element length (:mod:`.json_stream`). A file that breaks a cap is refused
with its name and line, never read whole into memory.
"""
import ntpath
import os.path as osp
import posixpath
import re
from typing import IO, Any, Iterator, List, Optional, Sequence, Tuple

from sarb_mm.utils.errors import InvalidInputError, MissingInputFileError
from sarb_mm.utils.paths import path_problem
from .json_stream import JsonStream, JsonStreamError

#: The longest line accepted in a text file read line by line (split and
#: list files, class files, CSV files), in bytes (in characters for the
#: CSV files, which are decoded as they are read). Real lines are a file or
#: class name, or a CSV row of a few fields: well under 1 KiB. Raise it
#: (``sarb_mm.datasets.utils.MAX_LINE_LENGTH = ...``) for a file with
#: genuinely longer lines.
MAX_LINE_LENGTH = 1024**2


def require_dir(path: str, what: str, layout: str) -> None:
    """Raise unless ``path`` is a directory (or a link to one).

    A missing path raises :class:`FileNotFoundError` with the layout hint;
    anything else that is not a directory (a file, a symbolic link loop, a
    FIFO, ...) raises :class:`InvalidInputError` saying what it is.

    Args:
        path (str): Directory that must exist.
        what (str): Human-readable role of the directory, e.g.
            ``'image directory'``.
        layout (str): Sketch of the expected on-disk layout of the dataset,
            appended to the message.
    """
    if osp.isdir(path):
        return
    problem = path_problem(path)
    _raise_if_missing(path, what, layout, problem)
    # path_problem words what a path is when a file is wanted; here a
    # directory is.
    special = ', not a regular file'
    if problem is None:
        problem = 'is a file, not a directory'
    elif problem.endswith(special):
        problem = problem[:-len(special)] + ', not a directory'
    raise InvalidInputError(
        f'{what} {path!r} {problem}; point the dataset at the directory '
        f'itself.\n{_layout_hint(layout)}')


def require_file(path: str, what: str, layout: str) -> None:
    """Raise unless ``path`` is a regular file (or a link to one).

    A missing path raises :class:`FileNotFoundError` with the layout hint;
    a directory, FIFO, device, symbolic link loop or unreadable file raises
    :class:`InvalidInputError` (a ``ValueError``) saying what it is, since
    reading a FIFO blocks and a device may never end.

    Args:
        path (str): File that must exist.
        what (str): Human-readable role of the file, e.g.
            ``'annotation file'``.
        layout (str): Sketch of the expected on-disk layout of the dataset.
    """
    problem = path_problem(path)
    if problem is None:
        return
    _raise_if_missing(path, what, layout, problem)
    if 'link loop' in problem:
        fix = 'fix the link, or point the dataset at the file itself'
    elif 'permission' in problem:
        fix = 'make it readable, or point the dataset at a readable copy'
    else:
        fix = 'point the dataset at the file itself'
    raise InvalidInputError(
        f'{what} {path!r} {problem}; {fix}.\n{_layout_hint(layout)}')


def _raise_if_missing(path: str, what: str, layout: str,
                      problem: Optional[str]) -> None:
    """Raise :class:`MissingInputFileError` (a ``FileNotFoundError``) if
    ``problem`` (from :func:`path_problem`) says that nothing is there."""
    if problem == 'does not exist':
        raise MissingInputFileError(
            f'{what} not found: {path!r}\n{_layout_hint(layout)}')
    if problem is not None and (problem.startswith('does not exist')
                                or 'broken link' in problem):
        raise MissingInputFileError(
            f'{what} not found: {path!r} {problem}.\n{_layout_hint(layout)}')


def load_json_file(path: str,
                   max_element_chars: Optional[int] = None,
                   chunk_bytes: Optional[int] = None) -> Any:
    """Load a UTF-8 JSON file with bounded memory for its text.

    The file is streamed (see :class:`~.json_stream.JsonStream`): the
    elements of a top-level array, the values of a top-level object and
    the elements of arrays that are such values (COCO's ``"images"``,
    ``"annotations"``, ...) are decoded one by one, each at most
    ``max_element_chars`` characters, so a broken or hostile file is
    refused with the line of the element instead of being read whole. The
    result equals ``json.loads`` of the file.

    A UTF-8 byte order mark is accepted. A key repeated within one object
    (also the top-level one) is an error: JSON readers keep the last value,
    so the others would be lost silently (e.g. two label lists for one VG
    image).

    Args:
        path (str): JSON file; its existence must already be checked.
        max_element_chars (int, optional): Longest element, in characters.
            Defaults to :data:`~.json_stream.MAX_ELEMENT_CHARS`.
        chunk_bytes (int, optional): Bytes per read. Defaults to
            :data:`~.json_stream.CHUNK_BYTES` (4 MiB).

    Returns:
        Any: The decoded JSON document.

    Raises:
        InvalidInputError: Naming the file and the line, for text that is
            not UTF-8, empty or not valid JSON, a repeated key, nesting too
            deep and an element longer than ``max_element_chars``.
    """
    with open(path, 'rb') as f:
        stream = JsonStream(
            f,
            chunk_bytes=chunk_bytes,
            max_element_chars=max_element_chars,
            object_pairs_hook=_unique_keys)
        try:
            if not stream.peek():
                raise InvalidInputError(
                    f'JSON file {path!r} is empty; it was probably not '
                    'written completely. Restore or regenerate it.')
            return stream.document()
        except _DuplicateKey as e:
            where = (f' (in the value starting on line '
                     f'{stream.location()[0]})' if stream.decoding else '')
            raise InvalidInputError(
                f'JSON file {path!r} has the key {short_repr(e.args[0])} '
                f'twice in one object{where}; only one value could be kept. '
                'Remove or rename one of them.') from None
        except JsonStreamError as e:
            raise InvalidInputError(_json_error_message(path, e)) from None
        except RecursionError:
            raise InvalidInputError(
                f'JSON file {path!r} is nested too deeply to be an '
                f'annotation file (the value starting on line '
                f'{stream.location()[0]}).') from None


def _json_error_message(path: str, err: JsonStreamError) -> str:
    if err.kind == 'encoding':
        return (f'JSON file {path!r} is not UTF-8 text (byte {err.offset} '
                f'is {err.byte!r}), on line {err.lineno}; it may be in '
                'another encoding or not a text file. Re-save it as UTF-8.')
    if err.kind == 'too_long':
        return (f'JSON file {path!r}: {err.too_long_text()}, or pass a larger '
                'max_element_chars.')
    return (f'{path!r} is not valid JSON ({err.msg} at line {err.lineno}, '
            f'column {err.colno}); the file may be truncated or not a '
            'JSON annotation file.')


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
    for lineno, line in read_text_lines(path, what):
        entry = line.strip()
        if not entry:
            continue
        key = osp.normpath(entry)
        if key in seen:
            first, first_line = seen[key]
            same = (
                repr(entry) if first == entry else f'{first!r} and {entry!r}')
            raise InvalidInputError(
                f'{what} {path!r} lists {same} (one image) twice, on lines '
                f'{first_line} and {lineno}; it would count twice in '
                'training and evaluation. Remove one of the lines.')
        seen[key] = (entry, lineno)
        entries.append(entry)
    if not entries:
        raise InvalidInputError(f'{what} {path!r} lists no images; '
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


def bounded_lines(f: IO,
                  path: str,
                  what: str,
                  limit: Optional[int] = None,
                  how_to_raise: str = '') -> Iterator:
    """Yield the lines of an open file, each read with a bounded
    ``readline``.

    A line longer than ``limit`` is refused as soon as its first
    ``limit + 1`` bytes (characters, for a text file) are read: the rest is
    never read into memory. Iterating over a file (``for line in f``) would
    read a line padded to gigabytes whole.

    Args:
        f (IO): The file, binary or text.
        path (str): Its path, for messages.
        what (str): Its role in messages, e.g. ``'Split file'``.
        limit (int, optional): Longest line, line ending included.
            Defaults to :data:`MAX_LINE_LENGTH` (read at each call).
        how_to_raise (str): How to raise the limit, for the message.
            Defaults to naming :data:`MAX_LINE_LENGTH`.

    Yields:
        bytes | str: The lines, with their line endings.

    Raises:
        InvalidInputError: Naming the file, the line and the limit.
    """
    limit = MAX_LINE_LENGTH if limit is None else limit
    readline, size = f.readline, limit + 1
    lineno = 0
    while True:
        line = readline(size)
        if not line:
            return
        lineno += 1
        if len(line) > limit:
            raise line_too_long(path, what, lineno, limit,
                                isinstance(line, bytes), how_to_raise)
        yield line


def line_too_long(path: str,
                  what: str,
                  lineno: int,
                  limit: int,
                  in_bytes: bool = True,
                  how_to_raise: str = '') -> InvalidInputError:
    """The error for a line (or CSV row) longer than ``limit``."""
    unit = 'bytes' if in_bytes else 'characters'
    how_to_raise = how_to_raise or (
        'set sarb_mm.datasets.utils.MAX_LINE_LENGTH to a larger value '
        'before building the dataset')
    return InvalidInputError(
        f'{what} {path!r}, line {lineno} is longer than {limit:,} {unit}, '
        'the limit of one line (it was not read further). The lines of this '
        'file are expected to be short, so it is probably corrupt or the '
        f'wrong file. If the line is genuine, {how_to_raise}.')


def read_text_lines(path: str, what: str) -> Iterator[Tuple[int, str]]:
    """Yield ``(line number, line)`` of a UTF-8 text file, line endings
    removed, read with :func:`bounded_lines`.

    A byte order mark is accepted. Lines end as in ``str.splitlines``
    (``\\n``, ``\\r\\n``, ``\\r`` and the other Unicode line breaks), so
    the lines and their numbers are those of the whole text split at once.

    Raises:
        InvalidInputError: A line longer than :data:`MAX_LINE_LENGTH`
            bytes, or bytes that are not UTF-8 (naming the byte offset in
            the file and the line).
    """
    lineno, offset = 0, 0
    with open(path, 'rb') as f:
        for raw in bounded_lines(f, path, what):
            start = 0
            if not offset and raw.startswith(b'\xef\xbb\xbf'):
                start = 3
            try:
                text = raw[start:].decode('utf-8')
            except UnicodeDecodeError as e:
                raise InvalidInputError(
                    f'{what} {path!r} is not UTF-8 text (byte '
                    f'{offset + start + e.start} is '
                    f'{raw[start + e.start:start + e.start + 1]!r}), on line '
                    f'{lineno + 1}; it may be in another encoding or not a '
                    'text file. Re-save it as UTF-8.') from None
            offset += len(raw)
            # Only "\n" ends a line read by readline; the other line breaks
            # of str.splitlines split it further.
            for line in text.splitlines():
                lineno += 1
                yield lineno, line


def _layout_hint(layout: str) -> str:
    return ('Expected dataset layout (paths are relative to `data_root`):\n' +
            layout.rstrip('\n'))
