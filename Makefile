# bpfnet: one entry point. `make` builds every BPF object and the Python
# environment ./bpfnetctl runs in; `make test`, `make demo`, `make bench`,
# `make vmtest`, `make vmlinux`, `make clean`.  V=1 shows full commands.
.DELETE_ON_ERROR:

OUTPUT     := build
BPF_OUT    := $(OUTPUT)/bpf
VENV       := .venv
PY         := $(VENV)/bin/python
CLANG      ?= clang
BPFTOOL    ?= bpftool
VMLINUX    := include/vmlinux.h
BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BPF_OUT)/%.bpf.o,$(BPF_SRCS))
BPF_HDRS   := $(wildcard bpf/lib/*.h include/*.h)
# test-side BPF programs (taggers, tunnel injectors): built like the
# functions, into build/tests/, never shipped
TEST_OUT   := $(OUTPUT)/tests
TEST_SRCS  := $(wildcard tests/progs/*.bpf.c)
TEST_OBJS  := $(patsubst tests/progs/%.bpf.c,$(TEST_OUT)/%.bpf.o,$(TEST_SRCS))
# one flag list for make and for the wheel's build (setup.py)
BPF_CFLAGS := $(shell sh .ci/bpf-cflags '$(CLANG)')
PYTEST_ARGS ?=

ifeq ($(V),1)
	Q =
	msg =
else
	Q = @
	msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.PHONY: all bpf testprogs venv deps check test demo bench vmtest vmlinux wheel clean

all: bpf testprogs venv

# the checkout runs from build/; a wheel compiles its own (setup.py, `make wheel`)
bpf: $(BPF_OBJS)

testprogs: $(TEST_OBJS)

$(TEST_OUT)/%.bpf.o: tests/progs/%.bpf.c $(BPF_HDRS) | $(TEST_OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(TEST_OUT):
	$(Q)mkdir -p $@

$(BPF_OUT)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) | $(BPF_OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BPF_OUT):
	$(Q)mkdir -p $@

# The virtual environment ./bpfnetctl and the tests run in.
venv: $(VENV)/.done

$(VENV)/.done: pyproject.toml
	$(call msg,VENV,$(VENV))
	$(Q)python3 -m venv $(VENV)
	$(Q)$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	$(Q)touch $@

# Everything a fresh Debian 12 machine needs, as root (idempotent).
deps:
	$(Q)./.ci/install-deps

# the unit tests: no root, no kernel, no sudo (pure logic and the layout of
# the mirrors against the built objects' BTF), in seconds
check: all
	$(Q)$(PY) -m pytest -q -p no:cacheprovider tests/unit

test: deps all check
	$(Q)$(PY) -m pytest $(PYTEST_ARGS) tests

demo: deps all
	$(Q)for f in bridge mesh dhcp gateway monitor cluster; do \
		./bpfnetctl demo $$f || exit $$?; done

# BENCH_ARGS: e.g. "--only floods" or "--quick" (python -m bpfnet.bench --help)
BENCH_ARGS ?=
bench: deps all
	$(Q)$(PY) -m bpfnet.bench --out $(OUTPUT)/bench $(BENCH_ARGS)
	$(Q)$(PY) -m bpfnet.bench.profile --out $(OUTPUT)/bench $(PROFILE_ARGS)

KERNEL ?=
vmtest: deps all
	$(Q)./vmtest/run $(if $(KERNEL),--kernel $(KERNEL))

# Regenerate the committed vmlinux.h from the running kernel's BTF.
vmlinux:
	$(call msg,GEN,$(VMLINUX))
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

# A wheel with the objects compiled in (setup.py's build_py), in build/dist/.
wheel: venv
	$(call msg,WHEEL,$(OUTPUT)/dist)
	$(Q)$(PY) -m pip wheel -q --no-deps -w $(OUTPUT)/dist .

clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT) python/bpfnet/bpf
