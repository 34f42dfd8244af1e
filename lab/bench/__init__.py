"""bench: `make bench`, figures measured beside their comparisons. Uses run, vm, guest, kernel, core.

Modules, one job each:
  boot    boot-to-SSH and whole-run seconds          build   cold build and one-line rebuild
  client  the Python client against the same loops in C (client.c)
  matrix  two kernels side by side against one alone
  validate  `lab validate` of two versions at once against each alone
  bisect  a bisection over five Debian packages, steps and seconds, against one full run
  coverage  a coverage run against the same run without coverage
  timing  one `lab` command timed as a whole process
"""
