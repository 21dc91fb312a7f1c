"""`--help` of both programs prints every option of their settings tables, the tables
docs/configuration.md is written from (argparse %-formats help texts, so a literal "%" once
crashed the predictor's)."""

from __future__ import annotations

import subprocess
import sys

from auth_proxy.settings import VARIABLES
from predictor.settings import OPTIONS
from support.servers import ROOT


def help_of(module: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_predictors_help_lists_every_option_and_variable():
    text = help_of("predictor")
    assert "--http_port" in text  # KServe's own flags too
    for option in OPTIONS:
        assert option.flag in text
        for variable in option.variables:
            assert variable in text
    assert "95 %" in text  # the help text that crashed argparse, printed as written


def test_the_proxys_help_lists_every_variable_with_its_default():
    text = help_of("auth_proxy")
    for variable in VARIABLES:
        assert variable.name in text
    assert "OAUTH2_ISSUER" in text and "(default: required)" in text
    assert "PUBLIC_DOCS" in text and "(default: true)" in text
