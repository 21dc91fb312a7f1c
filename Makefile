# The two commands a newcomer runs (see README): `make serve` and `make test`.
# Each creates its own virtual environment in .venv on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

REQUIREMENTS := predictor/requirements.txt predictor/constraints.txt tests/requirements.txt \
                tests/requirements-v2-clients.txt auth-proxy/pyproject.toml tests/oidc/package-lock.json
# tritonclient's own environment (see tests/requirements-v2-clients.txt), inside .venv.
CLIENTS := $(VENV)/v2-clients


.PHONY: venv serve test unit lint check-images clean

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r predictor/requirements.txt -r tests/requirements.txt \
	    -c predictor/constraints.txt
	$(PY) -m pip install --quiet -e ./auth-proxy -c predictor/constraints.txt
	$(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install --quiet -r tests/requirements-v2-clients.txt
	# The OIDC provider the proxy's token tests run against (pinned by its package-lock.json).
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	node -e 'const [a, b] = process.versions.node.split(".").map(Number); if (a < 20 || (a == 20 && b < 12)) { console.error("oidc-provider needs Node.js >= 20.12, not " + process.version); process.exit(1) }'
	cd tests/oidc && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	# Prometheus and promtool: the alert tests and the scrape of the pod (Debian's package).
	command -v promtool >/dev/null || (apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends prometheus)
	# Chromium for the browser test (tests/browser), driven by Playwright (Debian's package:
	# Playwright cannot download its own browser here).
	command -v chromium >/dev/null || (apt-get update -qq && \
	    apt-get install -y -qq --no-install-recommends chromium)
	touch $(STAMP)

serve: $(STAMP)
	$(PY) -m tools.serve_pod

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/actionlint

test: lint
	$(PY) -m pytest

# The unit layer alone: the pure modules in process, no server started (< 20 s).
unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

# Build both images here and run them as a pod (needs root: installs and starts dockerd).
check-images: $(STAMP)
	bash tools/check_images.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
