#!/usr/bin/env bash
# Fails when gen/ or clients/python/gen/ differs from what `buf generate` makes from proto/ now
# (neither is ever hand-edited). The Python output comes from protoc's built-in generators and
# grpc_python_plugin (Debian's protobuf-compiler and protobuf-compiler-grpc, which .ci/run
# installs), so it is byte-for-byte that protoc's: regenerate with the same packages.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate -o "$tmp"
stale=0
for dir in gen clients/python/gen; do
  # Python writes __pycache__/ beside modules it imports: not generated, never compared.
  if ! diff -r -x __pycache__ "$dir" "$tmp/$dir"; then
    echo "$dir/ is stale: run 'npm run generate' and commit the result" >&2
    stale=1
  fi
done
exit "$stale"
