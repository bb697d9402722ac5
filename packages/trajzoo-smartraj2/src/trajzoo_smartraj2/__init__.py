"""SMARTraj2 (paper ``../shared/papers/smartraj2.txt``): a multi-city, multi-view trajectory
representation model with feature disentanglement and personalised gating, as a trajzoo model
package. One paper component per module:

* :mod:`.gps_encoder` -- hierarchical GPS encoder (eq. 1)
* :mod:`.route_encoder` -- GAT + temporal features + Transformer route encoder (eq. 2)
* :mod:`.grid_encoder` -- Transformer grid encoder with POI semantics (eq. 3)
* :mod:`.disentanglement` -- shared and city-specific extractors, difference loss (eqs. 4-6)
* :mod:`.gating` -- city- and trajectory-level personalised gates (eqs. 7-12)
* :mod:`.objectives` -- masking, masked modelling per view, cross-view contrastive loss (eqs. 13-15)
* :mod:`.model` -- the configuration and the full model
* :mod:`.pretraining` -- multi-city joint pretraining (AdamW, warm-up then cosine)
* :mod:`.plugin` -- the ``trajzoo.models`` entry point
"""
