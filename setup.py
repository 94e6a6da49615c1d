"""Installable ``sarb_mm`` plugin (SARB for OpenMMLab)."""
import os
import subprocess
import sys

from setuptools import find_packages, setup


def _mmcv_installed() -> bool:
    """Whether the target environment already has an ``mmcv`` module.

    pip may run this file in an isolated build environment that hides the
    installed packages, so ask a clean interpreter of the same environment.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHONPATH', 'PYTHONNOUSERSITE', 'PYTHONHOME')
    }
    probe = ('import importlib.util, sys; '
             "sys.exit(importlib.util.find_spec('mmcv') is None)")
    return subprocess.run([sys.executable, '-c', probe],
                          env=env).returncode == 0


def _requirements():
    requires = [
        'numpy', 'torch', 'torchvision', 'mmengine>=0.10.7,<0.11',
        'mmpretrain>=1.2.0,<1.3', 'pycocotools', 'Pillow'
    ]
    # A user's full mmcv build (compiled ops) must never be replaced by the
    # lite wheel, so only ask for mmcv-lite when no mmcv is importable.
    if not _mmcv_installed():
        requires.append('mmcv-lite>=2.0.0rc4,<2.3')
    return requires


def _version():
    scope = {}
    with open('sarb_mm/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='sarb_mm',
    version=_version(),
    description='SARB (Semantic-Aware Representation Blending, AAAI 2022) '
    'for multi-label recognition with partial labels, as an '
    'mmpretrain / mmengine plugin',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['sarb_mm', 'sarb_mm.*']),
    python_requires='>=3.8',
    install_requires=_requirements(),
    extras_require={'tests': ['pytest', 'scikit-learn']},
    license='Apache-2.0',
)
