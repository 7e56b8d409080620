# Shared by scripts/run and scripts/test (sourced): where builds go, and a step printer.
# The cargo target directory lives outside the clone so fresh clones reuse the cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lvbak/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

step() { # name command...
  local name=$1
  shift
  local started=$SECONDS
  printf '\n\033[1;34m==> %s\033[0m\n' "$name"
  "$@"
  printf '\033[1;32m<== %s (%ds)\033[0m\n' "$name" "$((SECONDS - started))"
}

# The cached target directory grows with every build (stale test binaries, incremental
# state). When the disk it is on has less than 20 GiB free, drop what is cheap to rebuild
# (our own crates' artefacts and incremental state), never the dependency tree.
prune_target() {
  local free_kib
  free_kib=$(df --output=avail -k "$CARGO_TARGET_DIR" | tail -1)
  if [ "${free_kib:-0}" -lt $((20 * 1024 * 1024)) ]; then
    echo "low disk space ($((free_kib / 1024 / 1024)) GiB free): pruning $CARGO_TARGET_DIR"
    rm -rf "$CARGO_TARGET_DIR"/debug/incremental "$CARGO_TARGET_DIR"/debug/examples
    find "$CARGO_TARGET_DIR"/debug/deps -maxdepth 1 \( -name '*lvbak*' -o -name 'e2e-*' -o -name 'cli-*' \
      -o -name 'process-*' -o -name 'format-*' -o -name 'properties-*' -o -name 'inspect-*' \) -exec rm -rf {} +
  fi
}
