"""Which way imports go (README, Architecture): checked on the source, so a new file cannot quietly break it.

- An operator imports the shared rooms (imaging, optics, face, depth, models, registry, jobs, device, parallel),
  never another operator, never plugin/ or a host.
- The shared rooms never import an operator.
- In core only the worker (worker/ and its command) imports plugin/ (the one wire format, shared on purpose),
  and the help-page generator imports plugin/words (the words the dialogs use, so a page says what a tooltip says).
- plugin/ is standard library only (numpy only as an optional speed-up, inside `try: ... except ImportError`);
  the hosts (gimp/, krita/) never import torch or core.
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_ROOMS = ("imaging", "optics", "face", "depth", "models")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _optional_imports(tree):
    """Import nodes inside a `try:` whose handlers catch ImportError: optional speed-ups, not dependencies."""
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            for stmt in node.body:
                nodes |= {id(n) for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return nodes


def imports_of(path: Path, include_optional: bool = True):
    """Absolute names of every module a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    optional = set() if include_optional else _optional_imports(tree)
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names = []
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.append(mod)
            names += [f"{mod}.{a.name}" for a in node.names]  # `from .. import face` imports a module
    return names


def py_files(*dirs):
    for d in dirs:
        yield from sorted(p for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def _operator_of(name: str):
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["core", "operators"] else None


def test_the_resolver_reads_relative_imports():
    f = ROOT / "core" / "operators" / "refocus" / "__init__.py"
    names = imports_of(f)
    assert "core.registry" in names and "core.imaging.depthmap" in names


@pytest.mark.parametrize("path", list(py_files("core/operators")), ids=lambda p: str(p.relative_to(ROOT)))
def test_an_operator_imports_only_shared_rooms(path):
    own = _operator_of(_module_name(path))
    for name in imports_of(path):
        other = _operator_of(name)
        assert other in (None, own), f"{path.name} (operator {own}) imports operator {other}: move it to a shared room"
        assert name.split(".")[0] not in ("plugin", "gimp", "krita"), f"{path} imports {name}"


@pytest.mark.parametrize("room", SHARED_ROOMS)
def test_shared_rooms_never_import_an_operator(room):
    for path in py_files(f"core/{room}"):
        for name in imports_of(path):
            assert _operator_of(name) is None, f"{path} imports {name}"


# The stated exceptions: a file of core that imports these modules of plugin/ (and nothing else of it) on purpose.
PLUGIN_IMPORTS_ALLOWED = {
    ROOT / "core" / "commands" / "help_pages.py": {"plugin.words"},  # one source of the words for units, values
}


def test_only_the_worker_imports_plugin():
    for path in py_files("core"):
        if "worker" in path.relative_to(ROOT).parts or path == ROOT / "core" / "commands" / "worker.py":
            continue
        allowed = PLUGIN_IMPORTS_ALLOWED.get(path, set())
        for name in imports_of(path):
            if name.split(".")[0] == "plugin":
                assert name in allowed or name.rsplit(".", 1)[0] in allowed, f"{path} imports {name}"


def test_plugin_is_standard_library_only():
    allowed = set(sys.stdlib_module_names) | {"plugin", "__future__"}
    for path in py_files("plugin"):
        for name in imports_of(path, include_optional=False):
            assert name.split(".")[0] in allowed, f"{path} imports {name}"


@pytest.mark.parametrize("host", ["gimp", "krita"])
def test_hosts_never_import_torch_or_core(host):
    for path in py_files(host):
        for name in imports_of(path):
            assert name.split(".")[0] not in ("torch", "core"), f"{path} imports {name}"


def test_the_stated_plugin_exceptions_are_still_needed():
    for path, modules in PLUGIN_IMPORTS_ALLOWED.items():
        assert modules <= set(imports_of(path)), f"{path} no longer imports {modules}: drop the exception"
