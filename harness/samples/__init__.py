"""Where a quality-mode run's samples come from: Vimeo-90K triplet folders, video files and the built-in
real-video set (``dataset``), checked before the timed loop and decoded ahead of it."""
