"""core: what every stage stands on. Depends on nothing else in the lab.

Modules, one job each:
  errors    UserError (bad input, exit 2), InfraError (the host failed)
  outcome   Outcome, Verdict (outcome, reason, excerpt), the exit code table
  paths     the cache, the results root, the repository's (or a wheel's) data directories
  timeouts  every bound, scaled for TCG       log     Log, the stderr logger
  files     atomic JSON writes, safe names    apt     the host's apt sources and downloads
  places    directories proven writable; whose fault it is when one is not
  lock      one writer per cache entry (flock beside it), staged then renamed into place
  mounts    what is mounted under a directory, unmounted; a tree removed without crossing a mount
  progress  a long step's progress on a terminal, one line redrawn; nothing under CI
"""
