"""The scenario runner: measure/ (where latency and throughput are measured), streams/ (where a stream process
starts), results/ (where a result file is written), loadgen/ (MLPerf LoadGen scenarios), system/ (the machine)."""
