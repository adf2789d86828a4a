"""Editing one function of a Python source file, by parsing it.

A target names a function by its qualified name inside a module: ``"Mul.backward"`` is the
method ``backward`` of the class ``Mul``; ``"unbroadcast"`` a module-level function. The
functions here find it with :mod:`ast` (its line range is exact, whatever the formatting)
and edit the text line by line, so that everything else in the file stays byte for byte:

- ``stub_body`` keeps the ``def`` line(s) and the docstring and replaces the rest of the
  body with ``raise NotImplementedError(message)`` (the student edition);
- ``function_text`` returns a function's whole text (decorators to last line), and
  ``replace_function`` puts such a text in place of the same function of another file (the
  grader splices a student's function into the reference).

Comments inside a body go with it: a stub keeps nothing of the solution.
"""

from __future__ import annotations

import ast
import threading

# CPython 3.11's parser checks its recursion depth with state shared between threads, so two
# threads parsing at once can fail with "AST constructor recursion depth mismatch"; the
# grader parses from several threads, so parsing takes turns.
_PARSE_LOCK = threading.Lock()


class SourceEditError(ValueError):
    """A target that is not in the file, or a file that does not parse."""


def _find(tree: ast.Module, qualname: str, where: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    """The ``def`` node of ``qualname`` (``"Class.method"`` or ``"function"``) in ``tree``."""
    scope: ast.AST = tree
    parts = qualname.split(".")
    for depth, name in enumerate(parts):
        last = depth == len(parts) - 1
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef) if last else (ast.ClassDef,)
        found = [node for node in getattr(scope, "body", []) if isinstance(node, kinds) and node.name == name]
        if not found:
            kind = "function" if last else "class"
            raise SourceEditError(f"{where}: no {kind} {name!r} (looking for {qualname!r})")
        scope = found[-1]  # a later definition wins, as when Python runs the file
    return scope


def _parse(text: str, where: str) -> ast.Module:
    try:
        with _PARSE_LOCK:
            return ast.parse(text)
    except SyntaxError as exc:
        raise SourceEditError(f"{where}: does not parse ({exc.msg}, line {exc.lineno})") from None


def _docstring_end(node) -> int | None:
    """The last line of ``node``'s docstring, or None when it has none."""
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno
    return None


def stub_body(text: str, qualname: str, message: str, where: str = "<source>") -> str:
    """``text`` with the body of ``qualname`` replaced by ``raise NotImplementedError(message)``.

    The signature and the docstring stay; every line after the docstring (or after the
    ``def`` line(s), without one) up to the function's last line goes.
    """
    node = _find(_parse(text, where), qualname, where)
    if node.body[0].lineno == node.lineno:
        raise SourceEditError(f"{where}: {qualname!r} has its body on the def line; it cannot be stubbed")
    lines = text.splitlines(keepends=True)
    indent = " " * node.body[0].col_offset
    keep_until = _docstring_end(node) or node.body[0].lineno - 1  # 1-based, inclusive
    stub = f"{indent}raise NotImplementedError({message!r})\n"
    return "".join(lines[:keep_until]) + stub + "".join(lines[node.end_lineno:])


def function_text(text: str, qualname: str, where: str = "<source>") -> str:
    """The text of ``qualname``, from its first decorator to its last line."""
    node = _find(_parse(text, where), qualname, where)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return "".join(text.splitlines(keepends=True)[start - 1:node.end_lineno])


def replace_function(text: str, qualname: str, new_function: str, where: str = "<source>") -> str:
    """``text`` with ``qualname`` (decorators included) replaced by ``new_function``'s text."""
    node = _find(_parse(text, where), qualname, where)
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.splitlines(keepends=True)
    if not new_function.endswith("\n"):
        new_function += "\n"
    result = "".join(lines[:start - 1]) + new_function + "".join(lines[node.end_lineno:])
    _parse(result, where)
    return result


def body_statements(text: str, qualname: str, where: str = "<source>") -> list[str]:
    """The source lines of ``qualname``'s body after its docstring, stripped, comments
    included: what a stub must not leave anywhere in the edition."""
    node = _find(_parse(text, where), qualname, where)
    first = (_docstring_end(node) or node.body[0].lineno - 1) + 1
    lines = text.splitlines()[first - 1:node.end_lineno]
    return [line.strip() for line in lines if line.strip()]
