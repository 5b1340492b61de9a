# Sourced by the static checks (observability/check-static.sh, scripts/check-deploy.sh): every
# check must be able to fail, so each is also run on a deliberately broken copy.
#
#   must_fail WHAT EXPECTED COMMAND...
# passes when COMMAND fails and its output holds EXPECTED (the reason it should fail for);
# otherwise prints why and exits 1. Uses $work, a scratch directory of the caller's.
must_fail() {
  local what=$1 expect=$2
  shift 2
  if "$@" >"$work/out" 2>&1; then
    echo "not refused: $what" >&2
    exit 1
  fi
  grep -q -- "$expect" "$work/out" || {
    echo "refused for another reason than expected ($expect): $what" >&2
    cat "$work/out" >&2
    exit 1
  }
  echo "refused, as it should be: $what"
}
