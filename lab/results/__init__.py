"""results: what a run leaves on disk, and reading it back. Uses core only.

Modules, one job each:
  model       TestRecord, SuiteResult           junit       JUnit XML in (records) and out (junit.xml)
  stream      records from labstream's lines    kernel_log  crashes and warnings in a console or dmesg
  record      RunRecord and its typed RunMetadata (metadata.json, results.json)
  layout      the results directory's file names
  load        the one reader of results directories (report, compare, matrix, LAVA)
"""
