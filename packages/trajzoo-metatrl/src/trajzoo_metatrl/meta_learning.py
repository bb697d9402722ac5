"""Cross-city meta-learning with shared and private parameters (MetaTRL paper, eqs. 1-4).

One pretrainer (encoder + eq. 19 heads) per city. The meta model holds only the SHARED
parameters (names starting ``shared_``, see :mod:`trajzoo_metatrl.parameters`). Each meta epoch:

1. Parameters Clone: every source model copies the meta model's shared parameters.
2. Eq. 1: the source model trains on the source TRAIN split for ``source_steps`` steps
   (Adam, learning rate alpha_src). Its private parameters persist across meta epochs.
3. Eq. 2 (first order): the loss of the source model on batches of the source TEST split is
   differentiated with respect to the source model's shared parameters; that gradient,
   averaged over the source cities, updates the meta model's shared parameters with Adam at
   learning rate alpha_meta (Adam rather than eq. 2's plain step: the paper gives a meta
   learning rate of 5e-4, which only means something with an adaptive optimiser).

Then eq. 3: the target model copies the meta model's shared parameters (its private ones are
its own fresh initialisation; no private parameter ever leaves its city), and eq. 4: it pretrains
on the target TRAIN split for ``target_epochs`` epochs. With no source city (the target-only
variant) steps 1-3 are skipped.

The optimisation itself is the core engine's (:mod:`trajzoo.training.engine`): eq. 1's source
steps are a step budget of :meth:`~trajzoo.training.engine.Trainer.run_steps`, eq. 4's target
epochs are :func:`~trajzoo.training.engine.train`; only the meta loop (clone, inner steps, query
gradient, meta update) is written here. A checkpoint with every model, optimiser and RNG state is
written atomically after every meta epoch (here) and every target epoch (by the engine), both
through :class:`trajzoo.training.checkpoints.CheckpointStore`; a killed run started again with
the same definition resumes after the last completed epoch and reaches the same weights as an
uninterrupted run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from trajzoo.data.city import CityData, iterate_batches, trip_rows
from trajzoo.runlog import config_digest
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.engine import Trainer, TrainSchedule, train
from trajzoo.training.loop import RunContext, pretraining_loss, progress

from .model import MetaTRLConfig
from .objective import MetaTRLPretrainer
from .parameters import load_shared_state, shared_parameters, shared_state_dict


@dataclass(frozen=True)
class PretrainSchedule:
    """Pretraining schedule.

    Attributes:
        meta_epochs: meta-learning rounds over the source cities.
        source_steps: source-model optimisation steps per meta epoch (eq. 1).
        query_batches: source TEST batches whose loss gradient updates the meta model (eq. 2).
        target_epochs: epochs over the target TRAIN split (eq. 4).
        batch_size: trajectories per batch.
        lr: alpha_src = alpha_tar (Adam).
        meta_lr: alpha_meta (Adam).
    """

    meta_epochs: int = 2
    source_steps: int = 20
    query_batches: int = 2
    target_epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    meta_lr: float = 5e-4

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainSchedule":
        """Build from config; unknown keys raise ValueError naming them."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown metatrl pretrain parameter(s): {sorted(unknown)}")
        return cls(**d)


class MetaModel(nn.Module):
    """The meta model M_Theta_meta: a copy of the shared parameters only.

    Args:
        template: a pretrainer whose shared parameters give the names, shapes and initial values.

    Attributes:
        names: shared parameter names, in a fixed order.
    """

    def __init__(self, template: nn.Module):
        super().__init__()
        state = shared_state_dict(template)
        self.names = sorted(state)
        self.values = nn.ParameterList([nn.Parameter(state[n].clone()) for n in self.names])

    def state(self) -> dict[str, Tensor]:
        """``{name: tensor}`` of the current shared values (detached)."""
        return {n: p.detach() for n, p in zip(self.names, self.values)}


def clone_shared_parameters(meta: MetaModel, model: nn.Module) -> None:
    """Parameters Clone (eqs. 1 and 3): copy the meta model's shared values into ``model``;
    ``model``'s private parameters are untouched."""
    load_shared_state(model, meta.state())


