"""run: one run of the suites, in one lifecycle (stage 5). Uses vm, guest, target, results, core.

Modules, one job each:
  request     RunRequest, TargetRunRequest: what was asked (pure data)
  suites      the suites there are, ship guest-tests/, what pytest is given for each suite
  series      the suites in one command (guest-tests/labsuites.py), split back into one result each
  selection   --test: the tests a run is limited to, checked against the suites collected on the host
  bytecode    the .pyc files a guest compiled, kept in the cache for the next run on that image
  lifecycle   conduct(): record -> stages under the deadline -> Verdict -> finished record
  verdict     the monitor: the outcome from suites and kernel log, or from what a stage raised
  guest       the stages of a QEMU guest run       target  the stages of a `--target` run
  cpus        the CPUs the kernel brought up against those it was given
  reproducer  reproducer.sh and the lab's revision for every kind of run
"""
