# The two commands a newcomer runs (see README): `make serve` and `make test`.
# Each creates its own virtual environment in .venv on first use.

# Python 3.11: the version everything is pinned for (python3.11 where it is on PATH).
PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
# Installs, each redone only when its own inputs change (a test dependency never reinstalls
# TensorFlow):
#   RUNTIME    the predictor and the proxy: all that `make serve` needs (Python, pip, kubectl)
#   TESTDEPS   the test suite's Python packages (tests/requirements.txt): `make unit`, `make lint`
#   NODETOOLS  Node.js and the OIDC provider's packages (tests/oidc)
#   TESTTOOLS  the rest of what the whole suite needs: tritonclient's own venv, Prometheus, a
#              browser (tools/install_test_tools.sh installs Node, Prometheus and a browser with
#              apt-get, with sudo where not root, or says what to install by hand)
#   WORKFLOWTOOLS  nektos/act, for `make workflows`
RUNTIME   := $(VENV)/.runtime-installed
TESTDEPS  := $(VENV)/.tests-installed
NODETOOLS := $(VENV)/.node-tools-installed
TESTTOOLS := $(VENV)/.test-tools-installed
WORKFLOWTOOLS := $(VENV)/.workflow-tools-installed
# tritonclient's own environment (see tests/requirements-v2-clients.txt), inside .venv.
CLIENTS := $(VENV)/v2-clients


.PHONY: venv serve test unit lint check-images workflows clean

venv: $(RUNTIME)

$(RUNTIME): predictor/requirements.txt predictor/constraints.txt auth-proxy/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and f"Python 3.11 is needed (PYTHON=/path/to/python3.11 make ...), not {sys.version.split()[0]}")'
	@# A .venv made by another Python is made anew.
	$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
	    { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r predictor/requirements.txt -c predictor/constraints.txt
	$(PY) -m pip install --quiet -e ./auth-proxy -c predictor/constraints.txt
	touch $@

$(TESTDEPS): $(RUNTIME) tests/requirements.txt
	$(PY) -m pip install --quiet -r tests/requirements.txt -c predictor/constraints.txt
	touch $@

# Node.js and the OIDC provider's packages (pinned by its package-lock.json): the proxy's token
# tests, and the deploy job's rehearsal (make workflows).
$(NODETOOLS): tests/oidc/package-lock.json tools/install_test_tools.sh | $(RUNTIME)
	bash tools/install_test_tools.sh node
	cd tests/oidc && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

$(TESTTOOLS): $(TESTDEPS) $(NODETOOLS) tests/requirements-v2-clients.txt \
              tools/install_test_tools.sh
	test -x $(CLIENTS)/bin/python || $(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/python -m pip install --quiet -r tests/requirements-v2-clients.txt
	bash tools/install_test_tools.sh prometheus browser
	touch $@

serve: $(RUNTIME)
	$(PY) -m tools.serve_pod

lint: $(TESTDEPS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/actionlint

# Every test, the unit layer's too: CI's test job runs this as the README gives it, and the
# company's CI (.ci/run) runs that job alone.
test: lint $(TESTTOOLS)
	$(PY) -m pytest

# The unit layer alone: the tests marked `unit`, in process and pure (no server, no child, no
# socket: tests/conftest.py fails one that starts any), under a minute.
unit: $(TESTDEPS)
	$(PY) -m pytest -m unit -q

# Build both images here and run them as a pod (needs root: installs and starts dockerd).
check-images: $(RUNTIME)
	bash tools/check_images.sh

# The jobs of .github/workflows/ run by nektos/act on a clean clone of HEAD, as a user with
# passwordless sudo, as on GitHub's runner (tools/workflows/; as root it makes such a user).
# JOBS picks some: `make workflows JOBS="deploy"`.
# (As root it installs nothing here: the user it runs as installs in its own clone.)
workflows:
	bash tools/workflows/run.sh $(JOBS)

# nektos/act (tests/requirements-workflows.txt), beside what the tests need.
$(WORKFLOWTOOLS): $(TESTDEPS) $(NODETOOLS) tests/requirements-workflows.txt
	$(PY) -m pip install --quiet -r tests/requirements-workflows.txt
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
