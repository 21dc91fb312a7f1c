"""docs/configuration.md, written from the two settings tables: nothing to keep in sync by hand.

    python -m tools.config_docs           # rewrite docs/configuration.md
    python -m tools.config_docs --check   # exit 1, with a diff, when the page is stale

The predictor's `OPTIONS` (predictor/settings.py) and the proxy's `VARIABLES`
(auth-proxy/auth_proxy/settings.py) each become one table: variable, flag where there is one,
default, and the setting's help as "what it does". The prose around them is
tools/config_docs.template.md, whose `{{predictor}}` and `{{auth-proxy}}` lines the tables
replace. To change what a setting says, edit its help in its table, then run this; the unit
test tests/tools/test_config_docs.py fails while the committed page differs from what this
writes.

The page must read the same on every machine, so no default is computed here: a default the
program computes at start-up (a function) is shown by the words in `COMPUTED`, and a new one
without words there stops the generator rather than print this machine's CPU count or home.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"
TEMPLATE = Path(__file__).with_name("config_docs.template.md")
COMMAND = "python -m tools.config_docs"

# Defaults computed at start-up, by the function's name: what the page says instead.
COMPUTED: dict[str, str] = {
    "available_cpus": "the container's CPUs",
    "default_cache_dir": "`~/.cache/cats-dogs-other/models` (`$XDG_CACHE_HOME` for `~/.cache`)",
}

NOTICE = (
    "<!-- Written by `{command}` from the settings tables (predictor/settings.py,\n"
    "     auth-proxy/auth_proxy/settings.py) and tools/config_docs.template.md: edit those,\n"
    "     then run it; not by hand. -->\n\n"
)

# In help texts: flags and environment variables become code; the rest is escaped text.
_CODE = re.compile(r"(?<![\w-])--[a-z][a-z0-9_]*|\b[A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9]\b")
_SPECIAL = re.compile(r"[\\`*|<>\[\]]|(?<!\w)_|_(?!\w)")
_ENTITIES = {"<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """Plain text as Markdown shows it literally, in a table cell too."""
    return _SPECIAL.sub(lambda m: _ENTITIES.get(m[0], "\\" + m[0]), text)


def code(text: str) -> str:
    """`text` as a code span (no help text or default holds a backtick)."""
    if "`" in text:
        raise ValueError(f"a backtick in {text!r}: write it without one")
    return f"`{text}`"


def prose(help_text: str) -> str:
    """A help text in Markdown: flags and variables as code, everything else literal."""
    out, at = [], 0
    for match in _CODE.finditer(help_text):
        out += [escape(help_text[at : match.start()]), code(match[0])]
        at = match.end()
    return "".join([*out, escape(help_text[at:])])


def size(value: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= factor and value % factor == 0:
            return f"{value // factor} {unit}"
    return ""


def shown(value: Any, name: str, nothing: str = "none") -> str:
    """A default as the page shows it: what one would write in the variable, never computed."""
    if callable(value) and not isinstance(value, type):
        words = COMPUTED.get(getattr(value, "__name__", ""))
        if words is None:
            raise ValueError(
                f"{name}'s default is computed at start-up by {value!r}: say in words how, "
                "in COMPUTED (tools/config_docs.py)"
            )
        return words
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        human = size(value) if name.endswith("_BYTES") else ""
        return code(str(value)) + (f" ({human})" if human else "")
    if isinstance(value, Path):
        try:
            return code(f"{value.resolve().relative_to(ROOT)}/")
        except ValueError:
            raise ValueError(f"{name}'s default {value} lies outside the repository") from None
    if isinstance(value, tuple | list):
        value = ",".join(map(str, value))
    if value == "":
        return nothing
    return code(str(value))


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def predictor_table() -> str:
    from predictor.settings import OPTIONS

    rows = []
    for option in OPTIONS:
        names = ", else ".join(code(name) for name in option.variables)
        rows.append(
            (
                names,
                code(option.flag),
                shown(option.default, option.variables[0]),
                prose(option.help),
            )
        )
    return table(("variable", "flag", "default", "what it does"), rows)


def proxy_table() -> str:
    from auth_proxy.settings import REQUIRED, VARIABLES

    rows = []
    for variable in VARIABLES:
        default = "**required**" if variable.default is REQUIRED else None
        rows.append(
            (
                code(variable.name),
                default or shown(variable.default, variable.name),
                prose(variable.help),
            )
        )
    return table(("variable", "default", "what it does"), rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "{{predictor}}": predictor_table,
    "{{auth-proxy}}": proxy_table,
}


def render(template: str | None = None) -> str:
    """The whole page: the notice, then the template with each table in its place."""
    text = TEMPLATE.read_text() if template is None else template
    lines = text.splitlines()
    for marker, make in SECTIONS.items():
        found = [i for i, line in enumerate(lines) if line.strip() == marker]
        if len(found) != 1:
            raise ValueError(f"the template must hold {marker} once, on a line of its own")
        lines[found[0]] = make()
    return NOTICE.format(command=COMMAND) + "\n".join(lines).rstrip("\n") + "\n"


def staleness(page: Path = PAGE, expected: str | None = None) -> str:
    """'' when `page` is what the generator writes, else a diff (page -> generated) saying so."""
    expected = render() if expected is None else expected
    current = page.read_text() if page.exists() else ""
    if current == expected:
        return ""
    where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        f"{where} (as it is)",
        f"{where} (as the settings tables say)",
    )
    return f"{where} is stale: run `{COMMAND}`, and commit the page.\n" + "".join(diff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when the page is stale"
    )
    parser.add_argument("--page", type=Path, default=PAGE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    expected = render()
    if args.check:
        stale = staleness(args.page, expected)
        if stale:
            print(stale, file=sys.stderr, end="")
            return 1
        print(f"{args.page.name} is up to date")
        return 0
    if args.page.exists() and args.page.read_text() == expected:
        print(f"{args.page.name} is up to date")
    else:
        args.page.write_text(expected)
        print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
