#!/bin/sh
# Seeds the fuzz corpus (git-ignored) from the repository's topologies.
# Run from anywhere; copies into fuzz/corpus/load/, named by source path.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out="$here/corpus/load"
mkdir -p "$out"
for f in "$root"/topologies/*.yaml "$root"/tests/fixtures/*/topology.yaml; do
    [ -f "$f" ] || continue
    rel=${f#"$root"/}
    cp "$f" "$out/seed-$(printf '%s' "$rel" | tr '/' '_')"
done
echo "seeded $(ls "$out" | wc -l) files in $out"
