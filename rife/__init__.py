"""System under test: RIFE's IFNet (variants as data), checkpoints, upstream adapter, execution."""
