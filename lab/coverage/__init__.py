"""Kernel coverage: the guest's gcov counters of a coverage build (kernel/profiling.py) turned
into lines, functions and branches run, per file, per suite and per run (gcovr), and the lines
a patch changed that ran (`lab validate --coverage`)."""
