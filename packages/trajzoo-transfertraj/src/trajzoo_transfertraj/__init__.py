"""TransferTraj (arXiv 2505.12672) for trajzoo: a region- and task-transferable model of raw GPS
trajectories (point modalities, modality mixing, RTTE = TRIE attention + SC-MoE, unified
masked-modality pretraining)."""
from .model import TransferTraj
from .parameters import PAPER_PRESET, TransferTrajConfig

__all__ = ["PAPER_PRESET", "TransferTraj", "TransferTrajConfig"]
