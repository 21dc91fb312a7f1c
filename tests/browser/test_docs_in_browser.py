"""The course's browser workflow, through the only door: a user opens `/docs` on the pod that
`make serve` starts, clicks **Authorize**, pastes a token and tries `/upload` with the course's
photo; without authorizing, the same call answers 401; `/redoc` lists the operations. In
headless Chromium with no network but loopback, so the pages' assets must come from the pod.
Each step leaves a screenshot (the folder is printed when a test fails; `BROWSER_SCREENSHOTS`
keeps them in a folder of your choice)."""

from __future__ import annotations

import re

import pytest

from support.servers import ROOT

CAT = ROOT / "tests" / "fixtures" / "cat.png"
UPLOAD = "#operations-course-upload_upload_post"
pytestmark = pytest.mark.timeout(900)  # the pod's cold start (model conversion) comes first


def open_docs(visit, base: str):
    response = visit.page.goto(base + "/docs")
    assert response.status == 200, response.text()
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy and "script-src 'self' 'sha256-" in policy
    visit.page.wait_for_selector(UPLOAD, timeout=30_000)
    visit.shot("docs")


def try_upload(visit) -> str:
    """Expand /upload, Try it out, choose cat.png, Execute: the rendered answer's text."""
    page = visit.page
    page.click(f"{UPLOAD} .opblock-summary")
    page.click(f"{UPLOAD} button.try-out__btn")
    page.set_input_files(f"{UPLOAD} input[type=file]", str(CAT))
    visit.shot("file-chosen")
    page.click(f"{UPLOAD} button.execute")
    answer = page.wait_for_selector(f"{UPLOAD} .live-responses-table .response", timeout=60_000)
    answer.scroll_into_view_if_needed()
    visit.shot("answer")
    return answer.inner_text()


# ReDoc's side menu always shows Redocly's logo from their CDN; the policy blocks it (so the
# browser never asks) and ReDoc's own error handler then hides the image.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def no_escape(visit) -> None:
    """Nothing left loopback, and the policy blocked nothing the pages need."""
    assert visit.escaped == [], f"requests beyond loopback: {visit.escaped}"
    blocked = [text for text in visit.violations if REDOC_LOGO not in text]
    assert blocked == [], f"Content-Security-Policy violations: {blocked}"


def test_authorize_then_upload_answers_cat(pod, visit):
    base, token = pod
    open_docs(visit, base)
    page = visit.page
    page.click("button.authorize")  # the page's Authorize button: the bearer scheme is declared
    dialog = page.wait_for_selector(".modal-ux")
    page.fill(".modal-ux .auth-container input", token)
    visit.shot("authorize")
    page.click(".modal-ux button.authorize")
    # Authorized: the dialog offers Logout (before, only Authorize and Close)
    page.wait_for_selector('.modal-ux button[aria-label="Remove authorization"]')
    assert dialog.query_selector(".modal-ux .auth-container input") is None
    visit.shot("authorized")
    page.click(".modal-ux button.btn-done")
    text = try_upload(visit)
    assert re.search(r"\b200\b", text), text
    assert '"prediction": "Cat"' in text, text
    no_escape(visit)


def test_without_authorizing_upload_answers_401(pod, visit):
    base, _ = pod
    open_docs(visit, base)
    text = try_upload(visit)
    assert re.search(r"\b401\b", text), text
    assert "a bearer token is required" in text, text
    no_escape(visit)


def test_redoc_lists_the_operations(pod, visit):
    base, _ = pod
    response = visit.page.goto(base + "/redoc")
    assert response.status == 200
    assert "worker-src blob:" in response.headers.get("content-security-policy", "")
    page = visit.page
    page.wait_for_selector("text=/upload", timeout=30_000)
    for operation in ("/v2/models/{model_name}/infer", "/v2/models/{model_name}", "/health"):
        assert page.get_by_text(operation, exact=True).count() >= 1, operation
    assert page.get_by_text(":explain").count() == 0
    assert page.get_by_text("Metrics Handler").count() == 0  # /metrics: not through the door
    assert page.get_by_text("bearer", exact=False).count() >= 1  # the security scheme
    visit.shot("redoc")
    no_escape(visit)
