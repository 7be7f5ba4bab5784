#!/usr/bin/env python3
"""Set up AI Portrait: the worker's Python environment, its models, the GIMP 3 and Krita 5 plug-ins.

Standard library only. Safe to re-run: each step checks what is already there and skips it.

    python3 install.py              set everything up
    python3 install.py --demo       ... then run every operator on the bundled portrait (writes ./ai-portrait-demo)
    python3 install.py --test       ... then run the test suite
    python3 install.py --print-python
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements.txt"
DEV_REQUIREMENTS = ROOT / "requirements-dev.txt"
# Pinned packages whose declared dependencies must not come along (a GUI the worker never imports).
NODEPS_REQUIREMENTS = ROOT / "requirements-nodeps.txt"
TORCH_PIN = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MIN_PYTHON = (3, 10)


class StepFailed(Exception):
    def __init__(self, step: str, detail: str, retry: str):
        super().__init__(f"{step}: {detail}")
        self.step, self.detail, self.retry = step, detail, retry


def say(msg: str) -> None:
    print(f"[install] {msg}", flush=True)


def default_env_dir() -> Path:
    """Per-user data directory for the worker's environment."""
    system = platform.system()
    if system == "Windows":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "AI Portrait"
    elif system == "Darwin":
        base = Path.home() / "Library" / "Application Support" / "AI Portrait"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "ai-portrait"
    return base / "venv"


def env_python(env_dir: Path) -> Path:
    if platform.system() == "Windows":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def run(cmd, step: str, retry: str, env=None, cwd=None) -> None:
    say("$ " + " ".join(str(c) for c in cmd))
    try:
        res = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd)
    except OSError as exc:
        raise StepFailed(step, str(exc), retry) from None
    if res.returncode != 0:
        raise StepFailed(step, f"command exited with status {res.returncode}", retry)


def has_nvidia_gpu() -> bool:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return False
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def local_cpu_torch_wheel() -> bool:
    """True when pip's find-links already hold the pinned CPU build (then no extra index is needed)."""
    version = TORCH_PIN.split("==")[1]
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        folder = folder.replace("file://", "")
        if os.path.isdir(folder) and any(n.startswith(f"torch-{version}+cpu") for n in os.listdir(folder)):
            return True
    return False


def torch_install_args(args) -> list:
    """pip arguments for torch: CUDA build on NVIDIA machines, CPU build elsewhere."""
    if args.torch_index:
        return [TORCH_PIN, "--index-url", args.torch_index]
    if has_nvidia_gpu():
        say("NVIDIA GPU found: installing the CUDA build of torch")
        return [TORCH_PIN]  # PyPI's Linux/Windows wheels of this release are CUDA builds
    if platform.system() == "Linux" and not local_cpu_torch_wheel():
        return [TORCH_PIN, "--extra-index-url", TORCH_CPU_INDEX]
    return [TORCH_PIN]  # macOS wheels (MPS) and local CPU wheels


def requirements_fingerprint(with_dev: bool) -> str:
    h = hashlib.sha256()
    for p in [REQUIREMENTS, NODEPS_REQUIREMENTS] + ([DEV_REQUIREMENTS] if with_dev else []):
        if p.exists():
            h.update(p.read_bytes())
    h.update(str(has_nvidia_gpu()).encode())
    return h.hexdigest()


def ensure_environment(args, with_dev: bool) -> Path:
    env_dir = Path(args.env).expanduser().resolve() if args.env else default_env_dir()
    py = env_python(env_dir)
    retry = f"python3 install.py --env {env_dir}" + (" --test" if with_dev else "")
    if sys.version_info[:2] < MIN_PYTHON:
        raise StepFailed("python", f"Python {'.'.join(map(str, MIN_PYTHON))} or newer is needed for the worker "
                         f"environment; this is {platform.python_version()}", "run install.py with a newer python3")
    if not py.exists():
        say(f"creating the worker environment in {env_dir}")
        try:
            venv.EnvBuilder(with_pip=True, clear=env_dir.exists()).create(str(env_dir))
        except Exception as exc:  # venv raises several types (missing ensurepip, permissions)
            raise StepFailed("environment", f"could not create {env_dir}: {exc}", retry) from None
    marker = env_dir / ".ai-portrait-requirements"
    fingerprint = requirements_fingerprint(with_dev)
    if marker.exists() and marker.read_text().strip() == fingerprint:
        say(f"environment up to date: {env_dir}")
        return py
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run(pip + torch_install_args(args), "install torch", retry)
    reqs = ["-r", REQUIREMENTS] + (["-r", DEV_REQUIREMENTS] if with_dev else [])
    run(pip + reqs, "install requirements", retry)
    if NODEPS_REQUIREMENTS.exists():
        run(pip + ["--no-deps", "-r", NODEPS_REQUIREMENTS], "install requirements without dependencies", retry)
    # pymatting's numba kernels compile on first import (about a minute of CPU) and are cached in the
    # environment: pay that here, once, rather than in a retoucher's first Background run.
    say("compiling the matting kernels once (about a minute)")
    run([py, "-c", "import pymatting"], "compile pymatting's kernels", retry)
    marker.write_text(fingerprint + "\n")
    return py


