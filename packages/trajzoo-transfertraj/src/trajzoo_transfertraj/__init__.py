"""TransferTraj (arXiv 2505.12672) for trajzoo."""
