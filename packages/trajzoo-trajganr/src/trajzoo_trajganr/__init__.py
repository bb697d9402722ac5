"""TrajGANR (Trajectory-Centric Urban Multimodal Learning via Geospatially Aligned Neural
Representations) for trajzoo, one paper component per module:

* :mod:`.space2vec` -- Space2Vec grid-cell location encoders (eqs. 2, 3)
* :mod:`.time2vec` -- Time2Vec temporal encoder (eq. 3)
* :mod:`.windows` -- fixed trajectory window: random down-sampling, zero padding (appendix A.1.2)
* :mod:`.query_token` -- query-location token with synthetic or masked time (eq. 5, appendix A.2)
* :mod:`.trajectory_encoder` -- waypoint tokens (eq. 3) and the Transformer with the query token (eq. 4)
* :mod:`.queue` -- MoCo-style FIFO queue of location embeddings (negatives of eq. 7)
* :mod:`.objective` -- pairwise InfoNCE (eq. 6) over the modality pairs (eq. 7)
* :mod:`.aggregator` -- permutation-invariant [CLS] self-attention aggregator (eqs. 8, 9)
* :mod:`.head` -- concatenation and two-layer MLP task head (eq. 10)
* :mod:`.image_encoder` -- street-view image encoder (eq. 1): timm backbone + projection head
* :mod:`.mapillary` -- Mapillary API v4 metadata parsing and download
* :mod:`.baselines` -- GeoCLIP location embeddings and a trajectory foundation model pooled on the segment
* :mod:`.model`, :mod:`.training`, :mod:`.parameters`, :mod:`.plugin` -- the model, pretraining, config, entry point
"""
