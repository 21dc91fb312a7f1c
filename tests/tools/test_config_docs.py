"""docs/configuration.md is what tools/config_docs.py writes from the two settings tables: a
help text changed without rewriting the page fails here, naming the command that fixes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_proxy.settings import VARIABLES
from predictor.settings import OPTIONS
from tools import config_docs

pytestmark = pytest.mark.unit


def test_the_committed_page_is_what_the_settings_tables_say():
    stale = config_docs.staleness()
    if stale:
        pytest.fail(stale, pytrace=False)


def test_every_setting_is_on_the_page_with_its_flag_and_variables():
    page = config_docs.PAGE.read_text()
    for option in OPTIONS:
        row = next(line for line in page.splitlines() if f"| `{option.flag}` |" in line)
        assert all(f"`{name}`" in row for name in option.variables), row
    for variable in VARIABLES:
        assert f"| `{variable.name}` |" in page


def test_check_fails_on_a_stale_page_and_says_how_to_fix_it(tmp_path: Path, capsys):
    page = tmp_path / "configuration.md"
    generated = config_docs.render()
    page.write_text(generated.replace("| `9080` |", "| `8888` |"))
    assert config_docs.main(["--check", "--page", str(page)]) == 1
    err = capsys.readouterr().err
    assert "is stale: run `python -m tools.config_docs`" in err
    assert "\n-| `PROXY_HTTP_PORT` | `8888` |" in err
    assert "\n+| `PROXY_HTTP_PORT` | `9080` |" in err
    assert config_docs.main(["--page", str(page)]) == 0  # rewritten
    assert config_docs.main(["--check", "--page", str(page)]) == 0


def test_the_page_shows_no_value_computed_on_this_machine():
    def hostname() -> str:
        return "build-42"

    with pytest.raises(ValueError, match="COMPUTED"):
        config_docs.shown(hostname, "HOSTNAME")
    assert config_docs.shown(Path(config_docs.ROOT / "tests" / "data"), "X") == "`tests/data/`"


@pytest.mark.parametrize(
    ("value", "name", "expected"),
    [
        (64 * 1024 * 1024, "MAX_BODY_BYTES", "`67108864` (64 MiB)"),
        (40_000_000, "MAX_IMAGE_PIXELS", "`40000000`"),
        (0, "MEMORY_BUDGET_BYTES", "`0`"),
        (300.0, "TTL_SECONDS", "`300`"),
        (2.5, "WAIT_MS", "`2.5`"),
        (False, "LOG_REQUESTS", "`false`"),
        ("", "MODEL_URI", "none"),
        ((), "TRUSTED_PROXIES", "none"),
        (("a", "b"), "NAMES", "`a,b`"),
    ],
)
def test_defaults_read_as_one_would_write_them(value, name, expected):
    assert config_docs.shown(value, name) == expected


def test_help_text_reads_literally_in_a_table_cell():
    text = "a | b, <issuer>, *x*, [::], _y_ and snake_case; --max_image_bytes or MAX_BODY_BYTES"
    assert config_docs.prose(text) == (
        r"a \| b, &lt;issuer&gt;, \*x\*, \[::\], \_y\_ and snake_case; "
        "`--max_image_bytes` or `MAX_BODY_BYTES`"
    )
    assert config_docs.prose("xn--bcher-kva") == "xn--bcher-kva"


def test_each_table_replaces_its_one_marker():
    page = config_docs.render("# T\n\n{{predictor}}\n\ntext\n\n{{auth-proxy}}\n")
    assert "| `--model_uri` |" in page and "| `OAUTH2_ISSUER` |" in page
    with pytest.raises(ValueError, match="once"):
        config_docs.render("{{predictor}}\n")
