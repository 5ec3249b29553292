"""Regenerate ``docs/report/``: ``lr0fm report`` of the shipped published table, slimmed for the repository.

Run with ``make docs-report`` (or ``python docs/build_report.py``). It runs ``lr0fm report lr0fm66 --output
docs/report``, then keeps the page, its data files and every figure's PNG re-encoded with a 256-colour palette
(about a third of the size; mean pixel error 0.4/255, family colours kept); the SVGs and the figure CSVs over
100 kB are left out (``lr0fm report lr0fm66`` writes them all), and the page is rewritten to link only the
files kept.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("docs") / "report"
#: figure CSVs larger than this stay out of the repository
MAX_CSV_BYTES = 100_000


def shrink_png(path: Path, colors: int = 256) -> None:
    """Re-encode ``path`` with an adaptive palette of ``colors`` colours (no dithering), in place.

    Max-coverage with k-means refinement keeps the few flat colours of a plot (median cut shifts them).
    """
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    palette = rgb.quantize(colors=colors, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE, kmeans=3)
    palette.save(path, "PNG", optimize=True)


def main() -> int:
    """Build the report into ``docs/report`` from the repository root."""
    from lr0fm.analysis.html import write_index
    from lr0fm.cli import main as lr0fm

    out = ROOT / OUT
    shutil.rmtree(out, ignore_errors=True)
    os.chdir(ROOT)  # the page's commands read `--output docs/report`
    code = lr0fm(["report", "lr0fm66", "--output", str(OUT)])
    if code:
        return code
    for path in out.iterdir():
        if path.suffix == ".svg" or (path.suffix == ".csv" and path.stat().st_size > MAX_CSV_BYTES):
            path.unlink()
        elif path.suffix == ".png":
            shrink_png(path)
    write_index(out)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"docs/report: {len(list(out.iterdir()))} files, {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
