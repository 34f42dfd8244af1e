"""coverage: the guest's gcov counters of a coverage build (kernel/profiling.py) turned into
lines, functions and branches run, per file, per suite and per run (gcovr), and the lines a patch
changed that ran (`lab validate --coverage`). Uses results, kernel, core.

Modules, one job each:
  material  which kernels a coverage run can read (refuses the others in one line)
  counters  a suite's .gcda files laid beside the build's notes
  gcovr     gcovr's traces, their merge and the HTML report
  summary   coverage.json's figures from the traces (pure)
  collect   after a run: every suite's counters into traces, coverage.json and the report
  tracing   each suite's trace made on a thread of its own as soon as the suite ends
  diff      diff coverage: the changed lines of code and which of them ran
"""
