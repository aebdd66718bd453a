# wm_agent entry points. Every target sets itself up first (idempotent, seconds when done).
#   make run     the main job: a simulated fleet run with the shipped model
#   make test    the whole test suite (what CI runs)
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup run test lint bench lock docs clean help
help:
	@echo "make setup | run [ARGS='--drones 10'] | test | lint | bench | lock | docs | clean"

setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/wm-agent sim $(ARGS)

test: setup
	$(PY) -m pytest $(ARGS)

lint: setup
	$(VENV)/bin/ruff check wm_agent tests bench launch
	$(VENV)/bin/mypy wm_agent

bench: setup
	$(PY) bench/sim_speed.py
	$(PY) bench/assign_speed.py

lock: setup
	@{ echo "# Pinned versions for requirements.txt: every fresh machine gets the same set."; \
	   echo "# Regenerate: make lock  (pip freeze of a working .venv)"; \
	   $(PY) -m pip freeze --exclude-editable | grep -v '^wm.agent' | sed 's/+cpu$$//'; } > constraints.txt

clean:
	rm -rf build install log

docs:
	python3 scripts/gen_interfaces_doc.py
