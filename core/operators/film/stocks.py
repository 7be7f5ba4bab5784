"""The stocks offered, and their datasheets read from spectral-film-lut (MIT, pinned in requirements-nodeps.txt).

Each camera stock names the spectral-film-lut module holding its digitised datasheet and the print it is shown
through by default. Only the data modules are imported (numpy + colour-science); the package's GUI and LUT
code is never used. `Datasheet` is that data on this package's spectral grid, in plain arrays:

- curves: per layer (red, green, blue; one for black-and-white) the characteristic curve, density (Status M
  for negatives, Status A for prints and slides, diffuse for silver) against log10 exposure in lux-seconds.
  A few sheets give exposure in stops relative to the normal exposure (exposure_base = 2); those are turned
  into log10 units relative to the ISO mid-grey exposure (see `sensitometry.grey_log_exposure`).
- sensitivity: per layer the relative spectral sensitivity 10^(log sensitivity), 0 outside the digitised range.
- dyes: per layer the spectral density of its dye (any scale), or None (many negative sheets give only the
  minimum and the mid-scale neutral spectra; `dyes.py` then derives the three dyes).
- granularity: per layer (channel density, RMS granularity) pairs read off the sheet's granularity chart (48 µm
  aperture), and `rms`, the single RMS granularity ×1000 the sheet quotes, where it quotes one.

Importing a spectral-film-lut data module has one side effect outside itself: its config module sets
colour-science's default float type to float32 for the whole process. `_import` puts it back to float64 at
once, so colour-science keeps its documented precision for everyone else in the worker.
"""
from __future__ import annotations

import functools
import importlib
import threading
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...errors import UserError
from . import spectral

PACKAGE = "spectral_film_lut"
PACKAGE_PIN = "0.18.13"   # the version the stocks below were checked against (requirements-nodeps.txt)


@dataclass(frozen=True)
class Stock:
    id: str            # the --stock choice
    title: str
    module: str        # spectral_film_lut sub-module
    attr: str          # the FilmData object in it
    kind: str          # 'negative' (colour negative), 'slide' (colour reversal), 'bw' (black-and-white negative)
    print_id: str      # default print ('' for slides: viewed directly)


@dataclass(frozen=True)
class Print:
    id: str            # the --print choice
    title: str
    module: str
    attr: str
    kind: str          # 'colour' or 'bw'
    medium: str        # 'paper' (reflection print) or 'film' (projected print)


# Photo negatives print on the maker's paper, cine negatives on Vision 2383 (the cinema release print),
# black-and-white on its own paper or print film.
STOCKS: Tuple[Stock, ...] = (
    Stock("portra-160", "Kodak Portra 160",
          "negative_film.kodak_portra_160", "KODAK_PORTRA_160", "negative", "kodak-endura"),
    Stock("portra-400", "Kodak Portra 400",
          "negative_film.kodak_portra_400", "KODAK_PORTRA_400", "negative", "kodak-endura"),
    Stock("portra-800", "Kodak Portra 800",
          "negative_film.kodak_portra_800", "KODAK_PORTRA_800", "negative", "kodak-endura"),
    Stock("ektar-100", "Kodak Ektar 100",
          "negative_film.kodak_ektar_100", "KODAK_EKTAR_100", "negative", "kodak-endura"),
    Stock("gold-200", "Kodak Gold 200", "negative_film.kodak_gold_200", "KODAK_GOLD_200", "negative", "kodak-endura"),
    Stock("ultramax-400", "Kodak UltraMax 400",
          "negative_film.kodak_ultramax_400", "KODAK_ULTRAMAX_400", "negative", "kodak-endura"),
    Stock("pro-400h", "Fujifilm Pro 400H",
          "negative_film.fuji_pro_400h", "FUJI_PRO_400H", "negative", "fuji-crystal-archive"),
    Stock("superia-400", "Fujifilm Superia X-TRA 400",
          "negative_film.fuji_superia_xtra_400", "FUJI_SUPERIA_XTRA_400", "negative", "fuji-crystal-archive"),
    Stock("superia-reala", "Fujifilm Superia Reala 100",
          "negative_film.fuji_superia_reala", "FUJI_SUPERIA_REALA", "negative", "fuji-crystal-archive"),
    Stock("c200", "Fujicolor C200", "negative_film.fuji_c200", "FUJI_C200", "negative", "fuji-crystal-archive"),
    Stock("vision3-50d", "Kodak Vision3 50D 5203", "negative_film.kodak_5203", "KODAK_5203", "negative", "kodak-2383"),
    Stock("vision3-250d", "Kodak Vision3 250D 5207",
          "negative_film.kodak_5207", "KODAK_5207", "negative", "kodak-2383"),
    Stock("vision3-200t", "Kodak Vision3 200T 5213",
          "negative_film.kodak_5213", "KODAK_5213", "negative", "kodak-2383"),
    Stock("vision3-500t", "Kodak Vision3 500T 5219",
          "negative_film.kodak_5219", "KODAK_5219", "negative", "kodak-2383"),
    Stock("provia-100f", "Fujichrome Provia 100F", "reversal_film.fuji_provia_100f", "FUJI_PROVIA_100F", "slide", ""),
    Stock("velvia-50", "Fujichrome Velvia 50", "reversal_film.fuji_velvia_50", "FUJI_VELVIA_50", "slide", ""),
    Stock("ektachrome-100d", "Kodak Ektachrome 100D",
          "reversal_film.kodak_ektachrome_100d", "KODAK_EKTACHROME_100D", "slide", ""),
    Stock("kodachrome-64", "Kodachrome 64", "reversal_film.kodachrome_64", "KODACHROME_64", "slide", ""),
    Stock("tri-x-400", "Kodak Tri-X 400", "bw_negative_film.kodak_trix_400", "KODAK_TRI_X_400", "bw", "kodak-polymax"),
    Stock("double-x-5222", "Kodak Double-X 5222", "bw_negative_film.kodak_5222", "KODAK_5222", "bw", "kodak-2302"),
)

