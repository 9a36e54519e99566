"""Render a leaderboard as one static HTML page (no network needed to open it).

The page is ``leaderboards/page/template.html`` with its CSS and JS inlined and the board embedded
as JSON (``<``, ``>`` and ``&`` escaped so no name can close the script tag); the JS builds the
sortable table and the per-model detail with ``textContent``, so markup in a name shows as text.
Each model's detail gets a score-vs-length picture drawn from the board itself (a PNG data URI);
``--plots DIR`` adds the ``evals plot`` pictures by relative path."""
from __future__ import annotations

import base64
from importlib import resources
import html
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from longctx.evals.plots.common import short_model, slug
from longctx.evals.aggregate import full_lengths
from longctx.evals.plots.length import AVERAGE, Series, plot_panels
from longctx.tasks.registry import GROUPS

PAGE_DIR = resources.files("longctx.evals") / "board" / "page"


FAMILIES = (("RULER tasks", set(GROUPS["ruler"])), ("MRCR", set(GROUPS["mrcr"])), ("recall decay", set(GROUPS["decay"])))


def _model_plot(entry: dict[str, Any], threshold: float) -> tuple[str, int]:
    """A PNG data URI and its panel count: this model's score vs context length in at most four panels (the RULER-style average
    when it covers two or more tasks, then one panel per task family with a line per task), two across,
    so it stays readable at page width however many tasks the model has."""
    avg = {int(k): v for k, v in entry["summary"]["ruler_average"].items()}
    used = {int(k): v for k, v in entry["summary"].get("ruler_average_tasks", {}).items()}
    keep = full_lengths(avg, used)
    panels: dict[str, list[Series]] = {}
    if keep and len(used.get(keep[0], ())) > 1:
        panels[AVERAGE] = [Series(short_model(entry["model"]), keep, [avg[c] for c in keep], [0] * len(keep))]
    for task, t in sorted(entry["tasks"].items()):
        family = panels.setdefault(next((name for name, members in FAMILIES if task in members), "other tasks"), [])
        ctxs = sorted(int(c) for c in t["scores"])
        cells = [t["scores"][str(c)] for c in ctxs]
        family.append(Series(task, ctxs, [c["score"] for c in cells], [c["n"] for c in cells], len(family)))
    with tempfile.TemporaryDirectory() as tmp:
        (path,) = plot_panels(panels, threshold, Path(tmp), "model", ("png",),
                              f"{short_model(entry['model'], 60)}: score vs context length", cols=2)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode(), len(panels)


def _plot_files(plots: Path | None) -> list[Path]:
    if plots is None or not plots.is_dir():
        return []
    files = {p.stem: p for p in sorted(plots.glob("*.svg"))}
    files.update({p.stem: p for p in sorted(plots.glob("*.png"))})  # PNG preferred where both exist
    return [files[k] for k in sorted(files)]


def bundle_plots(plots: Path, out_dir: Path) -> Path:
    """The folder a page in ``out_dir`` links its plots from: ``plots`` itself when it lies inside
    ``out_dir``, else ``out_dir/plots`` holding a copy of its pictures, so the folder can be served as is
    (a web server does not follow ``../`` out of the folder it serves)."""
    if plots.resolve().is_relative_to(out_dir.resolve()):
        return plots
    dest = out_dir / "plots"
    dest.mkdir(parents=True, exist_ok=True)
    for p in _plot_files(plots):
        shutil.copy2(p, dest / p.name)
    return dest


def images(board: dict[str, Any], page_dir: Path, plots: Path | None) -> dict[str, Any]:
    """{"general": [{title, src}], "models": {"<entry index>": [{title, src}]}}."""
    files = _plot_files(plots)
    rel = {p: Path(os.path.relpath(p.resolve(), page_dir.resolve())).as_posix() for p in files}
    models: dict[str, list[dict[str, str]]] = {}
    claimed: set[Path] = set()
    for i, e in enumerate(board["entries"]):
        own = [p for p in files if slug(e["model"]) in p.stem]
        claimed.update(own)
        src, panels = _model_plot(e, board["threshold"])
        models[str(i)] = [{"title": "score vs context length (from this board)", "src": src, "wide": panels > 1}]
        models[str(i)] += [{"title": p.stem, "src": rel[p]} for p in own]
    general = [{"title": p.stem, "src": rel[p]} for p in files if p not in claimed]
    return {"general": general, "models": models}


def _script_json(obj: Any) -> str:
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(board: dict[str, Any], page_dir: Path, plots: Path | None = None) -> str:
    """The whole page as a string; ``page_dir`` is where it will be written (for relative image paths)."""
    parts = {
        "TITLE": html.escape(f"Leaderboard: {board['name']}"),
        "CSS": (PAGE_DIR / "page.css").read_text(encoding="utf-8"),
        "JS": (PAGE_DIR / "page.js").read_text(encoding="utf-8"),
        "DATA": _script_json({"board": board, "images": images(board, page_dir, plots)}),
    }
    template = (PAGE_DIR / "template.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{(TITLE|CSS|JS|DATA)\}\}", lambda m: parts[m.group(1)], template)
