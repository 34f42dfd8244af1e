"""kernel: from what the user asked for to a kernel in the cache (stage 1). Uses core.

Modules, one job each:
  spec          parse `debian:6.1`, `debian:6.1.0-53`, `build:<id>`, a path (pure)
  acquire       Kernel: a Debian package or a local image into the cache
  listing       `lab kernel list`: every Debian kernel and source version the apt lists hold
  source        kernel source trees: Debian's linux-source, a tarball, a local tree
  build         `lab kernel build`: patch, merge fragments, configure, check, make, cache
  debugsyms     a Debian kernel's vmlinux from its -dbg package, for `lab boot --gdb --symbols`
  kconfig       fragments: parse, merge as merge_config.sh does, check
  kconfig_tree  what a tree's Kconfig files say (which symbols, their dependencies)
  patches       a patch series applied in order to a copy of a tree
  ident         one line naming a kernel from its recorded identity
  profiling     coverage builds: gcov for kernel/bpf and the notes and sources kept beside the build
"""
