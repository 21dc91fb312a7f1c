"""The benches' plots: a bench turns its own results into a `Figure` (typed data: panels of
lines or of grouped bars, every value taken from the run) and `save` draws it as a PNG, so that
a picture in docs/ always comes from the run whose tables it sits beside.

Drawn with matplotlib's Agg backend (files, no display). In this process where its Python has
matplotlib (.venv has it, through mlflow); else by the Python of a virtualenv of its own, made
from bench/plot-requirements.txt on first use, to which the figure goes as JSON:

    python bench/plotting.py figure.json out.png

For that this file imports nothing of the project and nothing but the standard library at the
top (matplotlib inside `draw`): that virtualenv has matplotlib only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

REQUIREMENTS = Path(__file__).resolve().parent / "plot-requirements.txt"


@dataclass(frozen=True)
class Series:
    """One line, or one bar of each group: a value per x, None where nothing was measured."""

    label: str
    values: tuple[float | None, ...]
    notes: tuple[str, ...] | None = None  # written above each bar instead of its value
    color: str | None = None  # a matplotlib colour; None: "C<n>" for the panel's n-th series
    linestyle: str = "-"  # lines only: "-", "--", ":"


@dataclass(frozen=True)
class Panel:
    """One chart: `x` are its categories (bars) or its ticks, evenly spaced (lines), so that
    concurrencies 1, 4, 16, 64 read as a log scale."""

    title: str
    kind: Literal["lines", "bars"]
    x: tuple[str, ...]
    series: tuple[Series, ...]
    ylabel: str
    xlabel: str = ""
    log_y: bool = False
    ylim: tuple[float, float] | None = None
    hline: tuple[float, str] | None = None  # a threshold drawn across: (value, its label)
    legend: Literal["below", "right", "none"] = "below"  # "none": another panel's says it


@dataclass(frozen=True)
class Figure:
    """Panels in rows of `columns`, under one title (what was run, and when)."""

    title: str
    panels: tuple[Panel, ...]
    columns: int = 1
    panel_size: tuple[float, float] = field(default=(11.0, 4.2))  # inches, each panel

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Figure:
        data = json.loads(text)
        panels = tuple(
            Panel(
                **{
                    **panel,
                    "x": tuple(panel["x"]),
                    "series": tuple(
                        Series(
                            **{
                                **s,
                                "values": tuple(s["values"]),
                                "notes": None if s["notes"] is None else tuple(s["notes"]),
                            }
                        )
                        for s in panel["series"]
                    ),
                    "ylim": None if panel["ylim"] is None else tuple(panel["ylim"]),
                    "hline": None if panel["hline"] is None else tuple(panel["hline"]),
                }
            )
            for panel in data["panels"]
        )
        return cls(data["title"], panels, data["columns"], tuple(data["panel_size"]))


def rate_label(value: float | None) -> str:
    """A bar's label: "n/a" where not measured, whole numbers from 10 up, else one decimal."""
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def draw(figure: Figure, out: Path) -> None:
    """Draws `figure` into the PNG `out` with matplotlib (Agg) in this process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(figure.panels) // figure.columns)
    width, height = figure.panel_size
    canvas, axes = plt.subplots(
        rows,
        figure.columns,
        figsize=(width * figure.columns, height * rows),
        squeeze=False,
        constrained_layout=True,
    )
    if figure.title:  # wrapped to the canvas: about 11 characters an inch at this size
        canvas.suptitle(textwrap.fill(figure.title, int(11 * width * figure.columns)), fontsize=11)
    cells = axes.reshape(-1)
    for axis, panel in zip(cells, figure.panels, strict=False):
        (bars if panel.kind == "bars" else lines)(axis, panel)
        axis.set_xticks(range(len(panel.x)), panel.x)
        axis.set_ylabel(panel.ylabel)
        axis.set_xlabel(panel.xlabel)
        axis.set_title(panel.title, fontsize=10)
        axis.grid(axis="y", alpha=0.3, which="both")
        if panel.log_y:
            axis.set_yscale("log")
        if panel.ylim is not None:
            axis.set_ylim(*panel.ylim)
        if panel.hline is not None:  # said in the legend: a label on the line hides bars
            axis.axhline(
                panel.hline[0], color="0.3", linestyle="--", linewidth=1, label=panel.hline[1]
            )
        if panel.legend == "right":
            axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        elif panel.legend == "below":
            # below the tick labels (as many lines as the longest) and the axis' label
            depth = max((label.count("\n") for label in panel.x), default=0)
            axis.legend(
                fontsize=8,
                ncol=min(len(panel.series) + (panel.hline is not None), 4),
                loc="upper center",
                bbox_to_anchor=(0.5, -0.1 - 0.06 * depth - (0.08 if panel.xlabel else 0.0)),
            )
    for axis in cells[len(figure.panels) :]:
        axis.set_visible(False)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.savefig(out, dpi=110)
    plt.close(canvas)


def colour(series: Series, index: int) -> str:
    """The series' own colour, else its place's in matplotlib's cycle: a colour given to one
    series does not advance the cycle, so leaving it to matplotlib would repeat one."""
    return series.color or f"C{index % 10}"


def bars(axis, panel: Panel) -> None:
    """A group of bars per x, a bar per series, each labelled (its value, or its note); where
    nothing was measured, no bar and "n/a" at the foot of the axis, whatever its limits."""
    width = 0.8 / max(1, len(panel.series))
    for index, series in enumerate(panel.series):
        offset = (index - (len(panel.series) - 1) / 2) * width
        places = [x + offset for x in range(len(panel.x))]
        heights = [0.0 if value is None else value for value in series.values]
        drawn = axis.bar(places, heights, width, label=series.label, color=colour(series, index))
        notes = series.notes or tuple(rate_label(value) for value in series.values)
        labels = [
            "" if value is None else note for value, note in zip(series.values, notes, strict=True)
        ]
        axis.bar_label(drawn, labels=labels, fontsize=7)
        for place, value in zip(places, series.values, strict=True):
            if value is None:
                axis.annotate(
                    "n/a",
                    (place, 0),
                    xycoords=("data", "axes fraction"),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                )
    axis.margins(y=0.12)  # room above the highest bar for its label


def lines(axis, panel: Panel) -> None:
    """A line per series across the x ticks; a value not measured leaves a gap."""
    for index, series in enumerate(panel.series):
        axis.plot(
            range(len(panel.x)),
            [float("nan") if value is None else value for value in series.values],
            label=series.label,
            color=colour(series, index),
            linestyle=series.linestyle,
            marker="o",
            markersize=4,
        )


def matplotlib_version() -> str | None:
    """This Python's matplotlib, None when it has none."""
    try:
        import matplotlib
    except ImportError:
        return None
    return matplotlib.__version__


def save(figure: Figure, out: Path) -> str:
    """Draws `figure` into `out`; returns which matplotlib drew it, for the results to say."""
    version = matplotlib_version()
    if version is not None:
        draw(figure, out)
        return f"this Python's matplotlib {version}"
    from bench.virtualenvs import cache_root, ensure

    python = ensure(REQUIREMENTS, cache_root() / "plot") / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="bench-plot-") as scratch:
        source = Path(scratch) / "figure.json"
        source.write_text(figure.to_json())
        subprocess.run([str(python), __file__, str(source), str(out)], check=True)
    return f"the matplotlib of a virtualenv made from bench/{REQUIREMENTS.name}"


def main(source: str, out: str) -> None:
    draw(Figure.from_json(Path(source).read_text()), Path(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
