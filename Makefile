# flowtap: `make run` starts the appliance on its factory default, `make test` runs every test.
# Both install what they need: Debian packages (as root) and a project virtualenv in .venv.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STATE_DIR   ?= state
APT_PACKAGES := libyang2-dev libyang2-tools freeradius freeradius-utils tcpdump tshark \
                iproute2 openssh-client ethtool procps netsniff-ng gcc libc6-dev libnetconf2-2
STAMP       := $(VENV)/.installed
# Every Python package, transitive ones and the build backend included, pinned with hashes.
LOCK        := requirements.lock
PIP_TOOLS   := pip-tools==7.7.0

.PHONY: run test test-latest lint deps apt demo bench bench-netopeer2 netopeer2-given fuzz \
        lock clean

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml $(LOCK)
	$(MAKE) apt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
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
	$(BIN)/python -m flowtap.tools.demo

bench: deps
	$(BIN)/python bench/run_all.py

# The config plane beside netopeer2: bench/netconf_cycles.py --vs runs the same NETCONF cycle, with
# the same client, against this flowtap (super-user admin and LI-admin) and a netopeer2 you
# already run, interleaved, and prints cycles/s per round and the ratios. Nothing is built here:
# README.md (Performance) says what that netopeer2 must be and hold. Not part of `make test`.
NETOPEER2          ?=
NETOPEER2_USER     ?= admin
NETOPEER2_PASSWORD ?=
NETOPEER2_KEY      ?=
NETOPEER2_PID      ?=
NETOPEER2_SECONDS  ?= 15
NETOPEER2_ROUNDS   ?= 3
# make bench takes them too: given a netopeer2, REPORT.md has the comparison from its own run
export NETOPEER2 NETOPEER2_USER NETOPEER2_PASSWORD NETOPEER2_KEY NETOPEER2_PID NETOPEER2_SECONDS \
  NETOPEER2_ROUNDS

netopeer2-given:
	@if [ -z "$(NETOPEER2)" ] || [ -z "$(NETOPEER2_PASSWORD)$(NETOPEER2_KEY)" ]; then \
	  echo "make bench-netopeer2 compares flowtap with a netopeer2 that is already running;"; \
	  echo "it builds nothing. Give it that server and a credential:"; \
	  echo "  make bench-netopeer2 NETOPEER2=127.0.0.1:PORT NETOPEER2_PASSWORD=PASSWORD"; \
	  echo "    [NETOPEER2_USER=admin] [NETOPEER2_KEY=FILE, a private key instead of a password]"; \
	  echo "    [NETOPEER2_PID=PID, to report its CPU per cycle]"; \
	  echo "    [NETOPEER2_SECONDS=15 per leg] [NETOPEER2_ROUNDS=3]"; \
	  echo "It must hold bench/netopeer2/flowtap-bench.yang and give the user NACM permit-all;"; \
	  echo "README.md (Performance) says how to provide it."; \
	  exit 2; \
	fi >&2

bench-netopeer2: netopeer2-given deps
	VS_PASSWORD="$$NETOPEER2_PASSWORD" $(BIN)/python bench/netconf_cycles.py \
	  --vs $(NETOPEER2) --vs-name netopeer2 --vs-user $(NETOPEER2_USER) \
	  --vs-namespace urn:flowtap:yang:bench $(if $(NETOPEER2_KEY),--vs-key $(NETOPEER2_KEY)) \
	  $(if $(NETOPEER2_PID),--vs-pid $(NETOPEER2_PID)) \
	  --vs-seconds $(NETOPEER2_SECONDS) --rounds $(NETOPEER2_ROUNDS)

# Refresh requirements.lock from pyproject.toml's ranges (newest releases that satisfy them).
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && \
	  .venv-lock/bin/pip install -q $(PIP_TOOLS))
	.venv-lock/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
	  --all-build-deps --extra test --extra bench -o $(LOCK) pyproject.toml

# The suite against the newest releases pyproject.toml admits, in a venv of its own: drift shows
# here before a fresh clone meets it. Not part of `make test`.
test-latest: apt
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install -q --upgrade pip
	.venv-latest/bin/pip install -q --upgrade -e '.[test]'
	.venv-latest/bin/pip list --format=freeze > .venv-latest/versions.txt
	.venv-latest/bin/ruff check src tests bench
	.venv-latest/bin/mypy src
	.venv-latest/bin/python -m pytest -q -p no:cacheprovider tests

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
	rm -rf $(VENV) .venv-latest .venv-lock $(STATE_DIR) .mypy_cache .ruff_cache .pytest_cache .fuzz
