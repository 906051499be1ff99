#!/usr/bin/env bash
# Regenerate src/coditect/api/_pb/ from proto/coditect/v1/*.proto (the output is committed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/../venv/bin/python}"
[ -x "$py" ] || py=python3
out="$root/src/coditect/api/_pb"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m grpc_tools.protoc -I "$root/proto" --python_out="$tmp" --pyi_out="$tmp" \
  --grpc_python_out="$tmp" "$root"/proto/coditect/v1/*.proto
mkdir -p "$out"
for f in "$tmp"/coditect/v1/*.py "$tmp"/coditect/v1/*.pyi; do
  # protoc writes absolute imports (coditect.v1.x_pb2); the package lives at coditect.api._pb.
  { echo "# ruff: noqa"; sed -e 's/^from coditect\.v1 import /from coditect.api._pb import /' \
      -e 's/^import coditect\.v1\.\([a-z_]*_pb2\)/from coditect.api._pb import \1/' "$f"; } > "$out/$(basename "$f")"
done
printf '"""Generated protobuf and gRPC code (scripts/gen_proto.sh); do not edit."""\n' > "$out/__init__.py"
