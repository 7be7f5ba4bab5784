"""Build the zip that Krita's Tools > Scripts > Import Python Plugin from File… accepts (standard library only).

    python3 krita/build_zip.py [-o dist/ai_portrait-krita.zip]

Krita's importer looks for `*.desktop` files, reads the module name (X-KDE-Library) and extracts the directory of
that name, which must be listed in the archive as a directory entry holding an `__init__.py`. The zip holds
`ai_portrait.desktop` and `ai_portrait/` with the bridge vendored at `ai_portrait/vendor/plugin/` (see
ai_portrait/bridge.py). The worker still has to be set up once with `python3 install.py` (it writes the
settings file naming the worker's interpreter).
"""
import argparse
import os
import sys
import time
import zipfile

NAME = "ai_portrait"
SKIP_DIRS = {"__pycache__"}
SKIP_FILES = {"operators.json", "settings.json"}


def _entries(repo_root):
    """(archive name, source path or None for a directory entry), directories before their files."""
    yield f"{NAME}.desktop", os.path.join(repo_root, "krita", f"{NAME}.desktop")
    trees = [(os.path.join(repo_root, "krita", NAME), NAME),
             (os.path.join(repo_root, "plugin"), f"{NAME}/vendor/plugin")]
    yield f"{NAME}/vendor/", None
    for src, prefix in trees:
        for folder, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and d != "vendor")
            rel = os.path.relpath(folder, src)
            arc_dir = prefix if rel == "." else f"{prefix}/{rel.replace(os.sep, '/')}"
            yield arc_dir + "/", None
            for f in sorted(files):
                if f in SKIP_FILES or f.endswith((".pyc", ".tmp")):
                    continue
                yield f"{arc_dir}/{f}", os.path.join(folder, f)
    pages = os.path.join(repo_root, "docs", "filters")   # the help pages, for the docker's Help button
    if os.path.isfile(os.path.join(pages, "index.html")):
        yield f"{NAME}/help/", None
        for f in sorted(os.listdir(pages)):
            if f.endswith((".html", ".jpg", ".png")):
                yield f"{NAME}/help/{f}", os.path.join(pages, f)


def build_zip(repo_root, out_path):
    repo_root = os.path.abspath(repo_root)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)) or ".", exist_ok=True)
    stamp = time.localtime(time.time())[:6]
    tmp = out_path + ".tmp"
    seen = set()
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, src in _entries(repo_root):
            if arc in seen:
                continue
            seen.add(arc)
            if src is None:
                info = zipfile.ZipInfo(arc, stamp)
                info.external_attr = 0o40755 << 16 | 0x10   # a directory (unix mode + MS-DOS flag)
                zf.writestr(info, b"")
            else:
                zf.write(src, arc)
    os.replace(tmp, out_path)
    return out_path


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=os.path.join(root, "dist", f"{NAME}-krita.zip"))
    args = ap.parse_args(argv)
    print(build_zip(root, args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
