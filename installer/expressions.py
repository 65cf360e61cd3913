"""Tiny, safe boolean expressions over the ClusterConfiguration spec.

The component table says when a component is switched on with expressions
such as ``common.redis.enabled or common.redis.enableHA`` or
``multicluster.clusterRole != 'none'``.  They are parsed with :mod:`ast` and
only names, attribute paths, ``and``/``or``/``not``, ``==``/``!=`` and
constants are allowed; a missing path reads as ``None``.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Any


class ExpressionError(ValueError):
    """An expression in the component table is not allowed or does not parse."""


def lookup(spec: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``spec``, or None if any part is missing."""
    node: Any = spec
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _path(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_path(node.value)}.{node.attr}"
    raise ExpressionError(f"not a spec path: {ast.unparse(node)}")


@lru_cache(maxsize=256)
def compile_expression(text: str) -> ast.expr:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {text!r}: {exc.msg}") from exc
    _check(tree, text)
    return tree


def _check(node: ast.expr, text: str) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, text)
    elif isinstance(node, ast.Compare):
        if not all(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            raise ExpressionError(f"only == and != comparisons are allowed in {text!r}")
        for part in (node.left, *node.comparators):
            _check(part, text)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, str | bool | int | float | type(None)):
            raise ExpressionError(f"constant not allowed in {text!r}")
    elif isinstance(node, ast.Name | ast.Attribute):
        _path(node)
    else:
        raise ExpressionError(f"{type(node).__name__} is not allowed in {text!r}")


def _eval(node: ast.expr, spec: dict[str, Any]) -> Any:
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, spec) for v in node.values)
        return any(values) if isinstance(node.op, ast.Or) else all(values)
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, spec)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, spec)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, spec)
            if (left == right) != isinstance(op, ast.Eq):
                return False
            left = right
        return True
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[node.id]
    return lookup(spec, _path(node))


def evaluate(text: str | bool, spec: dict[str, Any]) -> bool:
    """Evaluate a switch expression (or a plain boolean) against ``spec``."""
    if isinstance(text, bool):
        return text
    return bool(_eval(compile_expression(text), spec))