def _batches(rows: list[dict], batch_size: int, gen: torch.Generator):
    """Factory of one shuffled pass over ``rows`` (shuffle drawn from ``gen``)."""
    return lambda: iterate_batches(rows, batch_size, shuffle=True, generator=gen)


def _step_loss(graph, gen: torch.Generator, device):
    """The engine's ``step_loss``: L^pre (eq. 20) of one ``(indices, batch)`` item, masks from ``gen``."""
    return lambda model, item: model.loss(item[1].to(device), graph, gen)[0]


def source_inner_loop(model: MetaTRLPretrainer, optimizer: torch.optim.Optimizer, rows: list[dict], graph,
                      steps: int, batch_size: int, gen: torch.Generator, device) -> float:
    """Eq. 1: exactly ``steps`` Adam steps of L^pre on the source TRAIN split (shuffled batches,
    a new pass whenever one ends), through the engine's step primitive
    (:meth:`trajzoo.training.engine.Trainer.run_steps`). Returns the mean loss over the steps."""
    trainer = Trainer(model, optimizer, _step_loss(graph, gen, device))
    return trainer.run_steps(_batches(rows, batch_size, gen), max_steps=steps, repeat=True).train_loss


def query_gradient(model: MetaTRLPretrainer, rows: list[dict], graph, n_batches: int, batch_size: int,
                   gen: torch.Generator, device) -> tuple[dict[str, Tensor], float]:
    """Eq. 2 (first order): gradient of L^pre on source TEST batches with respect to the source
    model's SHARED parameters. Returns ``({name: grad}, mean loss)``; private gradients are
    discarded."""
    model.train()
    model.zero_grad(set_to_none=True)
    losses = []
    for i, (_, batch) in enumerate(iterate_batches(rows, batch_size, shuffle=True, generator=gen)):
        if i >= n_batches:
            break
        loss, _ = model.loss(batch.to(device), graph, gen)
        (loss / n_batches).backward()
        losses.append(loss.item())
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in shared_parameters(model).items()}
    model.zero_grad(set_to_none=True)
    return grads, sum(losses) / max(len(losses), 1)


