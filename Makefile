# Two entry points for newcomers: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN := torch==2.13.0
# pip's default index serves torch's CUDA build on Linux (several GB of NVIDIA wheels). For the CPU-only
# build, point pip at a CPU wheel index:  make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: demo test lint bench clean

$(BIN)/advlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)") "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(BIN)/advlab

demo: $(BIN)/advlab
	$(BIN)/advlab demo --out runs/demo

test: $(BIN)/advlab
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(BIN)/advlab
	$(BIN)/ruff check src tests benchmarks

bench: $(BIN)/advlab
	bash benchmarks/setup_peers.sh
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
