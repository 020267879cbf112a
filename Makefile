# sora_jax — one command to set up and run each job. Needs only Python 3.10+.
#   make lab    JupyterLab on notebooks/
#   make test   the whole test suite (unit tests, import layering, notebooks in smoke mode)
#   make demo   generate a clip with the shipped checkpoint
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# XLA re-allocates a large scratch buffer every step; hugetlb malloc made training 12-25% faster here.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: lab test demo demo-model ffmpeg clean help
help:
	@sed -n '1,5p' Makefile

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "sora_jax needs Python >= 3.10, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[test]"
	@touch $@

$(VENV)/.installed-notebooks: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[notebooks]"
	@touch $@

# Reading mp4 uses imageio-ffmpeg's bundled binary (a pip dependency); a system ffmpeg is
# optional. Install Debian's when we can, say what to do when we cannot, never fail.
ffmpeg:
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq ffmpeg >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq ffmpeg >/dev/null 2>&1)) \
	      && echo "installed Debian ffmpeg" || echo "note: could not install ffmpeg; using the one bundled with imageio-ffmpeg"; \
	  else echo "note: no system ffmpeg (optional; e.g. 'sudo apt-get install ffmpeg'); using imageio-ffmpeg's"; fi; }

# diffusers parity tests need CPU torch. Take it only from a local wheel (--no-index), never a
# multi-GB CUDA download; without one the parity tests skip with a reason.
$(VENV)/.installed-parity: $(VENV)/.installed-test
	@if $(PIP) install -q --no-index --no-deps "torch==2.13.0" >/dev/null 2>&1; then $(PIP) install -q "torch==2.13.0" "diffusers>=0.42,<0.43"; \
	 else echo "note: no local CPU torch wheel; diffusers parity tests will skip (pip install torch, then -e '.[parity]')"; fi
	@touch $@

test: $(VENV)/.installed-test $(VENV)/.installed-parity ffmpeg
	$(BIN)/lint-imports
	SORA_JAX_SMOKE=1 $(BIN)/python -m pytest -q -p no:cacheprovider

lab: $(VENV)/.installed-notebooks ffmpeg
	$(BIN)/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

demo: $(VENV)/.installed-test ffmpeg
	$(BIN)/sora-jax generate "a red ball moves to the right" -o out/demo.mp4

# Retrain the shipped demo model on this CPU (hours; resumable: run again after a kill).
demo-model: $(VENV)/.installed-test
	BIN=$(BIN) bash scripts/train_demo_model.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
