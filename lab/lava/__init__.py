"""lava: the lab's runs as LAVA jobs (`lab lava-job`, `lab lava-run`). Uses run, report, results, vm, guest, kernel, core.

Modules, one job each:
  job       a LAVA job and device for QEMU from templates/, artifacts beside it
  schema    checked with lava-common's own schemas
  log       lava-run's log read back: results, console, the lab's test records
  dispatch  `lab lava-run`: the job under lava-run, in the one run lifecycle
"""
