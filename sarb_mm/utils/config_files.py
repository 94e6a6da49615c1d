"""Reading config files: which of them run code, and reading data-only.

A ``.py`` config is a Python program: mmengine executes it, so it must come
from someone you trust, like any script. YAML configs look like data, but
mmengine reads them with PyYAML's full loader, whose ``!!python/...`` tags
call functions (``!!python/object/apply:os.system``): such tags are refused
here before mmengine sees the file. The configs mmengine dumps into work
dirs are read by :func:`load_dumped_config` as literals only, so tables
collected from other people's work dirs never run their code.
"""
import ast
import os.path as osp
from typing import Any, Optional

import yaml
from mmengine.config import Config

from .errors import InvalidInputError
from .paths import check_input_file

YAML_SUFFIXES = ('.yaml', '.yml')


def use_safe_yaml_loader() -> None:
    """Make mmengine read YAML (configs, ``mmengine.load``) with PyYAML's
    safe loader, which builds no Python objects.

    The text check of :func:`check_yaml_config` alone is not enough:
    mmengine first substitutes ``{{$ENV:default}}`` placeholders with a
    regular expression taken from the file, which can write a
    ``!!python`` tag that the checked text did not show.
    """
    from mmengine.fileio.handlers import yaml_handler
    yaml_handler.Loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


use_safe_yaml_loader()


def check_yaml_config(path: str, _seen: Optional[set] = None) -> None:
    """Refuse a YAML config (or YAML ``_base_``) that is not plain data.

    Raises:
        InvalidInputError: Naming the file and line of the first tag that
            would construct a Python object.
    """
    seen = set() if _seen is None else _seen
    real = osp.realpath(path)
    if real in seen or not osp.isfile(path):
        return  # mmengine reports missing bases itself
    seen.add(real)
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        where = f', line {mark.line + 1}' if mark is not None else ''
        raise InvalidInputError(
            f'Config {path}{where}: {err.problem}. A YAML tag such as '
            '!!python/object makes the YAML reader call Python code, so this '
            'config is refused; write the value as plain data (or as a .py '
            'config, if you trust its author).') from None
    except yaml.YAMLError as err:
        raise InvalidInputError(f'Config {path} is not valid YAML '
                                f'({err}).') from None
    bases = data.get('_base_') if isinstance(data, dict) else None
    for base in [bases] if isinstance(bases, str) else bases or []:
        if not isinstance(base, str):
            continue
        if base.lower().endswith('.py'):
            raise InvalidInputError(
                f'Config {path}: its _base_ {base} is a Python file, which '
                'mmengine executes; a YAML config is read as data only, so '
                'it may build on YAML or JSON bases only.')
        if base.lower().endswith(YAML_SUFFIXES):
            check_yaml_config(osp.join(osp.dirname(path), base), seen)


def load_config_file(path: str) -> Config:
    """``Config.fromfile`` after the checks above (a readable file; YAML
    without code tags)."""
    check_input_file(path, 'Config file')
    if path.lower().endswith(YAML_SUFFIXES):
        check_yaml_config(path)
    try:
        return Config.fromfile(path)
    except yaml.YAMLError as err:
        raise InvalidInputError(
            f'Config {path} (or one of its bases), after mmengine '
            f'substituted its {{{{$VAR:default}}}} placeholders, is not plain '
            f'YAML data ({str(err).splitlines()[0]}).') from None


def load_dumped_config(path: str) -> Config:
    """Read a config that mmengine dumped (``<work_dir>/<name>.py``) as
    data: only assignments of literals, ``dict(...)``, lists, tuples and
    sets are accepted, nothing is executed.

    Raises:
        InvalidInputError: The file holds anything else (it was then not
            written by mmengine's ``Config.dump``), naming file and line.
    """
    check_input_file(path, 'Dumped config')
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        raise InvalidInputError(
            f'Dumped config {path}, line {err.lineno}: not valid Python '
            f'({err.msg}).') from None
    values = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            _not_data(path, node)
        values[node.targets[0].id] = _literal(node.value, path)
    return Config(values, filename=path)


def _literal(node: ast.AST, path: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(e, path) for e in node.elts]
        kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
        return kind(items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {
            _literal(k, path): _literal(v, path)
            for k, v in zip(node.keys, node.values)
        }
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and len(node.args) <= 1
            and all(isinstance(a, ast.Dict) for a in node.args)
            and all(k.arg is not None for k in node.keywords)):
        # mmengine writes dict(a=1) and, for keys that are not names,
        # dict({'.key': 1}).
        value = _literal(node.args[0], path) if node.args else {}
        value.update({k.arg: _literal(k.value, path) for k in node.keywords})
        return value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                     (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, (int, float))):
        return ast.literal_eval(node)
    _not_data(path, node)


def _not_data(path: str, node: ast.AST) -> None:
    raise InvalidInputError(
        f'Dumped config {path}, line {getattr(node, "lineno", "?")}: '
        f'{ast.unparse(node)[:80]!r} is not plain data (mmengine dumps '
        'assignments of literals and dict(...) only); it is not read, since '
        'running it could execute code.')
