"""Fixtures for the browser test: the pod `make serve` starts (the `kind` overlay, its
development issuer), a token that issuer signed, and headless Chromium driven by Playwright.

Chromium is Debian's package (`make venv` installs it): Playwright cannot download its own
browser here, so it is pointed at the system one. Every request the browser makes to anything
but 127.0.0.1 is aborted and recorded: the pages must work with no other network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from auth_proxy import devkeys
from support.local_pod import LocalPod
from support.manifests import VARIANTS, only, render

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    """The kind pod on this machine: (the proxy's REST URL, a token with the scope)."""
    workdir = tmp_path_factory.mktemp("browser-pod")
    documents = render(VARIANTS["kind"])
    config = dict(only(documents, "ConfigMap")["data"])
    local = LocalPod(only(documents, "Deployment")["spec"]["template"]["spec"], config, workdir)
    local.volumes["dev-issuer"] = workdir / "dev-issuer"
    devkeys.write_dev_keys(local.volumes["dev-issuer"])
    local.start()
    try:
        local.wait_for("predictor", "startupProbe", limit=500)
        local.wait_for("predictor", "readinessProbe", limit=120)
        local.wait_for("auth-proxy", "readinessProbe", limit=60)
        port = local.container("auth-proxy")["ports"][0]["containerPort"]
        token = devkeys.dev_token(local.volumes["dev-issuer"], "get::prediction", 600)
        yield f"http://{LOOPBACK}:{port}", token
    finally:
        local.stop()


BROWSERS = ("chromium", "google-chrome-stable", "google-chrome", "chromium-browser")


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium (Debian's, or the Chrome GitHub's runner has), through Playwright."""
    from playwright.sync_api import sync_playwright

    # The same names, in the same order, as tools/install_test_tools.sh looks for.
    found = (shutil.which(name) for name in BROWSERS)
    executable = next(filter(None, found), None)
    assert executable, f"none of {BROWSERS} on PATH: `make test` installs chromium"
    with sync_playwright() as playwright:
        # Chromium's sandbox cannot start as root (CI here runs the suite as root, and as a user).
        # Beside the page's own requests (checked by `visit`), Chromium's background traffic
        # (updates, safe browsing, DNS prefetch) must not leave the machine either: no name
        # resolves but loopback's.
        args = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        args += ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        yield browser
        browser.close()


class Visit:
    """One browser context: its page, the requests it tried beyond loopback (aborted), the
    Content-Security-Policy violations it reported, and numbered screenshots."""

    def __init__(self, browser, shots: Path, name: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.escaped: list[str] = []
        self.violations: list[str] = []
        self.shots, self.name, self.count = shots, name, 0
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.new_page()
        self.page.on("console", self._console)

    def _only_loopback(self, route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == LOOPBACK or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.escaped.append(url)
            route.abort()

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def shot(self, step: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.name}-{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def shots(request, tmp_path_factory) -> Path:
    """Where this test's screenshots go; the path is printed when the test fails."""
    chosen = os.environ.get("BROWSER_SCREENSHOTS")  # a folder to keep them in, if set
    if not chosen:
        return tmp_path_factory.mktemp("shots")
    Path(chosen).mkdir(parents=True, exist_ok=True)
    return Path(chosen)


@pytest.fixture
def visit(chromium, shots, request):
    made = Visit(chromium, shots, request.node.name.removeprefix("test_")[:40])
    yield made
    made.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and "shots" in getattr(item, "funcargs", {}):
        report.sections.append(("screenshots", f"the steps' screenshots: {item.funcargs['shots']}"))
    return report
