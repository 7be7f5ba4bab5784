"""`python -m core help-pages --out docs/filters`: one help page per filter, generated from the registry.

For every registered filter (test operators left out) it writes, into --out:

    NAME.md      Markdown for the repository (docs/filters, linked from the README)
    NAME.html    the same page as plain HTML, which the GIMP and Krita plug-ins bundle and open from their
                 Help buttons (gimp-help.xml maps GIMP's help ids to these pages)
    NAME.jpg     the filter's demo on the bundled astronaut portrait (scikit-image, NASA, public domain):
                 before on the left, after on the right (--no-pictures keeps the pictures already there)
    index.md, index.html, gimp-help.xml

A page has: what the filter does, the picture, where it is in GIMP and Krita, its inputs, its settings (the
main ones, then the advanced ones) with what each does, its range, default and unit written out, and what
was measured: the demo's size, time and the facts the filter reported, and this filter's rows of the latest
benchmark (bench/results/latest.json) when there are some.

The words for units and values are plugin/words.py's, the ones the plug-ins' dialogs and tooltips use, so a
page says what a tooltip says (the one import of plugin/ in core besides the worker's; plugin/ is standard
library only).
"""
from __future__ import annotations

import html
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from plugin.words import format_value, num, sentence, unit_sentence

from .. import registry
from . import command

PICTURE_SIDE = 320      # each half of the before/after picture, in pixels (pages stay light)
GIMP_HELP_LOCALE = "en"
BENCH_FILE = Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json"

KIND_WORDS = {"image": "The picture", "frames": "The frames of a burst", "depth": "Depth map",
              "normals": "Normal map", "reference": "Reference picture", "background": "New background",
              "mask": "Mask"}


def range_text(p) -> str:
    """The page's Range column: 'f/0.5 to f/64', 'at least 1 mm', the choices (a tooltip says it as a
    sentence, plugin.words.range_text)."""
    if p.get("type") == "choice":
        return ", ".join(str(c).replace("_", " ") for c in p.get("choices") or [])
    if p.get("type") not in ("float", "int", "vector"):
        return ""
    lo, hi = p.get("min"), p.get("max")
    one = dict(p, type="float" if p.get("type") == "vector" else p["type"], repeat=False)
    if lo is not None and hi is not None:
        text = f"{format_value(one, lo)} to {format_value(one, hi)}"
    elif lo is not None:
        text = f"at least {format_value(one, lo)}"
    elif hi is not None:
        text = f"at most {format_value(one, hi)}"
    else:
        text = ""
    if p.get("type") == "vector" and text:
        text += " (each number)"
    return text


# --- the page ------------------------------------------------------------------------------------------------


def _title(p) -> str:
    return p.get("title") or p["name"].replace("_", " ").capitalize()


def _what(p) -> str:
    bits = [sentence(p.get("help")), unit_sentence(p)]
    if p.get("type") == "point" or (p.get("coordinates") and p.get("type") == "vector"):
        bits.append("A position in the picture, in pixels from its top-left corner (GIMP: 'From the canvas'; "
                    "Krita: 'Pick').")
    if p.get("repeat"):
        bits.append("A list: add as many as you need ('Add another').")
    if p.get("optional") and p.get("default") is None:
        bits.append("Leave it on 'auto' to let the filter choose.")
    return " ".join(b for b in bits if b)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def page_parts(op, demo):
    """The page as plain data: (title, lead, rows of inputs, main rows, advanced rows, measured lines)."""
    inputs = []
    for inp in op["inputs"]:
        what = KIND_WORDS.get(inp["kind"], inp["kind"])
        if inp["name"] != inp["kind"]:
            what = f"{inp['name'].replace('_', ' ').capitalize()} ({what.lower()})"
        note = "the layer you select" if inp["kind"] == "image" else \
            "the layers you select (GIMP: in the Layers dock; Krita: the Layers docker)" \
            if inp["kind"] == "frames" else "a layer of the image (GIMP: or a file)"
        need = "" if inp.get("required", True) else "optional; "
        inputs.append((what, f"{need}{note}. {sentence(inp.get('help'))}"))
    main, advanced = [], []
    for p in op["params"]:
        row = (_title(p), _what(p), range_text(p), format_value(p, p.get("default")))
        (advanced if p.get("advanced") else main).append(row)
    measured = []
    if demo.get("seconds") is not None:
        measured.append(f"The demo above: {demo['size']} in {demo['seconds']:.1f} s on {demo['device']} "
                        f"({demo['date']}), settings: {demo['settings'] or 'the defaults'}.")
    facts = _facts(demo.get("info") or {})
    if facts:
        measured.append("What the filter reported for it: " + facts + ".")
    for row in demo.get("bench") or []:
        keys = [k for k in row if k not in ("operator", "case", "size", "device", "load", "busy_cpus", "threads")]
        measured.append(f"Benchmark '{row.get('case')}' ({row.get('size')}, {row.get('device')}): "
                        + ", ".join(f"{k.replace('_', ' ')} {row[k]}" for k in keys) + ".")
    if demo.get("skipped"):
        measured.append(f"The demo did not run here: {demo['skipped']}.")
    return op["title"], sentence(op.get("help")), inputs, main, advanced, measured


