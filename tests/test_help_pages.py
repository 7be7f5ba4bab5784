"""The help pages (`python -m core help-pages`): generated from the registry, in the plug-ins' own words, and
bundled so the hosts' Help buttons open them."""
import os
import subprocess
import sys

import pytest

from core import registry
from core.commands import help_pages
from plugin import words

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pages_and_tooltips_say_values_and_units_in_the_same_words():
    """One source, plugin.words: a page's Default column writes every default as the dialogs and layer names do
    (an empty text or list as 'none' in both), and a page says about a unit what the tooltip says."""
    for op in registry.as_json():
        _, _, _, main, advanced, _ = help_pages.page_parts(op, {})
        rows = {row[0]: row for row in main + advanced}
        for p in op["params"]:
            title = p.get("title") or p["name"].replace("_", " ").capitalize()
            _, what, _, default = rows[title]
            assert default == words.format_value(p, p["default"]), (op["name"], p["name"])
            said = words.unit_sentence(p)
            assert said in what and said in words.tooltip(p), (op["name"], p["name"])
    assert words.format_value({"type": "string"}, "") == "none"
    assert words.format_value({"type": "float", "repeat": True}, []) == "none"
    assert help_pages.format_value is words.format_value


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    res = subprocess.run([sys.executable, "-m", "core", "help-pages", "--out", str(out), "--no-pictures"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert res.returncode == 0, res.stderr
    return out


def test_one_page_per_filter_with_every_setting_where_it_belongs(pages):
    for op in registry.as_json():
        md = (pages / f"{op['name']}.md").read_text()
        page = (pages / f"{op['name']}.html").read_text()
        assert md.startswith(f"# {op['title']}") and f"<h1>{op['title']}</h1>" in page
        main, _, advanced = md.partition("## Advanced settings")
        for p in op["params"]:
            title = p.get("title") or p["name"].replace("_", " ").capitalize()
            row = f"| {title} |"
            assert row in (advanced if p.get("advanced") else main), (op["name"], p["name"])
            if p.get("unit") in ("mm", "m", "deg") and p["type"] in ("float", "int"):
                line = next(l for l in md.splitlines() if l.startswith(row))
                assert words.unit_words(p["unit"]) in line, line
        assert "signal²" not in md


def test_gimp_help_map_names_every_procedure_and_its_page(pages):
    sys.path.insert(0, os.path.join(ROOT, "gimp"))
    from ai_portrait import describe
    xml = (pages / "gimp-help.xml").read_text()
    for op in registry.as_json():
        assert f'<help-item id="{describe.proc_name(op["name"])}" ref="{op["name"]}.html"' in xml
    assert '<help-missing ref="index.html"/>' in xml


def test_the_repository_has_a_page_and_a_picture_for_every_filter():
    """docs/filters is what the plug-ins bundle (regenerate it with `python -m core help-pages` after
    changing a filter's declaration)."""
    folder = os.path.join(ROOT, "docs", "filters")
    for op in registry.operators():
        for ext in ("md", "html", "jpg"):
            assert os.path.isfile(os.path.join(folder, f"{op.name}.{ext}")), (op.name, ext)


def test_both_plugins_bundle_the_pages(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "gimp"))
    import install_gimp
    from krita.build_zip import build_zip
    files = install_gimp.install_into(tmp_path / "plug-ins", ROOT)
    assert any(f.endswith("ai_portrait/help/en/gimp-help.xml") for f in files)
    assert any(f.endswith("ai_portrait/help/en/refocus.html") for f in files)
    import zipfile
    names = zipfile.ZipFile(build_zip(ROOT, str(tmp_path / "k.zip"))).namelist()
    assert "ai_portrait/help/refocus.html" in names and "ai_portrait/help/refocus.jpg" in names


def test_expert_settings_sit_under_advanced_in_every_filter():
    """The main view holds what a photographer knows; noise-model terms, tile sizes, reference indices, sensor
    widths and lens-history settings are expert knobs (issue 20). Read from the registry, as every front end is."""
    from core import registry
    expert = {"denoise": {"reference", "tile", "noise_a", "noise_b"},
              "refocus": {"depth_kind", "sensor_width", "blade_rotation", "blur_at_infinity", "highlight_boost",
                          "original_f_number", "original_focus_distance", "sharpen"}}
    also = {"background": {"sensor_width"}}   # advanced among others
    for name, names in expert.items():
        params = {p.name: p for p in registry.get(name).params}
        assert names <= set(params), (name, names - set(params))
        assert {n for n, p in params.items() if p.advanced} == names, name
        main = [n for n, p in params.items() if not p.advanced]
        assert 2 <= len(main) <= 7, (name, main)   # a short main view
    for name, names in also.items():
        assert all(p.advanced for p in registry.get(name).params if p.name in names), name
