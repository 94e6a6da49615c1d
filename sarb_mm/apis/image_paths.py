"""The image files that inference inputs (files, folders, globs) name.

Folders and ``**`` patterns are walked without following symbolic links to
directories (a link loop would never end, and a link to ``.`` would list
every image again and again), every image is listed once (by its real
path), and a walk gives up with a clear error after
:data:`MAX_WALKED_ENTRIES` directory entries instead of growing without
bound.
"""
import fnmatch
import glob
import os
import os.path as osp
from functools import lru_cache
from typing import Iterator, List, Sequence, Tuple

from sarb_mm.utils.errors import InvalidInputError

# What a folder or glob yields (lower case; mmpretrain's ImageNet list plus
# the formats Pillow and OpenCV both decode).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                    '.tiff', '.webp')
# Directory entries one folder / pattern may visit: far more than any
# image folder a single inference call should read, small enough to stop a
# runaway walk (e.g. a pattern rooted at /) in seconds.
MAX_WALKED_ENTRIES = 2_000_000


def expand_image_path(path: str,
                      max_entries: int = MAX_WALKED_ENTRIES) -> List[str]:
    """A file stays as given (missing files are reported when read); a
    folder gives its images recursively, a glob pattern its matches (image
    files, and the images of matched folders), both sorted and each image
    once.

    Raises:
        InvalidInputError: A folder without images, a pattern matching none,
            or a walk of more than ``max_entries`` entries.
    """
    if osp.isdir(path):
        found = _unique_files(_images_under(path, _Budget(path, max_entries)))
        if not found:
            raise InvalidInputError(
                f'Folder {path} holds no images (searched recursively for '
                f'{", ".join(IMAGE_EXTENSIONS)}; links to folders are not '
                'followed).')
        return found
    if osp.lexists(path) or not glob.has_magic(path):
        return [path]
    budget = _Budget(path, max_entries)
    found = []
    for match, is_dir in sorted(_glob(path, budget)):
        if is_dir:
            found += _images_under(match, budget)
        elif match.lower().endswith(IMAGE_EXTENSIONS):
            found.append(match)
    found = _unique_files(found)
    if not found:
        raise InvalidInputError(
            f'Pattern {path} matches no image file (quote it so that the '
            'shell passes it on, and check the folder and extension).')
    return found


def expand_image_paths(paths: Sequence[str]) -> List[str]:
    """:func:`expand_image_path` of each, in order; inputs that do not
    exist are one error listing them (before anything is processed).

    Raises:
        InvalidInputError: Missing inputs, or what
            :func:`expand_image_path` refuses.
    """
    found = [
        image for path in paths
        for image in expand_image_path(os.fspath(path))
    ]
    # A link to nothing is missing too.
    missing = [path for path in found if not osp.exists(path)]
    if missing:
        shown = ', '.join(missing[:5]) + (f' and {len(missing) - 5} more'
                                          if len(missing) > 5 else '')
        raise InvalidInputError(
            f'{len(missing)} input(s) do not exist: {shown}. Check the '
            'paths (nothing was processed).')
    return found


class _Budget:
    """Counts walked entries; raises once there are too many."""

    def __init__(self, what: str, limit: int) -> None:
        self.what, self.limit, self.used = what, limit, 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise InvalidInputError(
                f'{self.what}: gave up after {self.limit} directory entries; '
                'give a narrower folder or pattern (e.g. without **), or '
                'list the images in smaller groups.')


def _walk(top: str, budget: _Budget) -> Iterator[Tuple[str, list, list]]:
    """``os.walk`` that follows no link to a directory, in sorted order."""
    for root, dirs, files in os.walk(top, followlinks=False):
        budget.spend(len(dirs) + len(files))
        dirs.sort()
        yield root, dirs, sorted(files)


def _images_under(folder: str, budget: _Budget) -> List[str]:
    found = []
    for root, _, files in _walk(folder, budget):
        found += [
            osp.join(root, name) for name in files
            if name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return found


def _split_pattern(pattern: str) -> Tuple[str, Tuple[str, ...]]:
    """The literal folder a pattern starts from, and its other parts."""
    parts = pattern.replace(os.sep, '/').split('/')
    first_magic = next(i for i, p in enumerate(parts) if glob.has_magic(p))
    base = '/'.join(parts[:first_magic])
    if pattern.startswith('/') and not base:
        base = '/'
    return base, tuple(p for p in parts[first_magic:] if p)


def _glob(pattern: str, budget: _Budget) -> Iterator[Tuple[str, bool]]:
    """``glob.glob(pattern, recursive=True)`` without following links to
    directories: yields ``(path, is_dir)``. As in glob, names starting with
    ``.`` match only a part that starts with ``.``."""
    base, parts = _split_pattern(pattern)
    top = base or os.curdir
    if not osp.isdir(top):
        return
    max_depth = None if '**' in parts else len(parts)
    if _matches(parts, ()):  # 'folder/**' names the folder itself too
        yield osp.join(base, ''), True
    for root, dirs, files in _walk(top, budget):
        rel = osp.relpath(root, top)
        rel_parts = () if rel == os.curdir else tuple(rel.split(os.sep))
        for names, is_dir in ((dirs, True), (files, False)):
            for name in names:
                if _matches(parts, rel_parts + (name, )):
                    path = osp.join(base, *rel_parts, name)
                    # A link to a folder is listed, not entered.
                    yield path, is_dir and not osp.islink(path)
        if max_depth is not None and len(rel_parts) + 1 >= max_depth:
            dirs[:] = []


@lru_cache(maxsize=4096)
def _matches(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Whether path ``parts`` match pattern ``parts``; ``**`` is any
    number (also none) of non-hidden folders."""
    if not pattern:
        return not parts
    head = pattern[0]
    if head == '**':
        if _matches(pattern[1:], parts):
            return True
        return bool(parts) and not parts[0].startswith('.') and _matches(
            pattern, parts[1:])
    if not parts:
        return False
    if parts[0].startswith('.') and not head.startswith('.'):
        return False
    return fnmatch.fnmatch(parts[0], head) and _matches(pattern[1:], parts[1:])


def _unique_files(paths: List[str]) -> List[str]:
    """``paths`` in order, without later names of a file already listed
    (through a link or another spelling)."""
    seen, unique = set(), []
    for path in paths:
        key = osp.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def drawn_file_names(items: Sequence) -> List[str]:
    """The file name (``<stem>.png``, made unique) each inference input is
    drawn to under ``show_dir``; arrays are ``array_<i>.png``."""
    used, names = set(), []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            name = osp.splitext(osp.basename(os.fspath(item)))[0]
        else:
            name = f'array_{i}'
        candidate, n = name, 1
        while candidate in used:
            candidate, n = f'{name}_{n}', n + 1
        used.add(candidate)
        names.append(candidate + '.png')
    return names
