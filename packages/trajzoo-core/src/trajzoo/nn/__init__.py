"""Shared neural-network building blocks of the model zoo, one module per block.

* :mod:`trajzoo.nn.positional` -- fixed sinusoidal encodings of positions (Vaswani et al. 2017)
* :mod:`trajzoo.nn.pooling` -- mean pooling over the real (non-padded) positions
* :mod:`trajzoo.nn.random_mask` -- padding checks and uniform random subsets of positions (BERT MLM)
* :mod:`trajzoo.nn.span_mask` -- non-contiguous span masks with geometric lengths (MetaTRL, START)
* :mod:`trajzoo.nn.mlp` -- the two-layer ``MLP`` (MetaTRL eqs. 6, 7, 13, 16)
* :mod:`trajzoo.nn.contrastive` -- InfoNCE and NT-Xent contrastive losses (SimCLR, START)
* :mod:`trajzoo.nn.graph` -- road-graph tensor checks and successor edges with self loops
* :mod:`trajzoo.nn.attention` -- multi-head attention pieces (head split, masked softmax weights)
* :mod:`trajzoo.nn.batch_checks` -- checks of a road-sequence batch against an encoder of N roads

Model packages import from here and never from each other. Nothing is imported by this
``__init__`` so that importing :mod:`trajzoo` stays cheap.
"""