PRINTS: Tuple[Print, ...] = (
    Print("kodak-endura", "Kodak Portra Endura paper",
          "print_film.kodak_portra_endura", "KODAK_PORTRA_ENDURA", "colour", "paper"),
    Print("fuji-crystal-archive", "Fujicolor Crystal Archive DPII paper",
          "print_film.fuji_ca_dpII", "FUJI_CA_DPII", "colour", "paper"),
    Print("kodak-2383", "Kodak Vision 2383 print film", "print_film.kodak_2383", "KODAK_2383", "colour", "film"),
    Print("kodak-polymax", "Kodak Polymax fine-art paper, grade 2",
          "bw_print_film.kodak_polymax_fine_art", "KODAK_POLYMAX_GRADE_2", "bw", "paper"),
    Print("kodak-2302", "Kodak 2302 black-and-white print film",
          "bw_print_film.kodak_2302", "KODAK_2302", "bw", "film"),
)

NONE = "none"
STOCK_IDS = tuple(s.id for s in STOCKS)
PRINT_CHOICES = ("auto", "scan") + tuple(p.id for p in PRINTS)
DEFAULT_STOCK = "portra-400"


def stock(stock_id: str) -> Stock:
    for s in STOCKS:
        if s.id == stock_id:
            return s
    raise UserError(f"unknown film stock '{stock_id}' (one of {', '.join(STOCK_IDS)}, none)", "bad-parameter")


def print_stock(print_id: str) -> Print:
    for p in PRINTS:
        if p.id == print_id:
            return p
    raise UserError(f"unknown print '{print_id}' (one of {', '.join(PRINT_CHOICES)})", "bad-parameter")


# ---------------------------------------------------------------------------------------------------------------
# Reading the data modules

_IMPORT_LOCK = threading.Lock()


def _import(module: str):
    """Import spectral_film_lut.<module> quietly, and undo its config's process-wide float32 switch."""
    with _IMPORT_LOCK:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(f"{PACKAGE}.{module}")
        except ImportError as exc:
            raise UserError(f"the film stock data package is missing ({exc}): install it with "
                            f"'python -m pip install --no-deps spectral-film-lut=={PACKAGE_PIN}' "
                            f"(or re-run install.py)", "missing-model") from None
        _restore_colour_precision()
    return mod


def _restore_colour_precision() -> None:
    from ...imaging import colorimetry
    colour = colorimetry.colour_module()
    if colour.constants.DTYPE_FLOAT_DEFAULT is not np.float64:
        colour.utilities.set_default_float_dtype(np.float64)


def package_version() -> str:
    """The installed spectral-film-lut version (part of every LUT cache key)."""
    try:
        from importlib.metadata import version
        return version("spectral-film-lut")
    except Exception:  # noqa: BLE001 - not installed: the import in _import says so with the fix
        return "missing"


@functools.lru_cache(maxsize=1)
def densitometry() -> Dict[str, np.ndarray]:
    """The ISO 5-3 Status A and Status M responses on the 10 nm grid (41 × 3, red, green, blue)."""
    mod = _import("densiometry")
    return {"status_a": np.asarray(mod.STATUS_A, np.float64), "status_m": np.asarray(mod.STATUS_M, np.float64)}


