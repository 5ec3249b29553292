"""``index.html``: one self-contained page of a report folder (no network: styles and scripts inline, images beside).

It shows the summary tables of ``report.json`` (sortable by clicking a heading), every figure of the folder's
``figures.json`` grouped by section (with its caption, the command that regenerates it, and links to its SVG
and CSV), the run metadata and the notes. The page checks itself when loaded: images that failed to load and
script errors are recorded as ``data-broken-images`` / ``data-errors`` attributes of ``<body>`` (read by the
browser test).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lr0fm.analysis.figures import FigureRecord, read_manifest
from lr0fm.analysis.sections import REPORT_DATA, SECTIONS, TABLE_ANALYSIS_MODULES
from lr0fm.atomic import write_text_atomic

INDEX = "index.html"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafafa; }
header, main, footer { max-width: 1280px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 1.6em; margin-bottom: 4px; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
nav ul { columns: 3; padding-left: 18px; }
figure { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; margin: 18px 0; padding: 12px 16px; }
figure h3 { margin: 0 0 8px; font-size: 1.05em; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { margin-top: 8px; font-size: 0.92em; }
code { background: #f0f0f0; padding: 1px 4px; border-radius: 3px; font-size: 0.88em; word-break: break-all; }
.links a { margin-right: 10px; }
.missing { color: #a00; }
.tablewrap { overflow-x: auto; max-height: 560px; overflow-y: auto; border: 1px solid #e2e2e2; background: #fff; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { position: sticky; top: 0; background: #f3f3f3; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td:first-child, th:first-child, td.text { text-align: left; }
table.meta th { position: static; cursor: default; text-align: left; background: none; }
table.meta td { text-align: left; white-space: normal; }
.notes li { color: #6a4a00; }
footer { color: #777; font-size: 0.85em; padding-bottom: 30px; }
"""

#: records script errors from the start (first script of the page)
_ERRORS_JS = """
window.__lr0fmErrors = [];
window.addEventListener("error", function (e) {
  if (e.target && e.target !== window && e.target.tagName) { return; }  // resource errors: checked on load
  window.__lr0fmErrors.push(String(e.message || e));
}, true);
"""

#: sortable tables, and the page's own load check
_MAIN_JS = """
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-v");
    return v === null ? cell.textContent.trim().toLowerCase() : (v === "" ? NaN : parseFloat(v));
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.title = "sort";
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          var xn = typeof x === "number" && isNaN(x), yn = typeof y === "number" && isNaN(y);
          if (xn || yn) { return xn - yn; }  // empty cells last either way
          var c = x < y ? -1 : (x > y ? 1 : 0);
          return ascending ? c : -c;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  window.addEventListener("load", function () {
    var broken = [];
    Array.prototype.forEach.call(document.images, function (img) {
      if (!img.complete || img.naturalWidth === 0) { broken.push(img.getAttribute("src")); }
    });
    document.body.setAttribute("data-images", String(document.images.length));
    document.body.setAttribute("data-broken-images", broken.join(" "));
    document.body.setAttribute("data-errors", window.__lr0fmErrors.join(" | "));
    document.body.setAttribute("data-checked", "yes");
  });
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def ordered_sections(records: Sequence[FigureRecord]) -> list[tuple[str, list[FigureRecord]]]:
    """Records grouped by section: the report's sections first, in order, then the others as they appear."""
    order = {name: i for i, name in enumerate(TABLE_ANALYSIS_MODULES)}
    names = [s for s in SECTIONS if any(r.section == s for r in records)]
    names += [s for s in dict.fromkeys(r.section for r in records) if s not in names]
    out = []
    for section in names:
        members = [(i, r) for i, r in enumerate(records) if r.section == section]
        members.sort(key=lambda x: (order.get(x[1].analysis, len(order)), x[0]))
        out.append((section, [r for _, r in members]))
    return out


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f'<td class="text">{_e(value)}</td>'
    return f'<td data-v="{value!r}">{value!r}</td>'


