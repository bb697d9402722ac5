"""Baseline models for trajzoo, registered in the ``trajzoo.models`` entry-point group.

* ``transformer-mlm`` -- a BERT-style Transformer over road ids pretrained by masked-road
  prediction (the Toast / BERT family); :mod:`trajzoo_baselines.transformer_mlm`.
* ``start`` -- START (Jiang et al., "Self-supervised Trajectory Representation Learning with
  Temporal Regularities and Travel Semantics", ICDE 2023); :mod:`trajzoo_baselines.start`.
* ``node2vec`` -- node2vec road-segment embeddings (Grover & Leskovec, KDD 2016: biased walks +
  gensim skip-gram) initialising the ``transformer-mlm`` encoder's road table;
  :mod:`trajzoo_baselines.node2vec`, :class:`trajzoo_baselines.plugin.Node2VecPlugin`.

Shared pieces: :mod:`trajzoo_baselines.training` (the single-city pretraining loop, through the
core engine); pooling, position encodings, masks, graph and batch checks and NT-Xent come from
:mod:`trajzoo.nn`, config
classes from :mod:`trajzoo.config`. No other model package is imported.

Nothing is imported here so that importing the package stays cheap.
"""
