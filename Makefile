# Two entry points on a fresh machine: `make quickstart` (the main job) and `make test`.
# Each creates the virtual environment and installs what it needs first.

PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of this torch release lies on the CI machines' disk; on a GPU machine pip picks the CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

# Offline machines that carry the real data beside the checkout use it instead of downloading.
SHARED_DATA ?= ../shared/data
ifneq ($(wildcard $(SHARED_DATA)/squad_v1.1/dev-v1.1.json),)
export T5KIT_SQUAD_DIR ?= $(abspath $(SHARED_DATA)/squad_v1.1)
export T5KIT_TOKENIZER ?= $(abspath $(SHARED_DATA)/t5_tokenizer/spiece.model)
endif

.PHONY: setup quickstart test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

quickstart: setup
	$(BIN)/t5kit quickstart $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
