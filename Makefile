# flowtap: `make run` starts the appliance on its factory default, `make test` runs every test.
# Both install what they need: Debian packages (as root) and a project virtualenv in .venv.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STATE_DIR   ?= state
APT_PACKAGES := libyang2-dev libyang2-tools freeradius freeradius-utils tcpdump tshark \
                iproute2 openssh-client ethtool procps netsniff-ng gcc libc6-dev
STAMP       := $(VENV)/.installed

.PHONY: run test lint deps apt demo bench fuzz clean

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	$(MAKE) apt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)

run: deps
	$(BIN)/flowtapd --state-dir $(STATE_DIR)

lint: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

test: deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

demo: deps
	$(BIN)/python -m flowtap.demo

bench: deps
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/run_all.py

# Coverage-guided fuzzing (atheris), one target after the other: FUZZ_SECONDS per target, or
# FUZZ_RUNS executions per target when set (make fuzz FUZZ_RUNS=10000000). FUZZ_TARGETS picks
# targets (default: all). Prints executions, exec/s, coverage and crashes per target; found
# inputs and crash files go to .fuzz/<target>/.
FUZZ_SECONDS ?= 600
FUZZ_RUNS    ?=
FUZZ_TARGETS ?=

fuzz: deps
	PYTHONPATH=src:. $(BIN)/python tests/fuzz/run.py \
	  $(if $(FUZZ_RUNS),--runs $(FUZZ_RUNS),--seconds $(FUZZ_SECONDS)) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) $(STATE_DIR) .mypy_cache .ruff_cache .pytest_cache .fuzz
