# syntax=docker/dockerfile:1
# The collector's image: `make image`, then push it and point manifests/kustomization.yaml at it.
#
# Stage 1 compiles the CO-RE BPF object (portable across kernels, relocated at load time against
# the node's own BTF) and builds the Python package into a virtual environment. Stage 2 is
# Debian bookworm with only Python and libbpf1: no compiler, no headers, no shell tools needed.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev linux-libc-dev make python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile pyproject.toml README.md ./
COPY bpf/ bpf/
COPY collector/ collector/
RUN make bpf
# The same interpreter path in both stages, so the copied venv runs as built.
RUN python3 -m venv /opt/execlog \
 && /opt/execlog/bin/pip install --no-cache-dir /src

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 libbpf1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/execlog /opt/execlog
COPY --from=build /src/bpf/exec.bpf.o /opt/execlog/share/exec.bpf.o
ENV EXECLOG_BPF_OBJECT=/opt/execlog/share/exec.bpf.o \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# root, with only the capabilities the DaemonSet adds (CAP_BPF, CAP_PERFMON)
USER 0
ENTRYPOINT ["/opt/execlog/bin/execlog"]
CMD ["run"]
