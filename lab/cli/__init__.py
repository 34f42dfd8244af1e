"""cli: the `lab` command line, the only user of argparse besides bench. Nothing imports it.

Modules, one job each:
  main     the parser of every command; the lab's own failures to exit codes
  options  option groups several commands share
  kernel   kernel fetch/build, image build, boot
  run      run, compare, report                   target  `run --target ssh://...`
  matrix   `lab matrix`                           lava    `lab lava-job`, `lab lava-run`
  validate `lab validate`: one series over several sources
  kcidb    `lab kcidb`: runs as a KCIDB document
  bisect   `lab bisect`: the first package, then commit, where one test changes
"""
