"""Sweep progress that reads well in a terminal and in a log file (a SLURM job's stdout).

Every cell starts with a line naming it (``[3/54] ViT-B-16:openai · imagenet · 16/32/64/128/hr``). In a
terminal Lightning's bar shows the batches; when stdout is not a terminal the bar is off and plain lines
come every ``every`` seconds instead: images done, images per second, the cell's and the sweep's ETA.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from lightning.pytorch.callbacks import Callback


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class SweepProgress(Callback):
    """Names each (model, dataset) cell and, off a terminal, prints periodic progress lines.

    Args:
        total_cells: cells of this sweep (or shard), skipped ones included.
        log: where lines go (``print`` by default).
        every: seconds between progress lines when not interactive.
        interactive: whether stdout is a terminal (default: detected); decides between Lightning's bar and
            plain lines.
    """

    def __init__(
        self,
        total_cells: int,
        *,
        log: Callable[[str], None] = print,
        every: float = 30.0,
        interactive: bool | None = None,
    ) -> None:
        self.total_cells = total_cells
        self.write = log
        self.every = every
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.cells_done = 0
        self.sweep_start = time.perf_counter()
        self.measured_seconds = 0.0
        self.measured_cells = 0
        self.model = ""
        self.tasks: Sequence = ()
        self._current = -1

    def skip_cells(self, count: int) -> None:
        """Count cells that need no measuring (already in the results)."""
        self.cells_done += count

    def start_model(self, label: str, tasks: Sequence) -> None:
        """The next ``validate`` scores ``label`` on ``tasks`` (one dataloader each)."""
        self.model, self.tasks, self._current = label, tasks, -1

    def _begin_cell(self, index: int) -> None:
        self._current = index
        self.cell_start = self.last_line = time.perf_counter()
        self.images = 0
        task = self.tasks[index]
        resolutions = "/".join(str(r) for r in task.resolutions)
        self.write(f"[{self.cells_done + 1}/{self.total_cells}] {self.model} · {task.name} · {resolutions}")

    def _end_cell(self) -> None:
        if self._current >= 0:
            self.measured_seconds += time.perf_counter() - self.cell_start
            self.measured_cells += 1
            self.cells_done += 1
            self._current = -1

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        """A batch of a new dataset starts a new cell."""
        if not trainer.is_global_zero or batch[4] == self._current:
            return
        self._end_cell()
        self._begin_cell(batch[4])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Count the batch's images; off a terminal, print a line every ``every`` seconds."""
        if not trainer.is_global_zero:
            return
        labels, corrupt = batch[1], batch[3]
        self.images += (0 if labels is None else len(labels)) + len(corrupt)
        now = time.perf_counter()
        if self.interactive or now - self.last_line < self.every:
            return
        self.last_line = now
        task = self.tasks[batch[4]]
        size = len(task.dataset)
        # this rank scores 1/world_size of the images: scale to the whole dataset
        done = min(size, self.images * trainer.world_size)
        rate = done / max(now - self.cell_start, 1e-9)
        cell_eta = (size - done) / rate if rate else float("nan")
        fraction = done / size if size else 1.0
        per_cell = (self.measured_seconds + now - self.cell_start) / (self.measured_cells + fraction)
        sweep_eta = cell_eta + per_cell * (self.total_cells - self.cells_done - 1)
        self.write(
            f"  {self.model} · {task.name}: {done}/{size} images, {rate:.1f} img/s, "
            f"cell ETA {_duration(cell_eta)}, sweep ETA {_duration(sweep_eta)}"
        )

    def on_validation_end(self, trainer, pl_module) -> None:
        """The model's last cell is done."""
        if trainer.is_global_zero:
            self._end_cell()
