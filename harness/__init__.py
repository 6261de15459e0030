"""The scenario runner: ``main`` (a run, from options to combined results), ``options`` (every option), ``cli`` (the
installed ``rife-bench`` and its subcommands), and its rooms: measure/ (where latency and throughput are measured),
samples/ (where quality mode's samples come from), streams/ (where a stream process starts), results/ (where a
result file is written), loadgen/ (MLPerf LoadGen scenarios), system/ (the machine)."""
