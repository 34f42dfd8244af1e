# bpf-kernel-lab: `make run` runs the three suites on the default kernel, `make test` the tests.
# Both install what they need first (apt packages as root, a virtualenv with pip).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs cpio busybox-static kmod bpftool gcc libc6-dev \
	make flex bison bc libelf-dev libssl-dev ccache patch xz-utils chromium lava-dispatcher openssh-client gdb
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup host-deps venv run test unit bench clean

setup: host-deps venv

# apt: install what is missing; refresh the lists when they are missing or a day old,
# because the newest kernel package is resolved from them.
host-deps:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	fresh=$$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1); \
	if [ -n "$$missing" ] || [ -z "$$fresh" ]; then \
		echo "setup: apt-get update"; $(SUDO) apt-get update -q >/dev/null || exit 1; \
	fi; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing $$missing"; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# setuptools' notice that an editable install is one (the tree is the package) says nothing new here.
	PYTHONWARNINGS='ignore:Editable installation:UserWarning' $(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

run: setup
	$(BIN)/lab run

# Two tests at a time (tests/conftest.py says what keeps them apart): a TCG guest keeps about one
# core busy, so a second test uses the other instead of leaving it idle. TEST_WORKERS=0: one at a time.
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	$(BIN)/python -m pytest tests $(XDIST) -ra --durations=40

unit: venv
	$(BIN)/python -m pytest tests $(XDIST) -ra -m 'not boot'

bench: setup
	$(BIN)/python -m lab.bench.boot
	$(BIN)/python -m lab.bench.build
	$(BIN)/python -m lab.bench.matrix
	$(BIN)/python -m lab.bench.validate
	$(BIN)/python -m lab.bench.bisect
	$(BIN)/python -m lab.bench.coverage
	$(SUDO) $(BIN)/python -m lab.bench.client

clean:
	rm -rf $(VENV) results
