"""torch: the task's data, the metrics, the cells and their fast paths, the model, its training,
checkpoints and evaluation. Imports only the torch-free base beneath it."""
