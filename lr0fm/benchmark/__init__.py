"""The LR0.FM zero-shot benchmark engine: any backbone, any dataset, all resolutions in one pass."""
