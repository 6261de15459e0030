"""MLPerf's scenarios through the real LoadGen (``mlcommons-loadgen``): our engine is the system under test
(``sut``), our frames the query sample library, LoadGen's settings built from the run's options and a user.conf
(``settings``), and its logs read back into the run's results (``logs``), with the accuracy log scored and the
TEST01-style check of performance-mode outputs (``audit``)."""
