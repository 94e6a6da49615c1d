"""Versions of optional packages that decide whether mmpretrain imports.

Kept free of heavy imports: ``sarb_mm/__init__.py`` runs it before anything
imports mmpretrain.
"""
import importlib.metadata
from typing import Optional

# mmpretrain 1.2 imports its multimodal models (CLIP among them) whenever
# transformers is installed. transformers >= 4.52 no longer exports what
# they import, so `import mmpretrain.models` itself fails; < 4.43 pins
# numpy < 2.
TRANSFORMERS_REQUIREMENT = 'transformers>=4.43,<4.52'
TRANSFORMERS_RANGE = ((4, 43), (4, 52))
INSTALL_HINT = f"pip install '{TRANSFORMERS_REQUIREMENT}'"


def installed_version(package: str) -> Optional[str]:
    """The installed version string of ``package``, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _major_minor(text: str) -> tuple:
    parts = []
    for part in text.split('.')[:2]:
        digits = ''.join(c for c in part if c.isdigit()) or '0'
        parts.append(int(digits))
    return tuple(parts)


def transformers_problem(found: Optional[str]) -> Optional[str]:
    """Why transformers ``found`` does not work with mmpretrain 1.2's CLIP,
    or None (also None when it is not installed)."""
    if found is None:
        return None
    low, high = TRANSFORMERS_RANGE
    if low <= _major_minor(found) < high:
        return None
    return (f'transformers {found} is installed, but mmpretrain 1.2 (whose '
            'multimodal models, CLIP among them, import it) works with '
            f'{TRANSFORMERS_REQUIREMENT} only. Run: {INSTALL_HINT} (or pip '
            'uninstall transformers if you do not make CLIP embeddings).')


def check_mmpretrain_importable() -> None:
    """Refuse, with the fix, a transformers that breaks mmpretrain's import.

    Only versions from 4.52 on break ``import mmpretrain.models``; older
    ones import (CLIP embeddings check the full range themselves).
    """
    found = installed_version('transformers')
    if found is not None and _major_minor(found) >= TRANSFORMERS_RANGE[1]:
        raise ImportError(transformers_problem(found))
