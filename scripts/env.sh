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
