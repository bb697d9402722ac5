"""TransferTraj (arXiv 2505.12672) for trajzoo: a region- and task-transferable model of raw GPS
trajectories (point modalities, modality mixing, RTTE = TRIE attention + SC-MoE, unified
masked-modality pretraining)."""
from .parameters import PAPER_PRESET, TransferTrajConfig

__all__ = ["PAPER_PRESET", "TransferTraj", "TransferTrajConfig"]


def __getattr__(name: str):
    """``TransferTraj`` is imported on first use (PEP 562): importing the package (e.g. the plugin,
    when the Snakemake DAG is built) does not import torch."""
    if name == "TransferTraj":
        from .model import TransferTraj
        return TransferTraj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

