#!/usr/bin/env bash
# Regenerate the Python modules from the .proto files (run from anywhere).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. proto/*.proto