def write_config(py: Path, args) -> Path:
    sys.path.insert(0, str(ROOT))
    from plugin import config as plugin_config

    cfg = plugin_config.load_config()
    cfg["python"] = str(py)
    cfg["core_root"] = str(ROOT)
    if args.device:
        cfg["device"] = args.device
    path = plugin_config.save_config(cfg)
    say(f"worker configuration written to {path}")
    return Path(path)


def install_hosts(config_path: Path) -> None:
    """Put the plug-ins in place for the hosts found on this machine (each installer decides where)."""
    for name, module in (("GIMP 3", "gimp.install_gimp"), ("Krita 5", "krita.install_krita")):
        try:
            mod = __import__(module, fromlist=["install"])
        except ImportError:
            say(f"{name}: no installer in this checkout, skipped")
            continue
        try:
            installed = mod.install(ROOT, config_path=config_path)
        except Exception as exc:  # a host install must not stop the rest of the setup
            say(f"{name}: plug-in not installed ({exc}); retry with: python3 install.py --hosts-only")
            continue
        for path in installed or []:
            say(f"{name}: installed {path}")
        if not installed:
            say(f"{name}: not found on this machine, skipped")


def fetch_models(py: Path) -> None:
    res = subprocess.run([str(py), "-m", "core", "models", "fetch", "all"], cwd=str(ROOT))
    if res.returncode != 0:
        say("some models could not be fetched (offline?): operators that need them will say so; "
            "retry with: python3 install.py --models")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", help="where to create the worker's Python environment (default: per-user data dir)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="device the worker should use")
    ap.add_argument("--torch-index", help="pip index URL for torch (e.g. a specific CUDA build)")
    ap.add_argument("--no-hosts", action="store_true", help="do not install the GIMP/Krita plug-ins")
    ap.add_argument("--hosts-only", action="store_true", help="only (re)install the GIMP/Krita plug-ins")
    ap.add_argument("--no-models", action="store_true", help="do not fetch model weights")
    ap.add_argument("--models", action="store_true", help="only (re)fetch model weights")
    ap.add_argument("--demo", action="store_true", help="run every operator on the bundled portrait")
    ap.add_argument("--demo-out", default="ai-portrait-demo", help="folder for the demo results")
    ap.add_argument("--test", action="store_true", help="install test tools and run the test suite")
    ap.add_argument("--print-python", action="store_true", help="print the environment's interpreter path")
    ap.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = ap.parse_args(argv)

    if args.print_python:
        env_dir = Path(args.env).expanduser().resolve() if args.env else default_env_dir()
        py = env_python(env_dir)
        if not py.exists():
            print(f"no environment at {env_dir}: run python3 install.py first", file=sys.stderr)
            return 1
        print(py)
        return 0
    t0 = time.monotonic()
    try:
        py = ensure_environment(args, with_dev=args.test or args.models)
        if args.models:
            fetch_models(py)
            return 0
        config_path = write_config(py, args)
        if not args.no_hosts:
            install_hosts(config_path)
        if args.hosts_only:
            return 0
        if not args.no_models:
            fetch_models(py)
        if args.demo:
            out = Path(args.demo_out).resolve()
            run([py, "-m", "core", "demo", "--out", out], "demo", "python3 install.py --demo", cwd=str(ROOT))
        if args.test:
            env = dict(os.environ, HF_HUB_OFFLINE="1")
            say("running the tests")
            res = subprocess.run([str(py), "-m", "pytest", "-q", "-ra", "tests"] + list(args.pytest_args),
                                 cwd=str(ROOT), env=env)
            say(f"tests finished with status {res.returncode} after {time.monotonic() - t0:.0f} s")
            return res.returncode
    except StepFailed as exc:
        print(f"[install] FAILED at step '{exc.step}': {exc.detail}\n[install] fix the cause above and retry with:"
              f" {exc.retry}", file=sys.stderr)
        return 1
    say(f"done in {time.monotonic() - t0:.0f} s; worker python: {py}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
