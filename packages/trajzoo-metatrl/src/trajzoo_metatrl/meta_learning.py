"""Episodic cross-city meta-learning with shared and private parameters (MetaTRL paper, eqs. 1-4).

One pretrainer (encoder + eq. 19 heads) per city. The meta model M_Theta_meta holds only the
SHARED parameters (:mod:`trajzoo_metatrl.parameters`). Every meta epoch runs
``schedule.episodes`` episodes; one episode is, for every source city:

1. Parameters Clone: the source model copies the meta model's shared parameters (its private
   parameters are its own and persist from episode to episode);
2. eq. 1: ``source_steps`` (K) optimisation steps of L^pre on source TRAIN batches, learning rate
   alpha_src = ``lr`` (``inner_optimizer``: ``adam`` by default, ``sgd`` for eq. 1's plain step);
3. the gradient of L^pre on ``query_batches`` source TEST batches, taken at the ADAPTED source
   parameters, with respect to the shared parameters (first order: the inner steps are not
   differentiated through);

then eq. 2, the meta step: theta_meta <- theta_meta - alpha_meta * mean over source cities of
that gradient (each city's gradient is the mean over its query batches). ``meta_optimizer =
"sgd"`` (default) is exactly this plain step (``torch.optim.SGD`` without momentum);
``"adam"`` uses Adam on the same gradient instead. alpha_meta = ``meta_lr``; the paper gives no
value for it.

After the meta epochs, eq. 3: the target model copies the meta model's shared parameters
bitwise; its private parameters stay its own fresh initialisation (no private parameter ever
leaves its city). Then eq. 4: it pretrains on the target TRAIN split for ``target_epochs``
epochs. With no source city (the in-city setting) the meta phase is skipped.

Order of initialisation (reproducible from the global torch seed): the target model first, the
meta model as a copy of the target's initial shared parameters (so the meta model starts where
the target would start from scratch, and its movement is the transfer), then the source models.

Data: each meta epoch, per source, starts endless streams of shuffled passes over the TRAIN and
the TEST split (shuffles and masks from the run's generator); episodes continue the streams, so
the source model sees ``episodes * source_steps * batch_size`` train trips per meta epoch.

The optimisation is the core engine's (:mod:`trajzoo.training.engine`): eq. 1's inner steps are
:meth:`~trajzoo.training.engine.Trainer.run_steps`, eq. 4's target epochs are
:func:`~trajzoo.training.engine.train`; only the meta loop (clone, inner steps, query gradient,
meta step) is written here. A checkpoint with every model, optimiser and RNG state is written
atomically after every meta epoch (here) and every target epoch (by the engine), through
:class:`trajzoo.training.checkpoints.CheckpointStore`; a killed run started again with the same
definition resumes after the last completed epoch and reaches the same weights.

Data parallelism (K ``torch.distributed`` processes, :mod:`trajzoo.training.distributed`): every
batch of every phase is a global batch of ``batch_size`` trajectories of which each process
takes its contiguous share; L^pre's masks are drawn for the whole global batch and each process
back-propagates its share of the global batch's loss
(:meth:`~trajzoo_metatrl.objective.MetaTRLPretrainer.share_loss`), whose gradients are summed over
the processes: by the engine in eq. 1's inner steps (:func:`source_inner_loop`, each global batch
sharded with :func:`trajzoo.training.distributed.share_of`) and in eq. 4's target epochs
(``iterate_batches(..., shard=True)``), and by :func:`query_gradient` for eq. 2 (one all-reduce of
the shared gradients). So every process holds the weights one process would hold (float
tolerance; dropout aside, which draws from the global torch RNG per share). The shuffles and
masks are the same draws as with one process and rank 0 alone writes the checkpoints. The
validation loss of the target epochs stays unsharded (every process evaluates the whole val
split: the same value, no speed-up).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from trajzoo.data.batch import RoadGraph, TrajectoryBatch
from trajzoo.data.city import CityData, iterate_batches, trip_rows
from trajzoo.runlog import config_digest
from trajzoo.training import distributed
from trajzoo.training.checkpoints import CheckpointStore
from trajzoo.training.engine import StepLoss, Trainer, TrainSchedule, train
from trajzoo.training.loop import RunContext, pretraining_loss, progress

from .config import OPTIMIZERS, PretrainSchedule  # noqa: F401 (re-exported: torch-free module)
from .model import MetaTRLConfig
from .objective import MetaTRLPretrainer
from .parameters import load_shared_state, shared_parameters, shared_state_dict


def make_optimizer(kind: str, params: Iterable[Tensor], lr: float) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or plain ``torch.optim.SGD`` (no momentum, no weight decay).

    Raises:
        ValueError: ``kind`` not in :data:`OPTIMIZERS`.
    """
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")


