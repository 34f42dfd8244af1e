"""guest: what a kernel needs to boot the lab's guest (stage 2). Uses kernel, core.

Modules, one job each:
  keys       the lab's SSH client and guest host keys
  init       the guest's init scripts from images/ templates, and their markers
  image      the shared Debian root filesystem, cached by its recipe hash
  initramfs  the per-kernel initramfs (busybox, virtio modules, stage-1 init)
  assets     Prepared: all of the above for one kernel
"""
