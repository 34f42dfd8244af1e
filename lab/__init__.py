"""bpf-kernel-lab: boot kernels under QEMU, run bpf(2) map suites in them, say what each kernel did.

Stage packages, dependencies pointing one way (tests/test_layout.py checks it):
  cli -> matrix, lava, validate, bisect, bench -> run -> vm -> guest -> kernel -> core
  run -> target -> core;  vm -> target;  run, report, matrix, lava -> results -> core
Each package's __init__ lists its modules.
"""
