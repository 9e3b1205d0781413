#!/usr/bin/env bash
# Fails when gen/ differs from what `buf generate` makes from proto/ now (gen/ is never hand-edited).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate -o "$tmp"
if ! diff -r gen "$tmp/gen"; then
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
