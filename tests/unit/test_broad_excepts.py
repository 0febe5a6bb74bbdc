"""No exception is swallowed silently in production code.

A handler for ``Exception``/``BaseException`` (or a bare ``except:``) hides whatever went wrong,
so each one must either re-raise, or log (``log.exception/error/warning``, the logger of its
module), or hand the exception on (to a future, a callback or a stored failure: the handler's
body uses the bound exception), or carry a comment on its ``except`` line saying why silence is
right there. New broad handlers without one fail here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from tests.paths import REPO_ROOT

PACKAGES = ("smsflow", "pipeline", "connectors", "api", "schemas")
_LOGGING = {"exception", "error", "warning", "critical"}


def _broad(handler: ast.ExceptHandler) -> bool:
    kind = handler.type
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind] if kind else []
    return kind is None or any(isinstance(n, ast.Name) and n.id in ("Exception",
                                                                    "BaseException")
                               for n in names)


def _accounted(handler: ast.ExceptHandler, line: str) -> bool:
    if "#" in line:
        return True  # the reason is written on the except line
    for node in ast.walk(ast.Module(body=handler.body, type_ignores=[])):
        if isinstance(node, ast.Raise):
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in _LOGGING):
            return True
        if handler.name and isinstance(node, ast.Name) and node.id == handler.name:
            return True  # the exception is handed on (set_exception, a stored failure, ...)
    return False


def _handlers() -> Iterator[tuple[str, int, ast.ExceptHandler, str]]:
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ExceptHandler) and _broad(node):
                    yield (str(path.relative_to(REPO_ROOT)), node.lineno, node,
                           lines[node.lineno - 1])


def test_every_broad_handler_reraises_logs_hands_on_or_says_why() -> None:
    silent = [f"{path}:{line}" for path, line, handler, text in _handlers()
              if not _accounted(handler, text)]
    assert not silent, f"broad except that swallows silently: {silent}"


def test_the_scan_sees_the_known_handlers() -> None:
    found = {path for path, _line, _handler, _text in _handlers()}
    assert "pipeline/outputs.py" in found and "connectors/sender/service.py" in found


def test_the_rule_itself() -> None:
    def handler(source: str) -> tuple[ast.ExceptHandler, str]:
        tree = ast.parse(source)
        node = next(n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler))
        return node, source.splitlines()[node.lineno - 1]

    assert not _accounted(*handler("try:\n    x()\nexcept Exception:\n    pass\n"))
    assert _accounted(*handler("try:\n    x()\nexcept Exception:  # why\n    pass\n"))
    assert _accounted(*handler("try:\n    x()\nexcept Exception:\n    log.exception('x')\n"))
    assert _accounted(*handler("try:\n    x()\nexcept Exception as e:\n    f.set_exception(e)\n"))
    assert _accounted(*handler("try:\n    x()\nexcept BaseException:\n    raise\n"))
    assert _broad(handler("try:\n    x()\nexcept:\n    pass\n")[0])
    assert not _broad(handler("try:\n    x()\nexcept ValueError:\n    pass\n")[0])
