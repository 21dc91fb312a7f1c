"""The examples of "What it answers" in docs/protocol.md, run as they are written (only the
address and the photo's path given), against the real predictor: a user who pastes them gets
answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from support.images import CAT
from support.servers import ROOT
from support.v2_clients import CLIENTS_PYTHON

PAGE = ROOT / "docs" / "protocol.md"
SECTION = "\n## What it answers\n"


def blocks(language: str) -> list[str]:
    """The fenced blocks of `language` in the page's section on what the predictor answers."""
    text = PAGE.read_text()
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def documents(output: str) -> list[dict]:
    """Every JSON document in `output`, one after another as curl prints them."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(output):
        if output[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(output, at)
        found.append(document)
    return found


def test_every_curl_example_answers_without_an_error(predictor):
    (script,) = blocks("bash")
    env = {**os.environ, "IMG": str(CAT), "URL": predictor.url}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answers = documents(done.stdout)
    assert len(answers) == script.count("curl -s")
    assert not [a for a in answers if "error" in a], answers
    v2 = [a for a in answers if "outputs" in a]
    assert len(v2) == 4  # JSON, binary extension, classification, gzip
    classified = [
        o for a in v2 for o in a["outputs"] if o["datatype"] == "BYTES" and o["shape"] == [1, 2]
    ]
    assert len(classified) == 1 and all(":" in entry for entry in classified[0]["data"])
    assert len([a for a in answers if "predictions" in a]) == 1  # V1
    assert answers[-2].keys() == {"prediction", "values"} and answers[-1] == {"status": "OK"}


@pytest.mark.parametrize("example", ["tritonclient", "kserve.protocol.grpc"])
def test_the_python_examples_run(predictor, example):
    (code,) = [block for block in blocks("python") if example in block]
    code = code.replace("127.0.0.1:8080", f"127.0.0.1:{predictor.http_port}")
    code = code.replace("127.0.0.1:8081", predictor.grpc_target)
    code = code.replace('"cat.png"', repr(str(CAT)))
    python = CLIENTS_PYTHON if example == "tritonclient" else sys.executable
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    if example == "tritonclient":
        entry = r"b'\d\.\d{6}:\d:(Cat|Dog|Other)'"
        assert re.fullmatch(rf"\[\[{entry} {entry}\]\]\n", done.stdout), done.stdout
    else:
        assert re.match(r"(Cat|Dog|Other) \[[-0-9.e]+, [-0-9.e]+, [-0-9.e]+\]", done.stdout)
