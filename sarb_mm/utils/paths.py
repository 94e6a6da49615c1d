"""Checks of the files a tool reads and writes, made before the work.

Files come from other people: a path may be a symbolic link loop, a FIFO
or a device, and an output path may be one of the inputs. Every tool
checks its inputs and outputs with these functions first, so that bad
paths are reported by name before hours of work, and writes its results
through :func:`atomic_path` / :func:`atomic_open`, so that a full disk or
a crash leaves the previous file (or nothing), never a truncated result.
"""
import contextlib
import errno
import os
import os.path as osp
import stat
import tempfile
from typing import Iterable, Iterator, Optional, Sequence

from .errors import InvalidInputError, MissingInputFileError

_SPECIAL_KINDS = (
    (stat.S_ISDIR, 'a directory'),
    (stat.S_ISFIFO, 'a FIFO (named pipe), whose reader blocks until someone '
     'writes'),
    (stat.S_ISCHR, 'a character device (such as /dev/zero), which may never '
     'end'),
    (stat.S_ISBLK, 'a block device'),
    (stat.S_ISSOCK, 'a socket'),
)


def path_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as a regular file, or None if it can.

    The wording tells a missing file from a broken or looping symbolic
    link, a directory, a FIFO, a device and a permission problem (all of
    which ``os.path.exists`` / ``isfile`` report alike as "no file").

    Returns:
        str | None: A phrase to put after the path, e.g. ``'does not
        exist'`` or ``'is a symbolic link loop ...'``.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if osp.lexists(path):
            return ('is a symbolic link to '
                    f'{_readlink(path)!r}, which does not exist (a broken '
                    'link)')
        return 'does not exist'
    except OSError as err:
        if err.errno == errno.ELOOP:
            return ('is a symbolic link loop (following its links leads '
                    'back to a link already followed)')
        if err.errno == errno.ENOTDIR:
            return 'does not exist (a part of its path is a file, not a ' \
                   'folder)'
        if err.errno in (errno.EACCES, errno.EPERM):
            return 'cannot be accessed (permission denied on its folder)'
        if err.errno == errno.ENAMETOOLONG:
            return 'is too long a path name'
        return f'cannot be accessed ({err.strerror or err})'
    except ValueError as err:  # e.g. a NUL character in the name
        return f'is not a usable path ({err})'
    if not stat.S_ISREG(info.st_mode):
        kind = next(
            (name for test, name in _SPECIAL_KINDS if test(info.st_mode)),
            'a special file')
        return f'is {kind}, not a regular file'
    if not os.access(path, os.R_OK):
        return 'is not readable (permission denied)'
    return None


