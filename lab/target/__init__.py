"""target: a place that runs tests, reached over SSH (stage 4). Uses core only.

Modules, one job each:
  base     the Target contract, CommandResult, ConnectionLost, CommandTimedOut (no paramiko)
  ssh      SshTarget: paramiko session to a lab guest, its host key pinned
  remote   `ssh://user@host`: an existing machine, known_hosts, public keys
  checks   can this machine run the suites (kernel, caps, python, pytest)
  bounded  BoundedTarget: the machine's own timeout around every command
"""
