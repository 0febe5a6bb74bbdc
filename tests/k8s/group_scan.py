"""The consumer groups a process's code joins or names, read from its source (no Kafka needed).

A process's code is every project module its source folders import, transitively. In it, a
group id is whatever is passed as a ``"group.id"`` client property, as a ``group_id`` argument
(by keyword, or by position to a project function or class whose parameter has that name),
assigned to a variable named ``*group_id``, or the id of a ``faust.App`` (either branch of a
conditional expression; a local variable is followed to its one assignment) (faust joins a group
of that name and owns the topics prefixed ``<id>-``). Each is evaluated to a
:class:`GroupName`: ``settings.app_id`` becomes the app id, an f-string's parameter is
expanded with the literal values its function's callers pass, and anything else unknown ends
the name as a prefix (``f"smsflow-ledger-{uuid.uuid4()}"`` is the prefix ``smsflow-ledger-``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests.k8s.tooling import ROOT

#: The project's top-level packages (the import closure stays inside them).
PACKAGES = ("smsflow", "api", "pipeline", "connectors", "schemas")


@dataclass(frozen=True, order=True)
class GroupName:
    text: str
    prefix: bool  # True: the code appends something unknown (a uuid, an instance id)

    def __str__(self) -> str:
        return f"{self.text}*" if self.prefix else self.text


@dataclass
class Usage:
    groups: dict[GroupName, list[str]] = field(default_factory=dict)  # -> where in the code
    faust_app_ids: set[GroupName] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    """The package a module's relative imports start from (``a/b/c.py`` and
    ``a/b/__init__.py`` alike: ``a.b``)."""
    return ".".join(path.relative_to(ROOT).parts[:-1])


def _imported_modules(path: Path, tree: ast.Module) -> Iterator[str]:
    package = _package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


@cache
def import_closure(folders: tuple[str, ...], exclude: tuple[str, ...] = ()
                   ) -> dict[Path, ast.Module]:
    """Every project module the folders' modules import, transitively (with the folders').
    ``exclude`` (paths from the repository root) names modules a process never runs although
    its code imports them (the API's stores in its submit role): they and what only they
    import are left out."""
    skipped = {ROOT / path for path in exclude}
    pending = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    trees: dict[Path, ast.Module] = {}
    while pending:
        path = pending.pop()
        if path in trees or path in skipped:
            continue
        trees[path] = tree = ast.parse(path.read_text(), filename=str(path))
        for module in _imported_modules(path, tree):
            parts = module.split(".")
            if parts[0] not in PACKAGES:
                continue
            for depth in range(1, len(parts) + 1):  # parent packages run their __init__ too
                found = _module_file(".".join(parts[:depth]))
                if found is not None and found not in trees:
                    pending.append(found)
    return trees


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]


class _Index:
    """Signatures and call sites of the closure's functions and classes, by simple name."""

    def __init__(self, trees: dict[Path, ast.Module]) -> None:
        self.signatures: dict[str, list[list[str]]] = {}
        self.calls: dict[str, list[ast.Call]] = {}
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.signatures.setdefault(node.name, []).append(_parameters(node))
                elif isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                            self.signatures.setdefault(node.name, []).append(
                                _parameters(item)[1:])
                elif isinstance(node, ast.Call) and (name := _callee(node)):
                    self.calls.setdefault(name, []).append(node)

    def literal_arguments(self, function: str, parameter: str) -> set[str]:
        values: set[str] = set()
        for call in self.calls.get(function, []):
            for keyword in call.keywords:
                if keyword.arg == parameter and isinstance(keyword.value, ast.Constant):
                    values.add(str(keyword.value.value))
        return values

    def positional_group_ids(self, call: ast.Call) -> Iterator[ast.expr]:
        for signature in self.signatures.get(_callee(call) or "", []):
            for position, argument in enumerate(call.args):
                if position < len(signature) and signature[position] == "group_id":
                    yield argument


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _is_app_id(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "app_id") or (
        isinstance(node, ast.Name) and node.id == "app_id")


def _is_pass_through(node: ast.expr) -> bool:
    """A variable named like a group id holds a value built (and scanned) where it was made."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return isinstance(node, ast.Name | ast.Attribute) and name.endswith("group_id")


class _Evaluator:
    def __init__(self, index: _Index, app_id: str) -> None:
        self.index = index
        self.app_id = app_id

    def names(self, node: ast.expr, enclosing: ast.FunctionDef | ast.AsyncFunctionDef | None
              ) -> set[GroupName] | None:
        """The group names ``node`` may evaluate to; None when it cannot be told."""
        if isinstance(node, ast.Constant):
            return set() if node.value is None else {GroupName(str(node.value), False)}
        if _is_app_id(node):
            return {GroupName(self.app_id, False)}
        if isinstance(node, ast.BoolOp):
            found: set[GroupName] = set()
            for value in node.values:
                if not _is_pass_through(value):
                    found |= self.names(value, enclosing) or set()
            return found or None
        if isinstance(node, ast.JoinedStr):
            return self._f_string(node, enclosing)
        if isinstance(node, ast.IfExp):  # either branch may be the name
            body, orelse = self.names(node.body, enclosing), self.names(node.orelse, enclosing)
            return None if body is None or orelse is None else body | orelse
        return set() if _is_pass_through(node) else None

    def _f_string(self, node: ast.JoinedStr,
                  enclosing: ast.FunctionDef | ast.AsyncFunctionDef | None) -> set[GroupName]:
        texts = [""]
        for part in node.values:
            if isinstance(part, ast.Constant):
                texts = [t + str(part.value) for t in texts]
            elif isinstance(part, ast.FormattedValue) and _is_app_id(part.value):
                texts = [t + self.app_id for t in texts]
            elif (isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name)
                  and enclosing is not None and part.value.id in _parameters(enclosing)
                  and (values := self.index.literal_arguments(enclosing.name, part.value.id))):
                texts = [t + v for t in texts for v in sorted(values)]
            else:
                return {GroupName(t, True) for t in texts}
        return {GroupName(t, False) for t in texts}


def _local_value(function: ast.FunctionDef | ast.AsyncFunctionDef | None,
                 node: ast.expr) -> ast.expr | None:
    """The value a local variable ``node`` was given by the one plain assignment to it in
    ``function`` (``group_id = …`` then ``faust.App(group_id, …)``); None otherwise."""
    if function is None or not isinstance(node, ast.Name):
        return None
    values = [
        statement.value for statement in ast.walk(function)
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == node.id
    ]
    return values[0] if len(values) == 1 else None


def _with_enclosing(tree: ast.Module) -> Iterator[
        tuple[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
    def visit(node: ast.AST, function: ast.FunctionDef | ast.AsyncFunctionDef | None
              ) -> Iterator[tuple[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef | None]]:
        yield node, function
        inner = node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else function
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inner)
    yield from visit(tree, None)


@cache
def group_usage(folders: tuple[str, ...], app_id: str, exclude: tuple[str, ...] = ()) -> Usage:
    """The groups (and faust apps) of the code of ``folders`` (less ``exclude``, as for
    :func:`import_closure`), with ``app_id`` for the app id."""
    trees = import_closure(folders, exclude)
    index = _Index(trees)
    evaluator = _Evaluator(index, app_id)
    usage = Usage()

    def record(expression: ast.expr, function: ast.FunctionDef | ast.AsyncFunctionDef | None,
               where: str) -> None:
        names = evaluator.names(expression, function)
        if names is None:
            usage.unresolved.append(f"{where}: {ast.unparse(expression)}")
            return
        for name in names:
            usage.groups.setdefault(name, []).append(where)

    for path, tree in trees.items():
        for node, function in _with_enclosing(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "group.id":
                        record(value, function, where)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                # `self.group_id = options.group_id or f"{settings.app_id}-webhooks"`
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(_is_pass_through(target) for target in targets):
                    record(node.value, function, where)
            elif isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "group_id":
                        record(keyword.value, function, where)
                for argument in index.positional_group_ids(node):
                    record(argument, function, where)
                if (isinstance(node.func, ast.Attribute) and node.func.attr == "App"
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "faust" and node.args):
                    app_id_node = _local_value(function, node.args[0]) or node.args[0]
                    usage.faust_app_ids |= evaluator.names(app_id_node, function) or set()
    return usage
