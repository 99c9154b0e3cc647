"""The training log: one CSV row per optimizer step, and a loss-curve picture.

In: `StepRecord`s (step, the step's mean loss, the learning rate it ran at, its wall-clock seconds).
Out: `<out>/train_log.csv` with the header `step,loss,lr,seconds` (floats written exactly, `repr`),
appended and flushed row by row; `plot_loss` draws `<out>/loss.png` (matplotlib's Agg canvas).
On resume, `TrainLog(path, keep_through_step=s)` first rewrites the file (atomically) with the rows up to
step s, dropping the steps a killed run logged after its last checkpoint, so the log reads as one run.
"""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from dvmset.storage import atomic_write_bytes, atomic_write_text

LOG_FILE = "train_log.csv"
PLOT_FILE = "loss.png"


@dataclass(frozen=True)
class StepRecord:
    step: int
    loss: float
    lr: float
    seconds: float


_COLUMNS = [f.name for f in fields(StepRecord)]


class TrainLog:
    """An append-only CSV of `StepRecord`s."""

    def __init__(self, path: Path, keep_through_step: int | None = None):
        self.path = Path(path)
        kept = [] if keep_through_step is None else [r for r in read_log(self.path) if r.step <= keep_through_step]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_COLUMNS)
        writer.writerows(_row(record) for record in kept)
        atomic_write_text(self.path, buffer.getvalue())

    def append(self, record: StepRecord) -> None:
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerow(_row(record))


def read_log(path: Path) -> list[StepRecord]:
    """The complete rows of a log (none when it is absent; a row cut off by a kill is skipped)."""
    if not Path(path).is_file():
        return []
    records = []
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                record = StepRecord(int(row["step"]), float(row["loss"]), float(row["lr"]), float(row["seconds"]))
            except (TypeError, ValueError):
                continue
            records.append(record)
    return records


def plot_loss(records: list[StepRecord], path: Path, title: str = "training loss") -> Path:
    """Draw loss against step into a PNG at `path` (atomically); returns `path`. Uses matplotlib's Agg
    canvas directly (no pyplot), so the process's matplotlib backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([r.step for r in records], [r.loss for r in records], linewidth=1.0)
    axes.set_xlabel("step")
    axes.set_ylabel("cross-entropy (mean over codebooks)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def _row(record: StepRecord) -> list[str]:
    return [repr(value) for value in astuple(record)]
