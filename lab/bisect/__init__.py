"""bisect: the first kernel where one test's outcome, or one property it records, changes (`lab bisect`).
Uses matrix (child runs), kernel (packages, builds), results, report (flakes), core.

Modules, one job each:
  search      the bisection itself: which candidate next, and the answer (pure)
  judge       what one run says of the test, and a step's verdict from its repeated runs (pure)
  candidates  the kernels between good and bad: Debian package versions, or a git tree's commits
  session     the bisect directory: bisect.json, steps reused on a rerun, the runs, reproducer.sh
"""
