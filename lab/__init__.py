"""bpf-kernel-lab: boot kernels under QEMU and run bpf(2) map suites in the guest."""
