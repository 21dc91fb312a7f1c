"""The benches' plots (bench/plotting.py): a figure becomes a real PNG with its lines and bars
in it, drawn in this process or, through its JSON, by the script a Python without matplotlib
hands it to; and each bench's figure carries its own run's numbers, in the order of its
tables, none made up (bench.throughput, bench.precision, bench.peers)."""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image

from bench import peers, plotting, precision, throughput

pytestmark = pytest.mark.unit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLUE = (0x1F, 0x77, 0xB4)  # matplotlib's C0
ORANGE = (0xFF, 0x7F, 0x0E)  # its C1


def sample_figure() -> plotting.Figure:
    return plotting.Figure(
        title="a sample run",
        panels=(
            plotting.Panel(
                title="lines",
                kind="lines",
                x=("1", "4", "16"),
                series=(
                    plotting.Series("a", (1.0, 2.0, None), color="C0"),
                    plotting.Series("b", (3.0, 1.0, 2.0), linestyle="--"),
                ),
                ylabel="images/s",
                xlabel="clients",
                log_y=True,
            ),
            plotting.Panel(
                title="bars",
                kind="bars",
                x=("int8\nserved", "bf16"),
                series=(
                    plotting.Series("agreement", (99.0, 100.0), notes=("99%", "100%")),
                    plotting.Series("bound", (None, 95.4), color="C1"),
                ),
                ylabel="%",
                ylim=(90.0, 101.0),
                hline=(95.0, "minimum"),
                legend="right",
            ),
            plotting.Panel(
                title="no legend", kind="bars", x=("x",), series=(), ylabel="", legend="none"
            ),
        ),
        columns=2,
        panel_size=(4.0, 3.0),
    )


def colour_pixels(png: bytes, colour: tuple[int, int, int]) -> int:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return sum(count for count, pixel in image.getcolors(1 << 20) or [] if pixel == colour)


def check_png(path: Path, size_inches: tuple[float, float]) -> bytes:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # axes, text and lines; an empty canvas compresses to ~2 KB
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (round(size_inches[0] * 110), round(size_inches[1] * 110))
    return data


def test_a_figure_is_drawn_into_a_png_of_its_size(tmp_path):
    out = tmp_path / "deeper" / "figure.png"  # its folder is made
    plotting.draw(sample_figure(), out)
    check_png(out, (8.0, 6.0))  # two columns of 4 x 3 inches, two rows


def data_only(
    kind: Literal["lines", "bars"], series: tuple[plotting.Series, ...]
) -> plotting.Figure:
    """One panel without a legend: every pixel of a series' colour is the data's."""
    panel = plotting.Panel("", kind, ("1", "4", "16"), series, "", legend="none")
    return plotting.Figure(title="", panels=(panel,), panel_size=(4.0, 3.0))


@pytest.mark.parametrize("kind, least", [("lines", 150), ("bars", 2000)])
def test_each_series_is_drawn_in_its_colour(tmp_path, kind, least):
    series = (
        plotting.Series("a", (1.0, 2.0, None), color="C0"),
        plotting.Series("b", (3.0, 1.0, 2.0)),  # the cycle's next: C1
    )
    plotting.draw(data_only(kind, series), tmp_path / "drawn.png")
    data = (tmp_path / "drawn.png").read_bytes()
    assert colour_pixels(data, BLUE) > least
    assert colour_pixels(data, ORANGE) > least
    plotting.draw(data_only(kind, ()), tmp_path / "empty.png")  # what the checks tell apart
    empty = (tmp_path / "empty.png").read_bytes()
    assert colour_pixels(empty, BLUE) == colour_pixels(empty, ORANGE) == 0


def test_save_draws_in_this_process_where_matplotlib_is_and_says_so(tmp_path):
    drawn = plotting.save(sample_figure(), tmp_path / "saved.png")
    assert drawn.startswith("this Python's matplotlib ")
    check_png(tmp_path / "saved.png", (8.0, 6.0))


