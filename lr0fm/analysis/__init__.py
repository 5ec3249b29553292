"""The paper's analyses: one small module per analysis, each registered in :data:`ANALYSES`.

Two kinds (the ``kind`` metadata of an entry):

* ``"table"``: needs only results tables (a benchmark output folder, ``results.csv``, or the shipped
  published table) and, optionally, the backbone table; run by ``lr0fm report``;
* ``"model"``: needs a backbone and images (layer similarity, feature t-SNE, Grad-CAM, mispredictions).

Every analysis writes its figures with :mod:`lr0fm.analysis.figures`: PNG, SVG, the data behind the figure as
CSV, and a :class:`~lr0fm.analysis.figures.FigureRecord` in the output folder's ``figures.json`` manifest,
from which ``index.html`` is built.
"""

from __future__ import annotations

from lr0fm.registry import Registry

#: name -> analysis callable; metadata ``kind`` ("table" or "model") and ``title``.
ANALYSES: Registry = Registry("analysis")
