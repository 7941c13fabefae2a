#!/bin/sh
# The steps both CI recipes share, so they can be run and tested anywhere:
#
#   envform-ci.sh plan    validate and plan the configuration; save the plan to $ENVFORM_PLANFILE
#                         (only when it can be applied) and write the pull-request comment to
#                         comment.md: a header, then the markdown plan or the error.
#   envform-ci.sh apply   apply exactly the reviewed $ENVFORM_PLANFILE; when it is refused as stale
#                         (anything moved since review), plan again into comment.md instead of
#                         applying, and fail.
#
# Settings: ENVFORM_CONFIG (default environments/), ENVFORM_PLANFILE (default envform.tfplan),
# ENVFORM_COMMIT (shown in the header), and the usual KUBIYA_* and ENVFORM_STATE_* variables.
# Exit status: 0 done, 1 failed (comment.md says why when there is something to post).
set -u

config="${ENVFORM_CONFIG:-environments/}"
planfile="${ENVFORM_PLANFILE:-envform.tfplan}"

header() {
  echo "<!-- envform-plan -->"
  echo "**envform** \`$(envform version)\` · configuration \`$config\` ·" \
    "state \`${ENVFORM_STATE_ADDRESS:-$config.envform/state.json}\` · commit \`${ENVFORM_COMMIT:-unknown}\`"
  echo
}

# Writes comment.md: the header, a title, then the file $2 in a code block.
error_comment() {
  {
    header
    echo "### $1"
    echo
    echo '```'
    cat "$2"
    echo '```'
  } > comment.md
}

case "${1:-}" in
plan)
  rm -f "$planfile" comment.md
  if ! envform validate -f "$config" 2> errors.txt; then
    error_comment "envform validate failed" errors.txt
    exit 1
  fi
  envform plan -f "$config" --format markdown --out "$planfile" --detailed-exitcode \
    > plan.md 2> errors.txt
  code=$?
  cat errors.txt >&2
  if [ -s plan.md ]; then
    # A plan refused by a safety check is written whole (and not saved): it is posted too.
    { header; cat plan.md; } > comment.md
  else
    error_comment "envform plan failed" errors.txt
  fi
  [ "$code" -ne 1 ]
  ;;
apply)
  # -f: the plan records absolute paths, and this checkout may be elsewhere; what the files mean
  # is checked against the plan either way.
  envform apply "$planfile" -f "$config" --auto-approve --lock-timeout 10m 2> errors.txt
  code=$?
  cat errors.txt >&2
  [ "$code" -eq 0 ] && exit 0
  if grep -q 'envform::plan::stale' errors.txt; then
    envform plan -f "$config" --format markdown > plan.md 2> /dev/null
    {
      header
      echo "> **Not applied:** the reviewed plan is stale (something changed since it was made)."
      echo "> This is the plan now; review it and merge again, or apply it by hand."
      echo
      cat plan.md
    } > comment.md
  else
    error_comment "envform apply failed" errors.txt
  fi
  exit 1
  ;;
*)
  echo "usage: envform-ci.sh plan|apply" >&2
  exit 1
  ;;
esac