class MetaModel(nn.Module):
    """The meta model M_Theta_meta: a copy of the shared parameters only.

    Args:
        template: a pretrainer whose shared parameters give the names, shapes and initial values.

    Attributes:
        names: shared parameter names, in a fixed (sorted) order.
        values: the parameters, in the order of ``names``.
    """

    def __init__(self, template: nn.Module):
        super().__init__()
        state = shared_state_dict(template)
        self.names = sorted(state)
        self.values = nn.ParameterList([nn.Parameter(state[n].clone()) for n in self.names])

    def state(self) -> dict[str, Tensor]:
        """``{name: tensor}`` of the current shared values (detached, live storage)."""
        return {n: p.detach() for n, p in zip(self.names, self.values)}


def clone_shared_parameters(meta: MetaModel, model: nn.Module) -> None:
    """Parameters Clone (eqs. 1 and 3): copy the meta model's shared values into ``model``
    bitwise; ``model``'s private parameters are untouched."""
    load_shared_state(model, meta.state())


def shared_distance(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    """Global L2 norm of ``a - b`` over the shared tensors (e.g. the meta model's movement).

    Raises:
        KeyError: a name of ``a`` missing from ``b``.
    """
    return float(torch.sqrt(sum(((a[n].double() - b[n].double()) ** 2).sum() for n in a)))


def batch_stream(rows: list[dict], batch_size: int, gen: torch.Generator) -> Iterator[TrajectoryBatch]:
    """Endless shuffled passes over ``rows`` (a new permutation from ``gen`` per pass).

    Raises:
        ValueError: ``rows`` is empty.
    """
    if not rows:
        raise ValueError("cannot stream batches from an empty split")
    while True:
        for _, batch in iterate_batches(rows, batch_size, shuffle=True, generator=gen):
            yield batch


def _step_loss(graph: RoadGraph, gen: torch.Generator, device, shard: bool = False):
    """The engine's ``step_loss``: L^pre (eq. 20) of one batch, masks from ``gen``.

    Under data parallelism the loss is this process's share of the global batch's
    (``StepLoss.global_share``: the engine sums the gradients): the batch is already the share
    (``iterate_batches(..., shard=True)``), or with ``shard`` it is the whole global batch and is
    sharded here (:func:`trajzoo.training.distributed.share_of`). With one process: the loss of
    the batch (``shard`` changes nothing)."""
    def step_loss(model, batch):
        if shard:
            with distributed.share_of(batch) as share:
                loss, stats = model.loss(share.to(device), graph, gen)
        else:
            loss, stats = model.loss(batch.to(device), graph, gen)
        return StepLoss(loss, global_share=bool(stats.get("global_share", 0.0)))
    return step_loss


def source_inner_loop(model: MetaTRLPretrainer, optimizer: torch.optim.Optimizer, batches: Iterator,
                      graph: RoadGraph, steps: int, gen: torch.Generator, device) -> float:
    """Eq. 1: ``steps`` optimisation steps of L^pre on the next ``steps`` batches of ``batches``
    (source TRAIN), through the engine's step primitive
    (:meth:`trajzoo.training.engine.Trainer.run_steps`). Under data parallelism each batch is a
    global batch that every process shards (its share of the loss, gradients summed).

    Returns:
        The mean loss over the steps.

    Raises:
        ValueError: ``batches`` ran out before ``steps`` steps.
    """
    trainer = Trainer(model, optimizer, _step_loss(graph, gen, device, shard=True))
    result = trainer.run_steps(lambda: batches, max_steps=steps)
    if result.steps != steps:
        raise ValueError(f"source batches ran out after {result.steps} of {steps} inner steps")
    return result.train_loss


def query_gradient(model: MetaTRLPretrainer, batches: list[TrajectoryBatch], graph: RoadGraph,
                   gen: torch.Generator, device) -> tuple[dict[str, Tensor], float]:
    """Gradient of eq. 2: d/d theta_shared of the mean L^pre over ``batches`` (source TEST), at the
    model's current (adapted) parameters.

    Under data parallelism each of ``batches`` is a global batch: every process back-propagates
    its share of the batch's loss (:func:`trajzoo.training.distributed.share_of`, masks drawn for
    the whole batch) and the shared gradients are summed over the processes
    (:func:`trajzoo.training.distributed.sum_gradients`), as is the reported loss, so every
    process returns one process's gradient and loss.

    Returns:
        ``({shared name: gradient}, mean loss)``; private gradients are discarded and every
        ``.grad`` of the model is cleared afterwards.

    Raises:
        ValueError: ``batches`` is empty.
    """
    if not batches:
        raise ValueError("query_gradient needs at least one batch")
    model.train()
    model.zero_grad(set_to_none=True)
    losses = []
    for batch in batches:
        with distributed.share_of(batch) as share:  # one process: the batch itself
            loss, _ = model.loss(share.to(device), graph, gen)
        (loss / len(batches)).backward()
        losses.append(loss.item())
    shared = shared_parameters(model)
    distributed.sum_gradients(shared.values())  # data parallelism: the shares' gradients summed
    losses = distributed.sum_over_processes(losses)  # each batch's loss from its shares
    grads = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
             for n, p in shared.items()}
    model.zero_grad(set_to_none=True)
    return grads, sum(losses) / len(losses)


