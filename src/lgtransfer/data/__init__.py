"""Task groups into batches: `mixture` (training batches by weight and length, fixed
evaluation sets)."""
