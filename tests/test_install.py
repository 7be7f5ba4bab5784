"""install.py: stdlib only, a clear message when the environment is missing, a working --print-python."""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STDLIB = set(sys.stdlib_module_names)


def _imports(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_install_and_plugin_use_only_the_standard_library():
    project = {"plugin", "gimp", "krita"}
    files = [os.path.join(ROOT, "install.py")]
    for folder in ("plugin",):
        for base, _, names in os.walk(os.path.join(ROOT, folder)):
            files += [os.path.join(base, n) for n in names if n.endswith(".py")]
    for f in files:
        foreign = {m for m in _imports(f) if m not in STDLIB and m not in project and m != "numpy"}
        assert not foreign, f"{f} imports {foreign}"


def test_print_python_on_missing_env_says_what_to_do(tmp_path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--print-python", "--env",
                          str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "run python3 install.py first" in res.stderr


def test_print_python_names_this_environment():
    env_dir = os.path.dirname(os.path.dirname(sys.executable))
    res = subprocess.run([sys.executable, os.path.join(ROOT, "install.py"), "--print-python", "--env", env_dir],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert os.path.samefile(res.stdout.strip(), sys.executable)