def test_the_script_a_python_without_matplotlib_hands_over_to_draws_the_same_figure(tmp_path):
    """The fallback's path: the figure as JSON, read back equal, drawn by the script's main."""
    figure = sample_figure()
    assert plotting.Figure.from_json(figure.to_json()) == figure
    source = tmp_path / "figure.json"
    source.write_text(figure.to_json())
    plotting.main(str(source), str(tmp_path / "script.png"))
    plotting.draw(figure, tmp_path / "direct.png")
    assert (tmp_path / "script.png").read_bytes() == (tmp_path / "direct.png").read_bytes()


def test_bar_labels_say_n_a_where_nothing_was_measured():
    assert [plotting.rate_label(v) for v in (None, 7.26, 123.4)] == ["n/a", "7.3", "123"]


# -- bench.throughput ---------------------------------------------------------------------------


def row(rate: float, latency: float) -> dict:
    return {
        "rate": rate,
        "p50": latency,
        "p95": 2 * latency,
        "p99": 3 * latency,
        "failed": 0,
    }


def throughput_results() -> dict:
    """bench.throughput's results for one model, each number distinct: door, protocol and
    concurrency are read back from it."""
    service: dict = {}
    for d, door in enumerate(("direct", "proxy")):
        for p, protocol in enumerate(("REST JSON", "REST binary", "gRPC")):
            for c in throughput.CONCURRENCIES:
                service[(door, protocol, c)] = row(100 * d + 10 * p + c, 1000 * d + c)
    service["liveness p99"] = 7.0
    course: dict = {c: row(0.5 * c, 500 + c) for c in throughput.CONCURRENCIES}
    course[64]["p99"] = math.nan  # no request finished in the window
    course["liveness p99"] = 41.0
    return {"demo": {"service": service, "course": course}}


def test_throughputs_plot_has_a_line_per_configuration_of_the_runs_rates():
    figure = throughput.rate_figure(throughput_results(), "the run")
    (panel,) = figure.panels
    assert "the run" in figure.title and panel.title == "demo"
    assert panel.x == ("1", "4", "16", "64")
    lines = {s.label: s.values for s in panel.series}
    assert list(lines) == [
        "direct, REST JSON",
        "direct, REST binary",
        "direct, gRPC",
        "proxy, REST JSON",
        "proxy, REST binary",
        "proxy, gRPC",
        "course app, /upload",
    ]
    assert lines["direct, REST JSON"] == (1, 4, 16, 64)
    assert lines["proxy, gRPC"] == (121, 124, 136, 184)
    assert lines["course app, /upload"] == (0.5, 2, 8, 32)
    styles = {s.label: (s.color, s.linestyle) for s in panel.series}
    assert styles["direct, gRPC"] == ("C2", "-") and styles["proxy, gRPC"] == ("C2", "--")


def test_throughputs_latency_plot_has_a_panel_per_percentile_and_leaves_nan_out():
    figure = throughput.latency_figure(throughput_results(), "the run")
    assert [p.title for p in figure.panels] == ["demo: p50", "demo: p95", "demo: p99"]
    assert all(p.log_y for p in figure.panels) and figure.columns == 3
    p50, p95, p99 = ({s.label: s.values for s in p.series} for p in figure.panels)
    assert p50["proxy, REST binary"] == (1001, 1004, 1016, 1064)
    assert p95["direct, gRPC"] == (2, 8, 32, 128)
    assert p99["course app, /upload"] == (1503, 1512, 1548, None)


def test_throughputs_plots_are_drawn(tmp_path):
    results = throughput_results()
    plotting.draw(throughput.rate_figure(results, "run"), tmp_path / "rate.png")
    plotting.draw(throughput.latency_figure(results, "run"), tmp_path / "latency.png")
    check_png(tmp_path / "rate.png", (9.0, 4.5))
    check_png(tmp_path / "latency.png", (3 * 5.2, 4.8))