def meta_update(meta: MetaModel, grads: list[dict[str, Tensor]], optimizer: torch.optim.Optimizer) -> None:
    """Eq. 2: set the meta model's gradient to the mean of the source cities' shared-parameter
    gradients and take one optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    for name, p in zip(meta.names, meta.values):
        p.grad = torch.stack([g[name].to(p.device) for g in grads]).mean(dim=0)
    optimizer.step()


def evaluate_loss(model, rows: list[dict], graph, batch_size: int, seed: int, device) -> float:
    """Mean pretraining loss over ``rows`` with masks from a fixed seed (comparable across epochs);
    see :func:`trajzoo.training.loop.pretraining_loss`."""
    return pretraining_loss(model, rows, graph, batch_size, seed, device)


def _new_pretrainer(city: CityData, config: MetaTRLConfig, device) -> MetaTRLPretrainer:
    return MetaTRLPretrainer(city.graph.num_segments, int(city.graph.attributes.shape[1]), config).to(device)


def meta_pretrain(target: CityData, sources: list[CityData], config: MetaTRLConfig, schedule: PretrainSchedule,
                  ctx: RunContext) -> MetaTRLPretrainer:
    """Run eqs. 1-4 and return the pretrained TARGET model (encoder + heads).

    Args:
        target: the target city (its train split is pretrained on, val split only logged).
        sources: source cities (train split for eq. 1, test split for eq. 2); empty = target only.
        config: model hyperparameters. schedule: see :class:`PretrainSchedule`.
        ctx: device, seed, checkpoint folder, logger; per-epoch losses are appended to
            ``ctx.history``.

    Raises:
        ValueError: a split needed by the schedule is empty.
    """
    device = ctx.device
    fingerprint = config_digest({
        "config": asdict(config), "schedule": asdict(schedule), "seed": ctx.seed,
        "cities": [(c.name, c.graph.num_segments, c.trips["split"].value_counts().sort_index().to_dict())
                   for c in [target, *sources]]})
    store = CheckpointStore(ctx.checkpoint_dir, fingerprint)
    resume_target = store.latest("target", device)
    resume_meta = store.latest("meta", device) if resume_target is None and sources else None
    gen = ctx.generator(offset=0)
    target_graph = target.graph.to(device)
    target_model = _new_pretrainer(target, config, device)
    if sources and resume_target is None:
        meta = MetaModel(target_model).to(device)
        meta_opt = torch.optim.Adam(meta.parameters(), lr=schedule.meta_lr)
        src_models = [_new_pretrainer(s, config, device) for s in sources]
        src_opts = [torch.optim.Adam(m.parameters(), lr=schedule.lr) for m in src_models]
        src_graphs = [s.graph.to(device) for s in sources]
        src_train = [trip_rows(s.split("train")) for s in sources]
        src_test = [trip_rows(s.split("test")) for s in sources]
        for s, tr, te in zip(sources, src_train, src_test):
            if not tr or not te:
                raise ValueError(f"source city {s.name}: empty train ({len(tr)}) or test ({len(te)}) split")
        first = 0
        if resume_meta is not None:
            meta.load_state_dict(resume_meta["meta"])
            meta_opt.load_state_dict(resume_meta["meta_optimizer"])
            for m, o, ms, os_ in zip(src_models, src_opts, resume_meta["sources"], resume_meta["source_optimizers"]):
                m.load_state_dict(ms)
                o.load_state_dict(os_)
            gen.set_state(resume_meta["generator"])
            ctx.history[:] = resume_meta["history"]
            store.restore_rng(resume_meta)
            first = resume_meta["epoch"] + 1
            ctx.logger.info("resuming from meta epoch %d checkpoint", resume_meta["epoch"])
        for epoch in progress(range(first, schedule.meta_epochs), "meta epochs"):
            grads = []
            for s, model, opt, graph, tr, te in zip(sources, src_models, src_opts, src_graphs, src_train, src_test):
                clone_shared_parameters(meta, model)
                train_loss = source_inner_loop(model, opt, tr, graph, schedule.source_steps, schedule.batch_size,
                                               gen, device)
                g, query_loss = query_gradient(model, te, graph, schedule.query_batches, schedule.batch_size,
                                               gen, device)
                grads.append(g)
                ctx.history.append({"phase": f"meta:{s.name}", "epoch": epoch, "train_loss": train_loss,
                                    "val_loss": query_loss})
                ctx.logger.info("meta epoch %d source %s: train loss %.4f, query (test) loss %.4f",
                                epoch, s.name, train_loss, query_loss)
            meta_update(meta, grads, meta_opt)
            store.save("meta", epoch, {
                "meta": meta.state_dict(), "meta_optimizer": meta_opt.state_dict(),
                "sources": [m.state_dict() for m in src_models],
                "source_optimizers": [o.state_dict() for o in src_opts], "generator": gen.get_state(),
                "history": list(ctx.history)})
        clone_shared_parameters(meta, target_model)  # eq. 3
    train_rows = trip_rows(target.split("train"))
    val_rows = trip_rows(target.split("val"))
    if not train_rows:
        raise ValueError(f"target city {target.name}: empty train split")
    opt = torch.optim.Adam(target_model.parameters(), lr=schedule.lr)
    train(target_model, opt, _step_loss(target_graph, gen, device),  # eq. 4
          _batches(train_rows, schedule.batch_size, gen), TrainSchedule(epochs=schedule.target_epochs),
          phase=f"target:{target.name}", history=ctx.history, generator=gen, store=store, checkpoint_phase="target",
          val_loss=lambda m: evaluate_loss(m, val_rows, target_graph, schedule.batch_size, ctx.seed + 7, device),
          device=device, logger=ctx.logger, label="target", desc="target epochs")
    return target_model
