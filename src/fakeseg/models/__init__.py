"""Models: FakeSegment, its discriminator, baselines and checkpoints."""
