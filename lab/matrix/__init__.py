"""matrix: several kernels at once (`lab matrix`). Uses results, vm, guest, core.

Modules, one job each:
  children  one child `lab run` per kernel, as many at once as cores and memory allow
  progress  how far a child has got, from the files it writes
  table     the test x kernel matrix and its terminal table
  html      the self-contained HTML report (templates/)
"""
