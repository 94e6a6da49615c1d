"""A transformers that breaks mmpretrain's import is named, with the fix."""
import importlib.metadata

import pytest

from sarb_mm.dependencies import (check_mmpretrain_importable,
                                  transformers_problem)


def fake_version(monkeypatch, found):

    def version(name):
        if name != 'transformers' or found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    monkeypatch.setattr(importlib.metadata, 'version', version)


@pytest.mark.parametrize('found', ['4.52.4', '4.57.6', '5.24.0'])
def test_versions_that_break_mmpretrain_are_refused(monkeypatch, found):
    fake_version(monkeypatch, found)
    with pytest.raises(ImportError) as info:
        check_mmpretrain_importable()
    message = str(info.value)
    assert f'transformers {found} is installed' in message
    assert "pip install 'transformers>=4.43,<4.52'" in message


@pytest.mark.parametrize('found', ['4.51.3', '4.46.3', '4.30.2', None])
def test_versions_mmpretrain_imports_with_pass(monkeypatch, found):
    fake_version(monkeypatch, found)
    check_mmpretrain_importable()


@pytest.mark.parametrize('found, ok', [('4.43.0', True), ('4.51.3', True),
                                       ('4.42.4', False), ('4.52.0', False),
                                       ('4.50.0.dev0', True), (None, True)])
def test_clip_range(found, ok):
    assert (transformers_problem(found) is None) == ok