def _facts(info, limit=8) -> str:
    shown = []
    for k, v in info.items():
        if k in ("operator", "params", "seed", "models") or isinstance(v, (dict, list)) and len(str(v)) > 80:
            continue
        if isinstance(v, float):
            v = num(v)
        shown.append(f"{k.replace('_', ' ')} {v}")
        if len(shown) >= limit:
            break
    return "; ".join(shown)


def markdown(op, demo, picture) -> str:
    title, lead, inputs, main, advanced, measured = page_parts(op, demo)
    out = [f"# {title}", "", lead, ""]
    if picture:
        out += [f"![{title}: before (left) and after (right)]({picture})", "",
                "*Before (left) and after (right): the filter's demo on the astronaut portrait bundled with "
                "scikit-image (NASA, public domain).*", ""]
    out += ["## Where to find it", "",
            f"- **GIMP 3**: Filters > AI Portrait > {title}…",
            f"- **Krita 5**: Settings > Dockers > AI Portrait, then *{title}* (or Tools > Scripts > "
            f"AI Portrait: {title})", "",
            "The result is a new layer above the layer it was made from; running the filter again with that "
            "result selected replaces it (or adds another layer, as *Running again* says) and always starts "
            "from the original layer.", "", "## What it works on", "", "| Input | What it is |", "|---|---|"]
    out += [f"| {_cell(a)} | {_cell(b)} |" for a, b in inputs]
    for head, rows in (("Settings", main), ("Advanced settings", advanced)):
        if not rows:
            continue
        out += ["", f"## {head}", "", "| Setting | What it does | Range | Default |", "|---|---|---|---|"]
        out += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} | {_cell(d)} |" for a, b, c, d in rows]
    if measured:
        out += ["", "## Measured", ""] + [f"- {line}" for line in measured]
    out += ["", f"*Generated from the registry by `python -m core help-pages`.*", ""]
    return "\n".join(out)


def html_page(op, demo, picture) -> str:
    title, lead, inputs, main, advanced, measured = page_parts(op, demo)
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", f"<p>{e(lead)}</p>"]
    if picture:
        body.append(f'<figure><img src="{e(picture)}" alt="{e(title)}: before and after" width="{2 * PICTURE_SIDE}">'
                    "<figcaption>Before (left) and after (right): the filter's demo on the astronaut portrait "
                    "bundled with scikit-image (NASA, public domain).</figcaption></figure>")
    body += ["<h2>Where to find it</h2>", "<ul>",
             f"<li><b>GIMP 3</b>: Filters &gt; AI Portrait &gt; {e(title)}…</li>",
             f"<li><b>Krita 5</b>: Settings &gt; Dockers &gt; AI Portrait, then <i>{e(title)}</i></li></ul>",
             "<p>The result is a new layer above the layer it was made from; running the filter again with that "
             "result selected replaces it (or adds another layer, as <i>Running again</i> says) and always "
             "starts from the original layer.</p>", "<h2>What it works on</h2>", _table(("Input", "What it is"),
                                                                                          inputs)]
    for head, rows in (("Settings", main), ("Advanced settings", advanced)):
        if rows:
            body += [f"<h2>{head}</h2>", _table(("Setting", "What it does", "Range", "Default"), rows)]
    if measured:
        body += ["<h2>Measured</h2>", "<ul>"] + [f"<li>{e(line)}</li>" for line in measured] + ["</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)} — AI Portrait</title><style>body{{font-family:sans-serif;max-width:56em;"
            "margin:2em auto;padding:0 1em;line-height:1.45}}table{{border-collapse:collapse}}td,th{{border:1px "
            "solid #bbb;padding:.3em .5em;vertical-align:top;text-align:left}}img{{max-width:100%}}</style>"
            "</head><body>\n" + "\n".join(body) + '\n<p><a href="index.html">All filters</a></p></body></html>\n')


def _table(head, rows) -> str:
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
    return "".join(out) + "</table>"


def gimp_help_map(ops) -> str:
    """GIMP's help map: each procedure's help id (its name, see gimp/ai_portrait) -> its page."""
    items = "\n".join(f'  <help-item id="{html.escape(gimp_proc(op["name"]))}" ref="{op["name"]}.html" '
                      f'title="{html.escape(op["title"])}"/>' for op in ops)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<gimp-help>\n' + items +
            '\n  <help-missing ref="index.html"/>\n</gimp-help>\n')


def gimp_proc(name: str) -> str:
    """The GIMP procedure name of an operator (as gimp/ai_portrait/describe.proc_name makes it)."""
    import re
    s = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-").lower()
    if not s or not s[0].isalpha():
        s = "p-" + s
    return "plug-in-ai-portrait-" + s


# --- running the demos ---------------------------------------------------------------------------------------