# -- bench.precision ----------------------------------------------------------------------------


def precision_result(served: str, scale: float, agreement: float | None, bound: float) -> dict:
    result = {
        "served precision": served,
        "cold": 20.0,
        "warm": 2.0,
        "ceiling": 100 * scale,
        "rows": {"REST binary": row(80 * scale, 100), "gRPC": row(90 * scale, 100)},
        "log": [],
    }
    if agreement is not None:
        result |= {"agreement": agreement, "accuracy": 1.0, "agreement bound": bound}
    return result


def precision_results() -> dict:
    return {
        "demo": {
            "fp32": precision_result("fp32", 1.0, 1.0, 0.953),
            "int8": precision_result("int8", 3.0, 62 / 63, 0.93),
            "bf16": precision_result("fp32", 2.0, None, 0.0),  # refused: served as FP32
        }
    }


def test_precisions_plot_shows_each_precisions_speed_with_its_ratio_to_fp32():
    figure = precision.figure(precision_results(), 63, "the run")
    speed, _ = figure.panels
    assert speed.x == ("ceiling (batch 8)", "REST binary c=16", "gRPC c=16")
    bars = {s.label: s for s in speed.series}
    assert list(bars) == ["fp32", "int8", "bf16 (served fp32)"]
    assert bars["int8"].values == (300, 240, 270)
    assert bars["int8"].notes == ("300\n3.00x", "240\n3.00x", "270\n3.00x")
    assert bars["fp32"].notes == ("100\n1.00x", "80\n1.00x", "90\n1.00x")
    assert bars["bf16 (served fp32)"].values == (200, 160, 180)


def test_precisions_plot_shows_the_guards_agreement_and_lower_bound_against_its_minimum():
    _, agreement = precision.figure(precision_results(), 63, "the run").panels
    assert agreement.x == ("int8", "bf16 (served fp32)")  # FP32 against itself is left out
    shares, bounds = agreement.series
    assert shares.values == pytest.approx((100 * 62 / 63, None), nan_ok=False)
    assert bounds.values == pytest.approx((93.0, None))
    assert shares.notes == ("98.4%", "n/a")
    assert agreement.hline is not None and agreement.hline[0] == pytest.approx(95.0)
    assert agreement.ylim == (85.0, 101.0)  # down to below the lowest bar: 93 %
    assert "63 photos" in agreement.title


def test_precisions_plot_is_drawn(tmp_path):
    plotting.draw(precision.figure(precision_results(), 63, "run"), tmp_path / "p.png")
    check_png(tmp_path / "p.png", (14.0, 4.5))


# -- bench.peers --------------------------------------------------------------------------------


def test_the_peers_plot_has_a_bar_per_server_of_its_rates_n_a_where_unmeasured(tmp_path):
    args = argparse.Namespace(
        seconds=2.0,
        servers=["ours", "mlserver", "kserve"],
        protocols=["grpc", "rest"],
        concurrency=[1, 16],
    )
    cells = {
        f"{p} c={c}": row(10 * i + 1, 5)
        for i, (p, c) in enumerate((p, c) for p in ("grpc", "rest") for c in (1, 16))
    }
    results = {
        "demo": {
            "ours": {"cells": cells},
            "mlserver": {"refused": "answers differ", "cells": {}},
            "kserve": {"error": "not ready"},
        }
    }
    figure = peers.figure(args, results)
    (panel,) = figure.panels
    assert panel.title == "demo: images/s, 2 s per cell (smoke run)"
    assert panel.x == ("gRPC\nc=1", "gRPC\nc=16", "REST JSON\nc=1", "REST JSON\nc=16")
    bars = {s.label: s.values for s in panel.series}
    assert bars == {
        "ours FP32": (1, 11, 21, 31),
        "MLServer": (None, None, None, None),
        "KServe": (None, None, None, None),
    }
    plotting.draw(figure, tmp_path / "peers.png")
    check_png(tmp_path / "peers.png", (11.0, 4.2))
