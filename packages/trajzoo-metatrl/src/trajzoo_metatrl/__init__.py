"""MetaTRL: self-supervised cross-city trajectory representation learning based on meta-learning.

Paper: "Self-Supervised Cross-City Trajectory Representation Learning Based on Meta-Learning"
(AAAI 2026). Submodules, one paper component each:

* :mod:`trajzoo_metatrl.parameters` -- shared/private parameter split as the paper assigns it
  ("Parameters Clone", eqs. 1, 3)
* :mod:`trajzoo_metatrl.meta_learning` -- episodic cross-city meta-learning (eqs. 1-4)
* :mod:`trajzoo_metatrl.road_encoder` -- meta-knowledge enhanced road encoder (eqs. 6-10)
* :mod:`trajzoo_metatrl.temporal_encoder` -- transferable temporal encoder (eqs. 11-14)
* :mod:`trajzoo_metatrl.trajectory_encoder` -- knowledge-fusion trajectory encoder (eqs. 15-18)
* :mod:`trajzoo_metatrl.model` -- configuration and the full encoder
* :mod:`trajzoo_metatrl.masking` -- dual-modal masking (Pre-training section; span masks from
  :mod:`trajzoo.nn.span_mask`)
* :mod:`trajzoo_metatrl.objective` -- pre-training heads and loss (eqs. 19-20)

Nothing is imported here so that importing the package stays cheap.
"""
