"""report: runs printed and compared (stage 6). Uses results, kernel.ident, core.

Modules, one job each:
  table    `lab run`'s live suite table and closing lines
  show     `lab report`: a run read back and printed the same way
  ktap     `lab report --format ktap`: a run as KTAP, for the kernel's own test tools
  kcidb    `lab kcidb`: runs as one KCIDB I/O document, for KernelCI's reporting database
  compare  two runs test by test: newly failing/passing/skipped, behaviour changed, regression
  compare_text  `lab compare`'s text and JSON
  flaky    tests that differ between runs of one kernel (--repeat), and comparisons that discount them
"""