def _fit(a, side):
    import cv2
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    rgb = a[:, :, :3] if a.shape[2] >= 3 else np.repeat(a[:, :, :1], 3, axis=2)
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def before_after(before, after, side=PICTURE_SIDE):
    a, b = _fit(before, side), _fit(after, side)
    h = max(a.shape[0], b.shape[0])
    pad = lambda x: np.pad(x, ((0, h - x.shape[0]), (0, 0), (0, 0)), constant_values=1.0)  # noqa: E731
    return np.clip(np.concatenate([pad(a), np.ones((h, 6, 3), np.float32), pad(b)], axis=1), 0.0, 1.0)


def run_demo(op, portrait, seed=0, device=None):
    """(demo facts, before/after picture or None): the operator's own demo, timed."""
    from ..errors import UserError
    from ..jobs import Job
    demo = {"date": time.strftime("%Y-%m-%d"), "device": str(device or _default_device())}
    if op.demo is None:
        return demo, None
    try:
        inputs, params = op.demo(portrait, seed)
        t0 = time.perf_counter()
        result = registry.run(op.name, inputs, params, seed=seed, device=device, job=Job())
        demo["seconds"] = time.perf_counter() - t0
    except UserError as exc:
        demo["skipped"] = str(exc)
        return demo, None
    before = inputs[op.primary.name]
    if op.primary.kind == "frames":
        before = before[int(result.info.get("reference_index", 0))]
    h, w = np.asarray(before).shape[:2]
    demo["size"] = f"{w} × {h}"
    decl = {p["name"]: p for p in op.to_dict()["params"]}
    demo["settings"] = ", ".join(f"{_title(decl[k]).lower()} {format_value(decl[k], v)}"
                                 for k, v in params.items() if k in decl)
    demo["info"] = json.loads(json.dumps(result.info, default=str))
    return demo, before_after(before, result.image)


def _default_device():
    try:
        from ..device import select_device
        return select_device(None)
    except Exception:  # noqa: BLE001 - only a word on the page
        return "the default device"


def _bench_rows(name):
    try:
        rows = json.loads(BENCH_FILE.read_text()).get("rows") or []
    except (OSError, ValueError):
        return []
    return [r for r in rows if r.get("operator") == name]


def _setup(ap):
    ap.add_argument("--out", default="docs/filters", help="folder for the pages (created if missing)")
    ap.add_argument("--only", help="comma-separated filter names")
    ap.add_argument("--no-pictures", action="store_true",
                    help="do not run the demos: keep the pictures (and figures) already there")
    ap.add_argument("--device", default=None)


def _run(args) -> int:
    from ..imaging.io import write_image
    from .demo import bundled_portrait
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    ops = [op for op in registry.operators() if not op.name.startswith(("test_", "gimptest_"))]
    portrait = None if args.no_pictures else bundled_portrait()
    figures_path = out / "figures.json"
    try:
        figures = json.loads(figures_path.read_text())
    except (OSError, ValueError):
        figures = {}
    for op in ops:
        if wanted and op.name not in wanted:
            continue
        picture = f"{op.name}.jpg"
        if portrait is not None:
            demo, sheet = run_demo(op, portrait, device=args.device)
            if sheet is not None:
                write_image(out / picture, sheet, "u8")
                os.chmod(out / picture, 0o644)   # a page's picture is for everyone who reads the page
            figures[op.name] = demo
            print(f"help-pages: {op.name}: demo {demo.get('seconds', 0):.1f} s", file=sys.stderr)
        demo = dict(figures.get(op.name) or {})
        demo["bench"] = _bench_rows(op.name)
        decl = op.to_dict()
        shown = picture if (out / picture).exists() else None
        (out / f"{op.name}.md").write_text(markdown(decl, demo, shown), encoding="utf-8")
        (out / f"{op.name}.html").write_text(html_page(decl, demo, shown), encoding="utf-8")
    figures_path.write_text(json.dumps(figures, indent=1, sort_keys=True, default=str) + "\n")
    decls = [op.to_dict() for op in ops]
    index_md = ["# AI Portrait: the filters", ""] + [f"- [{d['title']}]({d['name']}.md): {sentence(d.get('help'))}"
                                                      for d in decls] + [""]
    (out / "index.md").write_text("\n".join(index_md), encoding="utf-8")
    items = "".join(f'<li><a href="{d["name"]}.html">{html.escape(d["title"])}</a>: '
                    f"{html.escape(sentence(d.get('help')))}</li>" for d in decls)
    (out / "index.html").write_text("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>AI "
                                    "Portrait filters</title></head><body><h1>AI Portrait: the filters</h1><ul>"
                                    + items + "</ul></body></html>\n", encoding="utf-8")
    (out / "gimp-help.xml").write_text(gimp_help_map(decls), encoding="utf-8")
    print(f"help-pages: {len(decls)} filter page(s) in {out.resolve()}")
    return 0


command("help-pages", "write one help page per filter (Markdown and HTML, with the demo's before/after picture)",
        _setup, _run)
