"""Grid encoder of SMARTraj2 (eq. 3): ``h_g = GridEncoder(T^g, s(T^g))``.

Each visited cell is its city's learned cell embedding plus its semantic embedding s: the
weighted sum of POI-category embeddings with the cell's normalised POI shares as weights
(``s = sum_c share_c E_c``); a cell without POIs -- every cell of a city without POI data --
gets a learned "no POI" semantic instead. A Transformer encoder runs over the cell sequence
(plus sinusoidal position encoding) and is mean-pooled into h_g.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from trajzoo.data.views import SEMANTIC_DIM
from trajzoo.nn.pooling import mean_pool
from trajzoo.nn.positional import sinusoidal_position_encoding


class GridEncoder(nn.Module):
    """Eq. 3 with per-city cell tables (``cell_tables[city]``: ``Embedding(n_cells, d)``).

    Args:
        cities: city -> number of grid cells. d_model, layers, heads, ffn_dim, dropout: the encoder.
    """

    def __init__(self, cities: dict[str, int], d_model: int, layers: int = 2, heads: int = 4, ffn_dim: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        self.d_model = d_model
        self.cell_tables = nn.ModuleDict({c: nn.Embedding(n, d_model) for c, n in cities.items()})
        self.poi_category = nn.Parameter(torch.zeros(SEMANTIC_DIM, d_model))
        self.no_poi = nn.Parameter(torch.zeros(d_model))
        self.mask_token = nn.Parameter(torch.zeros(d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn_dim, dropout, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) POI-category embeddings and learned vectors."""
        for p in (self.poi_category, self.no_poi, self.mask_token):
            nn.init.normal_(p, std=0.02)

    def semantics(self, shares: Tensor, has_poi: Tensor) -> Tensor:
        """s(T^g): ``(B, G, 13)`` shares, ``(B, G)`` bool -> ``(B, G, d)`` (``no_poi`` where no POI)."""
        s = shares @ self.poi_category
        return torch.where(has_poi[..., None], s, self.no_poi.expand_as(s))

    def forward(self, cells: Tensor, padding: Tensor, shares: Tensor, has_poi: Tensor, city: str,
                cell_mask: Tensor | None = None) -> Tensor:
        """``(B, G)`` cell ids of ``city`` -> ``(B, G, d)`` states; masked cells (``cell_mask``) are
        replaced by the mask token, their semantics too.

        Raises:
            KeyError: the model has no cell table for ``city``.
        """
        if city not in self.cell_tables:
            raise KeyError(f"grid encoder built for cities {sorted(self.cell_tables)}, not {city!r}")
        x = self.cell_tables[city](cells) + self.semantics(shares, has_poi)
        if cell_mask is not None:
            x = torch.where(cell_mask[..., None], self.mask_token.expand_as(x), x)
        x = x + sinusoidal_position_encoding(cells.shape[1], self.d_model, cells.device)
        safe = padding.clone()
        safe[padding.all(dim=1), 0] = False
        return self.transformer(x, src_key_padding_mask=safe)

    def pool(self, states: Tensor, padding: Tensor) -> Tensor:
        """h_g: ``(B, d)`` mean over real cells (0 for a row without a cell)."""
        return mean_pool(states, padding)
