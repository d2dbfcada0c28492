#!/usr/bin/env bash
# Regenerates the Python code for protos/imagefactory/v1 into OUT (default: gen/).
# Messages + gRPC stubs from grpcio-tools, typed .pyi stubs from mypy-protobuf.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/gen}")  # absolute: the generator runs from protos/
venv_bin=${VENV_BIN:-$root/.venv/bin}
mkdir -p "$out"
cd "$root/protos"
PATH="$venv_bin:$PATH" "$venv_bin/python" -m grpc_tools.protoc -I . \
    --python_out="$out" --grpc_python_out="$out" \
    --mypy_out="$out" --mypy_grpc_out="$out" \
    imagefactory/v1/*.proto
touch "$out/imagefactory/__init__.py" "$out/imagefactory/v1/__init__.py"