def table_html(table: dict[str, Any]) -> str:
    """One sortable table of ``report.json``."""
    head = "".join(f"<th>{_e(c)}</th>" for c in table["columns"])
    body = "\n".join(
        "<tr>" + "".join(_cell(v) if v is not None else '<td data-v=""></td>' for v in row) + "</tr>"
        for row in table["rows"]
    )
    return (
        f'<h3 id="table-{_e(table["id"])}">{_e(table["title"])}</h3>\n<p>{_e(table.get("caption", ""))}</p>\n'
        f'<div class="tablewrap"><table class="sortable" data-table="{_e(table["id"])}">'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )


def figure_html(record: FigureRecord, folder: Path) -> str:
    """One figure: title, image (or why it is missing), caption, command, and links to its files."""
    png = next((f for f in record.files if f.endswith(".png")), f"{record.name}.png")
    links = " ".join(
        f'<a href="{_e(f)}">{_e(f.rsplit(".", 1)[-1].upper())}</a>'
        for f in record.files
        if not f.endswith(".png") and (folder / f).is_file()
    )
    if (folder / png).is_file():
        image = f'<a href="{_e(png)}"><img src="{_e(png)}" alt="{_e(record.title)}"></a>'
    else:
        image = f'<p class="missing">{_e(png)} is missing: regenerate it with the command below.</p>'
    return (
        f'<figure id="fig-{_e(record.name)}" data-figure="{_e(record.name)}">\n<h3>{_e(record.title)}</h3>\n'
        f"{image}\n<figcaption>{_e(record.caption)}<br>regenerate: <code>{_e(record.command)}</code>"
        f'<br><span class="links">{links}</span></figcaption>\n</figure>'
    )


def render_index(folder: Path, data: dict[str, Any], records: Sequence[FigureRecord]) -> str:
    """The page's HTML."""
    sections = ordered_sections(records)
    tables = data.get("tables", [])
    title = data.get("title", f"lr0fm report: {folder.name}")
    toc = ['<li><a href="#run">Run</a></li>']
    toc += [f'<li><a href="#table-{_e(t["id"])}">{_e(t["title"])}</a></li>' for t in tables]
    toc += [f'<li><a href="#{_anchor(s)}">{_e(s)} ({len(r)})</a></li>' for s, r in sections]
    meta = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in data.get("metadata", []))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_ERRORS_JS}</script>",
        "</head>",
        "<body>",
        f"<header><h1>{_e(title)}</h1>",
        "<p>Low-resolution robustness of zero-shot vision-language models: the LR0.FM analyses of this results "
        f"table ({sum(len(r) for _, r in sections)} figures). Regenerate the page with "
        f"<code>{_e(data.get('command', 'lr0fm report'))}</code>.</p>",
        f"<nav><ul>{''.join(toc)}</ul></nav></header>",
        "<main>",
        f'<h2 id="run">Run</h2>\n<table class="meta">{meta}</table>',
    ]
    if data.get("notes"):
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in data["notes"]) + "</ul>")
    if tables:
        parts.append('<h2 id="tables">Summary tables</h2>')
        parts += [table_html(t) for t in tables]
    for section, members in sections:
        parts.append(f'<section id="{_anchor(section)}" data-section="{_e(section)}"><h2>{_e(section)}</h2>')
        parts += [figure_html(r, folder) for r in members]
        parts.append("</section>")
    parts += [
        "</main>",
        "<footer>Made by <code>lr0fm report</code>; each figure as PNG (shown), SVG, and the CSV of the data "
        "drawn.</footer>",
        f"<script>{_MAIN_JS}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_index(folder: str | Path) -> Path:
    """Write ``folder/index.html`` from its ``report.json`` (if any) and ``figures.json``; return the path.

    Model analyses that add figures to a report folder call this to refresh the page.
    """
    folder = Path(folder)
    data_path = folder / REPORT_DATA
    data = json.loads(data_path.read_text(encoding="utf-8")) if data_path.is_file() else {}
    return write_text_atomic(folder / INDEX, render_index(folder, data, read_manifest(folder)))
