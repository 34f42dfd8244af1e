#!/bin/sh
# One lab suite as a LAVA test definition's run step: lava-run-suite.sh SUITE_DIR
# Each test is reported as a LAVA test case by the lavasignals plugin. pytest's own exit
# status is one more case, "pytest-exit": pass when pytest ran the suite to the end (exit 0,
# or 1 when some tests failed: those are failed cases already), fail when it could not
# (a usage or internal error, an interruption, nothing collected).
cd "$(dirname "$0")" || exit 1
python3 -m pytest -p no:cacheprovider -p labstream -p lavasignals -q -rs "$1"
rc=$?
case $rc in
    0|1) result=pass ;;
    *) result=fail ;;
esac
lava-test-case pytest-exit --result "$result" --measurement "$rc" --units exit-status
# Always 0: run.sh runs under `set -e`, and LAVA must still see the end of this run.
exit 0
