"""Where latency and throughput are measured: the sample sources, the timed loop and its raw per-call times
(``core``), the stopping rules (``stop``) and every statistic of them (``stats``); the frame metrics, PSNR and
SSIM, and the percentiles and spreads of figures (``metrics``)."""
