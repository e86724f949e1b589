# execlog: `make run` starts the collector on this host, `make test` runs the whole suite.
# Both begin with `make install`, which is idempotent set-up and nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEB_PACKAGES := clang llvm libbpf-dev libbpf1 bpftool runc busybox-static gcc make shellcheck bpftrace
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo "$$(uname -m)-linux-gnu")
BPF_OBJ := bpf/exec.bpf.o
BPF_SRC := bpf/exec.bpf.c bpf/exec.h bpf/kernel_types.h

.PHONY: help install deb venv bpf proto run test lint bench image clean

help:
	@echo "make run      install, then run the collector in standalone mode (logs every exec on this host)"
	@echo "make test     install, then ruff, mypy and pytest"
	@echo "make install  Debian packages, .venv, $(BPF_OBJ), the gRPC stubs in $(PROTO_DIR) (idempotent)"
	@echo "make bench    benchmarks: print the tables, rewrite BENCHMARKS.md (not part of make test)"
	@echo "make image    the collector's container image (Dockerfile; needs docker or podman)"

install: deb venv bpf proto

# Installs only what is missing, so a set-up machine makes no apt call at all.
deb:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages: $$missing (run make install as root)"; exit 1; fi; \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

bpf: $(BPF_OBJ)

$(BPF_OBJ): $(BPF_SRC)
	clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
		-Ibpf -I/usr/include/$(MULTIARCH) -c bpf/exec.bpf.c -o $@

# The gRPC stubs are generated, never committed: collector/_proto is git-ignored.
PROTO_SRC := proto/execlog/v1/execlog.proto
PROTO_DIR := collector/_proto
PROTO_OUT := $(PROTO_DIR)/execlog/v1/execlog_pb2.py

proto: $(PROTO_OUT)

$(PROTO_OUT): $(PROTO_SRC) $(VENV)/.installed
	@mkdir -p $(PROTO_DIR)/execlog/v1
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=$(PROTO_DIR) --pyi_out=$(PROTO_DIR) $(PROTO_SRC)
	@for d in $(PROTO_DIR) $(PROTO_DIR)/execlog $(PROTO_DIR)/execlog/v1; do touch $$d/__init__.py; done

run: install
	$(BIN)/execlog run $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy collector bench

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Prints every table and rewrites BENCHMARKS.md and BENCHMARKS.png; ARGS="--only storm" etc.
bench: install
	$(BIN)/python -m bench --write BENCHMARKS.md $(ARGS)

IMAGE ?= execlog:0.1.0
IMAGE_TOOL ?= $(shell command -v docker || command -v podman)

image:
	@test -n "$(IMAGE_TOOL)" || { echo "make image needs docker or podman"; exit 1; }
	$(IMAGE_TOOL) build -t $(IMAGE) .

clean:
	rm -f $(BPF_OBJ)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
