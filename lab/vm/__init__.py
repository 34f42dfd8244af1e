"""vm: one QEMU guest (stage 3). Uses guest, target, results (file names), core; the only user of pexpect.

Modules, one job each:
  console  the serial console drained into console.log
  machine  Machine: one QEMU process, its argv, its port, stopped on every path
  accel    KVM only if a probe boot reaches init, else TCG
  boot     booted(): QEMU to the ready marker (or restored from a snapshot), then an SSH session
  snapshot a booted guest saved once per configuration, restored for later runs
  qmp      the QMP client that pauses, migrates and resumes a guest
"""
