"""START: "Self-supervised Trajectory Representation Learning with Temporal Regularities and
Travel Semantics" (Jiang et al., ICDE 2023), one paper component per module:

* :mod:`.config` -- hyper-parameters (:class:`STARTConfig`) and schedule (:class:`STARTSchedule`)
* :mod:`.road_encoder` -- TPE-GAT, the trajectory-pattern-enhanced graph attention road encoder
  (attention uses the transfer probability p_ij)
* :mod:`.trajectory_encoder` -- TAT-Enc, the time-aware trajectory encoder (minute-of-day and
  day-of-week embeddings; self-attention biased by the time interval between positions)
* :mod:`.augmentation` -- trajectory trimming and temporal shifting (contrastive views)
* :mod:`.model` -- the full encoder (TPE-GAT + TAT-Enc, mean pooling)
* :mod:`.objective` -- span-masked trajectory recovery + NT-Xent contrastive loss

Nothing is imported here so that importing the package stays cheap.
"""
