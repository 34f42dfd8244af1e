"""vm: one QEMU guest (stage 3). Uses guest, target, results (file names), core; the only user of pexpect.

Modules, one job each:
  console  the serial console drained into console.log
  machine  Machine: one QEMU process, its argv, its port, stopped on every path
  accel    KVM only if a probe boot reaches init, else TCG
  boot     booted(): QEMU to the ready marker, then an SSH session
"""
