"""Where a result file is written and read: the typed records, results.json / results.yaml (``document``), the
output folder's layout, the console log, report.html and its pictures, benchmark.sh's summary, and compare.py."""