@dataclass(frozen=True)
class Datasheet:
    name: str
    kind: str                          # 'negative', 'slide', 'bw', or a print's 'colour' / 'bw'
    layers: int                        # 3 or 1
    density_measure: str               # 'status_m', 'status_a' or 'bw'
    curves: Tuple[Tuple[np.ndarray, np.ndarray], ...]   # per layer (log10 H, density), log H ascending
    relative_exposure: bool            # curves in log10 units relative to the normal exposure (sheet in stops)
    sensitivity: np.ndarray            # (layers, 41)
    dyes: Optional[np.ndarray]         # (layers, 41) or None
    d_min: Optional[np.ndarray]        # (41,) spectral minimum density, or None
    d_ref: Optional[np.ndarray]        # (41,) spectral mid-scale neutral density, or None
    granularity: Tuple[Tuple[np.ndarray, np.ndarray], ...]  # per layer (channel density, RMS), density ascending
    rms: Optional[float]               # RMS granularity × 1000 at density 1.0 (48 µm), as quoted
    iso: Optional[float]
    exposure_kelvin: float
    projection_kelvin: float
    interimage: float                  # sheet's colour-masking strength (0 when not given)


def _table(d: Dict[float, float]) -> Tuple[np.ndarray, np.ndarray]:
    x = np.array(sorted(d), np.float64)
    return x, np.array([d[k] for k in sorted(d)], np.float64)


MAX_RMS = 0.1   # a granularity chart value above 0.1 density is a digitising slip (one sheet has 1.05)


def _granularity(film) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """Per layer (channel density, RMS granularity): the sheet's RMS chart and density chart share their
    exposure axis, so each RMS sample is paired with the density at its exposure."""
    if not film.rms_curve or not film.rms_density:
        return ()
    out = []
    for rc, rd in zip(film.rms_curve, film.rms_density):
        xr, rms = _table(rc)
        xd, dens = _table(rd)
        d = np.interp(xr, xd, dens)
        keep = (rms > 0) & (rms < MAX_RMS)
        d, rms = d[keep], rms[keep]
        order = np.argsort(d, kind="stable")
        d, rms = d[order], rms[order]
        d, idx = np.unique(d, return_index=True)
        out.append((d, rms[idx]))
    return tuple(out)


def _datasheet(film, kind: str) -> Datasheet:
    layers = len(film.sensiometric_curve)
    base2 = film.exposure_base == 2
    curves = []
    for c in film.sensiometric_curve:
        x, y = _table(c)
        if base2:
            x = x * np.log10(2.0)   # stops -> log10 units, still relative to the normal exposure
        curves.append((x, y))
    sens = np.stack([spectral.log_sensitivity(t) for t in film.log_sensitivity])
    dyes = None
    if film.spectral_density is not None:
        dyes = np.stack([spectral.resample(t) for t in film.spectral_density])
    return Datasheet(
        name=film.name, kind=kind, layers=layers,
        density_measure=film.density_measure if film.density_measure in ("status_m", "status_a") else "bw",
        curves=tuple(curves), relative_exposure=base2, sensitivity=sens, dyes=dyes,
        d_min=None if film.d_min_sd is None else spectral.resample(film.d_min_sd),
        d_ref=None if film.d_ref_sd is None else spectral.resample(film.d_ref_sd),
        granularity=_granularity(film), rms=None if film.rms is None else float(film.rms),
        iso=None if film.iso is None else float(film.iso),
        exposure_kelvin=float(film.exposure_kelvin), projection_kelvin=float(film.projection_kelvin),
        interimage=float(film.color_masking or 0.0))


@functools.lru_cache(maxsize=64)
def camera_datasheet(stock_id: str) -> Datasheet:
    s = stock(stock_id)
    return _datasheet(getattr(_import(s.module), s.attr), s.kind)


@functools.lru_cache(maxsize=16)
def print_datasheet(print_id: str) -> Datasheet:
    p = print_stock(print_id)
    return _datasheet(getattr(_import(p.module), p.attr), p.kind)


def resolve_print(s: Stock, choice: str) -> str:
    """The print a stock is shown through: its default for 'auto', 'scan', or a named print."""
    if s.kind == "slide":
        if choice not in ("auto",):
            raise UserError(f"{s.title} is a slide (reversal) film, viewed directly: it takes no print "
                            f"(leave print on auto)", "bad-parameter")
        return ""
    if choice == "auto":
        return s.print_id
    if choice != "scan":
        print_stock(choice)
    return choice


def credits() -> List[str]:
    return [f"film stock datasheets: spectral-film-lut {PACKAGE_PIN} (MIT, Jan Lohse)"]
