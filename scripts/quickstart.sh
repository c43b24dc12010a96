#!/usr/bin/env bash
# The main job on a fresh machine: set up the host, build benchscale and
# bring up the quickstart lab (run it again: nothing changes; remove the lab
# with `./target/release/benchscale destroy topologies/quickstart.yaml`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-host.sh
bash scripts/build-images.sh
cargo build --locked --release
./target/release/benchscale validate topologies/quickstart.yaml
./target/release/benchscale apply topologies/quickstart.yaml
./target/release/benchscale status quickstart
