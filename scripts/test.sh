#!/usr/bin/env bash
# Runs every test on a fresh machine: host set-up (packages, daemons, test
# images), then formatting and lint checks, then the whole test suite, then
# the remote-desktop scenario's own tests (topologies/remote-desktop.yaml).
#
# With CI=true, tests that need Docker or libvirt fail when the daemon is
# missing instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-host.sh
bash scripts/build-images.sh
bash scripts/build-vm-images.sh

echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "test: cargo test"
cargo test --locked

# The flagship scenario, as a user runs it: its JUnit report and artifacts
# (screenshots of desktop B among them) under target/ci/.
echo "test: benchscale test topologies/remote-desktop.yaml"
cargo build --locked
mkdir -p target/ci
trap './target/debug/benchscale destroy topologies/remote-desktop.yaml >/dev/null 2>&1 || true' EXIT
./target/debug/benchscale test topologies/remote-desktop.yaml \
    --junit target/ci/remote-desktop.xml --artifacts target/ci/remote-desktop --destroy