def check_input_file(path: str, what: str, hint: str = '') -> str:
    """Return ``path`` if it is a readable regular file (or a link to one).

    Args:
        path (str): The file.
        what (str): Its role, e.g. ``'Predictions file'``.
        hint (str): What to give instead, appended to the message.

    Raises:
        MissingInputFileError: ``path`` does not exist.
        InvalidInputError: Anything else that is not a readable file.
    """
    problem = path_problem(os.fspath(path))
    if problem is None:
        return path
    message = f'{what} {path} {problem}.' + (f' {hint}' if hint else '')
    if problem == 'does not exist':
        raise MissingInputFileError(message)
    raise InvalidInputError(message)


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (links and ``..`` resolved; for
    paths that do not exist yet, by their resolved names)."""
    try:
        return osp.samefile(a, b)
    except (OSError, ValueError):
        return osp.realpath(a) == osp.realpath(b)


def refuse_inputs(output: str, inputs: Iterable[str], flag: str) -> None:
    """Raise if ``output`` names one of ``inputs`` (after resolving links).

    Raises:
        InvalidInputError: Naming the output and the input it would replace.
    """
    for path in inputs:
        if path is not None and same_file(output, os.fspath(path)):
            raise InvalidInputError(
                f'{flag} {output} would overwrite the input {path}, which '
                'this tool reads; choose another output path.')


def check_output_file(path: str,
                      flag: str,
                      suffixes: Optional[Sequence[str]] = None,
                      inputs: Iterable[str] = (),
                      hint: Optional[str] = None,
                      create_parent: bool = True) -> str:
    """Check an output file before the work that produces it.

    The path must have one of ``suffixes`` (case-insensitive), must not be
    a directory or a special file (FIFO, device, socket), must not be one of
    ``inputs``, and its folder must be (or be creatable as) a writable
    directory.

    Args:
        path (str): The output file.
        flag (str): The option or argument that named it, for messages.
        suffixes (Sequence[str], optional): Accepted extensions with the
            dot, e.g. ``('.json', '.csv')``.
        inputs (Iterable[str]): Files the tool reads.
        hint (str, optional): Message for a wrong extension.
        create_parent (bool): Create the missing parent folders.

    Returns:
        str: ``path``.

    Raises:
        InvalidInputError: Naming the path and the fix.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f'{flag}: expected a file path, got '
                                f'{path!r}.')
    path = os.fspath(path)
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise InvalidInputError(f'{flag} {path}: ' + (
            hint or f'use a file name ending in {" or ".join(suffixes)}.'))
    if osp.lexists(path):
        problem = path_problem(path)
        if problem is not None and 'permission' not in problem:
            if 'directory' in problem:
                raise InvalidInputError(
                    f'{flag} {path} is a directory; give a file name inside '
                    'it.')
            raise InvalidInputError(
                f'{flag} {path} {problem}; give the path of a regular file '
                'to write.')
    refuse_inputs(path, inputs, flag)
    folder = osp.dirname(osp.abspath(path))
    _check_writable_dir(folder, f'{flag} {path}: its folder {folder}',
                        create_parent)
    if osp.exists(path) and not os.access(path, os.W_OK):
        raise InvalidInputError(f'{flag} {path} exists and is not writable; '
                                'choose another path.')
    return path


def check_output_dir(path: str, flag: str, create: bool = True) -> str:
    """Check (and create) an output folder before the work.

    Raises:
        InvalidInputError: The path is a file or special file, a link loop,
            or cannot be created or written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f'{flag}: expected a folder path, got '
                                f'{path!r}.')
    path = os.fspath(path)
    _check_writable_dir(path, f'{flag} {path}', create)
    return path


def _check_writable_dir(folder: str, where: str, create: bool) -> None:
    if osp.lexists(folder) and not osp.isdir(folder):
        problem = path_problem(folder) or 'is a file'
        raise InvalidInputError(f'{where} {problem}, not a folder; choose '
                                'another path.')
    if not osp.isdir(folder):
        if not create:
            raise InvalidInputError(f'{where} does not exist; create it '
                                    'first.')
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise InvalidInputError(
                f'{where}: cannot create the folder {folder} '
                f'({err.strerror or err}); choose another path.') from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f'{where}: the folder {folder} is not '
                                'writable; choose another path.')


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success rename it to
    ``path``, on any error remove it.

    For writers that take a file name (``np.savez``, ``savefig``,
    ``torch.save``): the temporary name keeps the extension, which such
    writers read the format from. A reader never sees a half-written
    ``path``: it has the old file until the rename, then the whole new one.

    Raises:
        InvalidInputError: An ``OSError`` while writing (e.g. a full disk),
            naming ``path``; the temporary file is removed.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    base = osp.basename(path)
    stem, suffix = osp.splitext(base)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{stem}.', suffix=f'.tmp{suffix}', dir=folder)
    os.close(fd)
    try:
        yield tmp
        _keep_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            kept = ('the previous file is unchanged'
                    if osp.exists(path) else 'no partial file is left')
            raise InvalidInputError(
                f'Cannot write {path} ({err.strerror or err}); {kept}. Free '
                'space or choose another path.') from None
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs):
    """``open(path, mode)`` that replaces ``path`` only once the file is
    completely written (see :func:`atomic_path`)."""
    if not mode.startswith('w'):
        raise ValueError(f'atomic_open writes whole files, got mode {mode!r}')
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def _keep_mode(tmp: str, path: str) -> None:
    """Give ``tmp`` the mode ``path`` has, or a new file would get."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        # mkstemp creates 0600; a normally written file gets 0666 minus
        # the umask (read by setting it, then restoring it at once).
        umask = os.umask(0o022)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return '?'
