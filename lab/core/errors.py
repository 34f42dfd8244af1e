"""The two kinds of failure the lab itself can have (the kernel's failures are Outcomes)."""


class UserError(Exception):
    """Bad input from the user: reported as one line, exit 2, before anything starts."""


class InfraError(Exception):
    """The lab or the host failed (apt, QEMU missing, disk): not the kernel's fault."""