def meta_update(meta: MetaModel, grads: list[dict[str, Tensor]], optimizer: torch.optim.Optimizer) -> None:
    """Eq. 2: set the meta model's gradient to the mean of the source cities' shared-parameter
    gradients and take one optimiser step (with plain SGD: theta - alpha_meta * mean gradient).

    Raises:
        ValueError: ``grads`` is empty.
    """
    if not grads:
        raise ValueError("meta_update needs the gradient of at least one source city")
    optimizer.zero_grad(set_to_none=True)
    for name, p in zip(meta.names, meta.values):
        p.grad = torch.stack([g[name].to(p.device) for g in grads]).mean(dim=0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@dataclass
class SourceTask:
    """One source city of the meta phase.

    Attributes:
        name: city key. model: its pretrainer (private parameters persist across episodes).
        optimizer: its eq. 1 optimiser. graph: its road graph (on the device).
        train_batches: stream of source TRAIN batches (eq. 1).
        test_batches: stream of source TEST batches (eq. 2).
    """

    name: str
    model: MetaTRLPretrainer
    optimizer: torch.optim.Optimizer
    graph: RoadGraph
    train_batches: Iterator[TrajectoryBatch]
    test_batches: Iterator[TrajectoryBatch]


def meta_episode(meta: MetaModel, meta_optimizer: torch.optim.Optimizer, tasks: list[SourceTask],
                 source_steps: int, query_batches: int, gen: torch.Generator, device) -> list[tuple[float, float]]:
    """One episode: for every source, clone, K inner steps on TRAIN (eq. 1), gradient on TEST at
    the adapted parameters; then one meta step on the mean gradient (eq. 2).

    Args:
        meta: the meta model (updated in place). meta_optimizer: over ``meta.parameters()``.
        tasks: the source cities, visited in order. source_steps: K. query_batches: TEST batches.
        gen: generator of the masks (and of the shuffles inside the streams).
        device: where batches go.

    Returns:
        ``[(mean inner train loss, query loss)]`` per source.

    Raises:
        ValueError: as :func:`source_inner_loop`, :func:`query_gradient`, :func:`meta_update`.
    """
    grads, losses = [], []
    for task in tasks:
        clone_shared_parameters(meta, task.model)  # Parameters Clone
        train_loss = source_inner_loop(task.model, task.optimizer, task.train_batches, task.graph,
                                       source_steps, gen, device)  # eq. 1
        query = [next(task.test_batches) for _ in range(query_batches)]
        g, query_loss = query_gradient(task.model, query, task.graph, gen, device)
        grads.append(g)
        losses.append((train_loss, query_loss))
    meta_update(meta, grads, meta_optimizer)  # eq. 2
    return losses


def evaluate_loss(model, rows: list[dict], graph, batch_size: int, seed: int, device) -> float:
    """Mean pretraining loss over ``rows`` with masks from a fixed seed (comparable across epochs);
    see :func:`trajzoo.training.loop.pretraining_loss`."""
    return pretraining_loss(model, rows, graph, batch_size, seed, device)


def new_pretrainer(city: CityData, config: MetaTRLConfig, device) -> MetaTRLPretrainer:
    """A freshly initialised pretrainer for ``city`` (global torch RNG) on ``device``."""
    return MetaTRLPretrainer(city.graph.num_segments, int(city.graph.attributes.shape[1]), config).to(device)


@dataclass
class MetaPretrainResult:
    """Outcome of :func:`meta_pretrain`.

    Attributes:
        target: the pretrained TARGET model (encoder + heads).
        meta: the meta model after the meta phase (None in-city, or when the run resumed in the
            target phase).
        initial_shared: the target's shared parameters at initialisation (= the meta model's
            start); ``shared_distance(meta.state(), initial_shared)`` is the meta movement.
    """

    target: MetaTRLPretrainer
    meta: MetaModel | None
    initial_shared: dict[str, Tensor]


def meta_pretrain(target: CityData, sources: list[CityData], config: MetaTRLConfig, schedule: PretrainSchedule,
                  ctx: RunContext) -> MetaPretrainResult:
    """Run eqs. 1-4 (module docstring).

    Args:
        target: the target city (its train split is pretrained on, val split only logged).
        sources: source cities (train split for eq. 1, test split for eq. 2); empty = in-city.
        config: model hyperparameters. schedule: see :class:`PretrainSchedule`.
        ctx: device, seed, checkpoint folder, logger; per-epoch losses are appended to
            ``ctx.history`` (one ``meta:<city>`` row per meta epoch and source, with the mean
            inner and query losses and the meta model's movement so far, then the engine's
            ``target:<city>`` rows).

    Returns:
        A :class:`MetaPretrainResult`.

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
    meta_phase = bool(sources) and schedule.meta_epochs > 0
    resume_meta = store.latest("meta", device) if resume_target is None and meta_phase else None
    gen = ctx.generator(offset=0)
    target_graph = target.graph.to(device)
    target_model = new_pretrainer(target, config, device)  # first: its init is the seed's
    initial_shared = shared_state_dict(target_model)
    meta = None
    if meta_phase and resume_target is None:
        meta = MetaModel(target_model).to(device)
        meta_opt = make_optimizer(schedule.meta_optimizer, meta.parameters(), schedule.meta_lr)
        src_models = [new_pretrainer(s, config, device) for s in sources]
        src_opts = [make_optimizer(schedule.inner_optimizer, m.parameters(), schedule.lr) for m in src_models]
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
            tasks = [SourceTask(s.name, m, o, g, batch_stream(tr, schedule.batch_size, gen),
                                batch_stream(te, schedule.batch_size, gen))
                     for s, m, o, g, tr, te in zip(sources, src_models, src_opts, src_graphs, src_train, src_test)]
            sums = [[0.0, 0.0] for _ in tasks]
            for _ in range(schedule.episodes):
                for acc, (train_loss, query_loss) in zip(sums, meta_episode(
                        meta, meta_opt, tasks, schedule.source_steps, schedule.query_batches, gen, device)):
                    acc[0] += train_loss / schedule.episodes
                    acc[1] += query_loss / schedule.episodes
            movement = shared_distance(meta.state(), initial_shared)
            for task, (train_loss, query_loss) in zip(tasks, sums):
                ctx.history.append({"phase": f"meta:{task.name}", "epoch": epoch, "train_loss": train_loss,
                                    "val_loss": query_loss, "meta_movement": movement})
                ctx.logger.info("meta epoch %d source %s: train loss %.4f, query (test) loss %.4f, "
                                "meta movement %.4f", epoch, task.name, train_loss, query_loss, movement)
            if distributed.world()[0] == 0:  # one writer under data parallelism
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
    batches = lambda: (b for _, b in iterate_batches(train_rows, schedule.batch_size, shuffle=True,  # noqa: E731
                                                     generator=gen, shard=True))  # a share per process
    train(target_model, opt, _step_loss(target_graph, gen, device), batches,  # eq. 4
          TrainSchedule(epochs=schedule.target_epochs),
          phase=f"target:{target.name}", history=ctx.history, generator=gen, store=store, checkpoint_phase="target",
          val_loss=lambda m: evaluate_loss(m, val_rows, target_graph, schedule.batch_size, ctx.seed + 7, device),
          device=device, logger=ctx.logger, label="target", desc="target epochs")
    return MetaPretrainResult(target_model, meta, initial_shared)
