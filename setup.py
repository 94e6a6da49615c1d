"""Installable ``sarb_mm`` plugin (SARB for OpenMMLab)."""
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
from setuptools import find_packages, setup

REPO = osp.dirname(osp.abspath(__file__))
# What `mim train/test sarb_mm` look for under sarb_mm/.mim.
MIM_FILES = ('tools', 'configs', 'model-index.yml')


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


def parse_requirements(fname: str) -> list:
    """The requirement lines of a requirements/ file.

    Comments and blank lines are skipped and ``-r other.txt`` lines are
    followed (relative to the including file).
    """
    requires = []
    with open(osp.join(REPO, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                included = osp.join(osp.dirname(fname), line[3:].strip())
                requires += parse_requirements(included)
            else:
                requires.append(line)
    return requires


def _requirements() -> list:
    requires = parse_requirements('requirements/runtime.txt')
    # A user's full mmcv build (compiled ops) must never be replaced by the
    # lite wheel, so only ask for mmcv-lite when no mmcv is importable.
    if not _mmcv_installed():
        requires.append('mmcv-lite>=2.0.0rc4,<2.3')
    return requires


def _version() -> str:
    scope = {}
    with open(osp.join(REPO, 'sarb_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension() -> None:
    """Put tools/, configs/ and model-index.yml under ``sarb_mm/.mim``.

    ``mim train sarb_mm CONFIG`` runs ``sarb_mm/.mim/tools/train.py`` of the
    installed package and finds configs by name under
    ``sarb_mm/.mim/configs``, as for mmpretrain. Editable installs get
    symbolic links to the originals (copies on Windows), wheels and source
    archives get copies.
    """
    command = set(sys.argv[1:])
    if command & {'develop', 'editable_wheel'}:
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif command & {'sdist', 'bdist_wheel', 'build', 'build_py'}:
        mode = 'copy'
    else:
        return

    mim_path = osp.join(REPO, 'sarb_mm', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src_path = osp.join(REPO, name)
        tar_path = osp.join(mim_path, name)
        if not osp.exists(src_path):
            continue  # a source archive carries sarb_mm/.mim already
        if osp.islink(tar_path) or osp.isfile(tar_path):
            os.remove(tar_path)
        elif osp.isdir(tar_path):
            shutil.rmtree(tar_path)
        if mode == 'symlink':
            os.symlink(osp.relpath(src_path, mim_path), tar_path)
        elif osp.isdir(src_path):
            shutil.copytree(
                src_path,
                tar_path,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src_path, tar_path)


if __name__ == '__main__':
    add_mim_extension()
    tests_require = parse_requirements('requirements/tests.txt')
    optional_require = parse_requirements('requirements/optional.txt')
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        long_description = f.read()
    setup(
        name='sarb_mm',
        version=_version(),
        description='SARB (Semantic-Aware Representation Blending, AAAI '
        '2022) for multi-label recognition with partial labels, as an '
        'mmpretrain / mmengine plugin',
        long_description=long_description,
        long_description_content_type='text/markdown',
        keywords='computer vision, multi-label classification, partial '
        'labels, mmpretrain, openmmlab',
        packages=find_packages(include=['sarb_mm', 'sarb_mm.*']),
        # sarb_mm/.mim (listed in MANIFEST.in) goes into wheels.
        include_package_data=True,
        classifiers=[
            'Development Status :: 4 - Beta',
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        python_requires='>=3.8',
        install_requires=_requirements(),
        extras_require={
            'tests': tests_require,
            'optional': optional_require,
            'all': sorted(set(tests_require + optional_require)),
        },
        license='Apache-2.0',
        zip_safe=False,
    )
