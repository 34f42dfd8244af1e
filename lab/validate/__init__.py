"""validate: one patch series over several kernel sources (`lab validate`). Uses matrix, report, results, kernel, core.

Modules, one job each:
  plan      the versions asked for, every input checked before anything is built
  pipeline  per version: source -> apply check -> base and patched builds; then the runs, compared
  verdict   each version's verdict and the exit code rule
  table     the text table and validate.json
  html      the self-contained HTML report (templates/), base and patched side by side
"""
