"""matrix: several kernels at once (`lab matrix`). Uses report (compare), results, vm, guest, core.

Modules, one job each:
  children   one child `lab run` per kernel, as many at once as cores and memory allow; matrix.json
  progress   how far a child has got, from the files it writes
  behaviour  which recorded properties of a test differ between the kernels (`lab compare`'s rule)
  table      the test x kernel matrix, its terminal table and its differences as JSON
  html       the self-contained HTML report (templates/)
"""
