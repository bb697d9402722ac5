"""Experiments of the config: which models, target cities, source-city sets and settings to run.

The config's ``experiments`` list expands into :class:`Experiment` s (one per model, variant,
target, setting and source set) and each experiment names the one pretraining it needs
(:attr:`Experiment.training`). Pretrainings are keyed by what they depend on (model, variant,
training cities and their roles, seed), so one pretraining serves every experiment that uses it:
a source-only (zero-shot) pretraining is built once, whichever target asks for it.

Config entry (every key but ``models``, ``targets`` and ``settings`` optional)::

    - models: [transfertraj]          # or "all": every model in config.models
      targets: [porto]
      sources: [[sanfrancisco, chengdu]]   # source-city sets (a flat list = one set)
      settings: [zero-shot, few-shot-0.05]
      variants: [full]                 # "all": full + every variant of the model
      default: true                    # false: built only by its own targets (ablations)

Settings are :data:`trajzoo.registry.SETTINGS`; ``few-shot-F`` takes the fraction F of the
target's train (and validation) split, 0 < F < 1.
"""
from __future__ import annotations

from dataclasses import dataclass

from trajzoo.registry import SETTINGS

#: Settings that pretrain on source cities.
SOURCE_SETTINGS = ("cross-city", "zero-shot", "few-shot")


class ExperimentError(ValueError):
    """A config ``experiments`` entry that cannot run; the message names the entry and the key."""


@dataclass(frozen=True)
class Experiment:
    """One experiment: a model variant evaluated on a target city in one setting.

    Attributes:
        model: model name (a ``trajzoo.models`` entry point and a ``models:`` config key).
        variant: ``"full"`` or a key of ``models.<model>.variants``.
        target: the target city.
        setting: one of :data:`trajzoo.registry.SETTINGS`.
        fraction: share of the target's train split used for fine-tuning: 1.0, 0.0 for
            zero-shot, F for few-shot.
        sources: source cities, sorted (empty for untrained and in-city).
        default: built by the default target.
        city_bound: the model's parameters depend on the target city (it reads ``roads``: its
            road-segment tables are the city's), so even its untrained weights are per city.
    """

    model: str
    variant: str
    target: str
    setting: str
    fraction: float
    sources: tuple[str, ...]
    default: bool = True
    city_bound: bool = True

    @property
    def setting_label(self) -> str:
        """``"few-shot-5"`` (percent of the train split) for few-shot, else the setting."""
        return f"few-shot-{self.fraction * 100:g}" if self.setting == "few-shot" else self.setting

    @property
    def exp_id(self) -> str:
        """Path component of the experiment's outputs: ``in-city``, ``cross-city_from-sanfrancisco``,
        ``few-shot-5_from-chengdu+sanfrancisco``."""
        return self.setting_label + (f"_from-{'+'.join(self.sources)}" if self.sources else "")

    @property
    def training(self) -> str:
        """Key of the pretraining it needs (path component under ``results/models/``):
        ``untrained-porto`` (``untrained`` when the model is not city-bound), ``in-porto``,
        ``sanfrancisco-to-porto`` (cross-city), ``from-chengdu+sanfrancisco`` (zero- and
        few-shot: the same pretraining for every target)."""
        src = "+".join(self.sources)
        if self.setting == "untrained":
            return f"untrained-{self.target}" if self.city_bound else "untrained"
        if self.setting == "in-city":
            return f"in-{self.target}"
        if self.setting == "cross-city":
            return f"{src}-to-{self.target}"
        return f"from-{src}"

    @property
    def pretrain_target(self) -> str | None:
        """The target city the pretraining reads (None for source-only pretraining)."""
        if self.setting in ("zero-shot", "few-shot"):
            return None
        if self.setting == "untrained" and not self.city_bound:
            return None
        return self.target

    @property
    def pretrain_sources(self) -> tuple[str, ...]:
        """The source cities the pretraining reads."""
        return self.sources if self.setting in SOURCE_SETTINGS else ()

    @property
    def training_cities(self) -> list[str]:
        """Every city the pretraining reads (target first)."""
        return ([self.pretrain_target] if self.pretrain_target else []) + list(self.pretrain_sources)


def parse_setting(text: str, where: str) -> tuple[str, float]:
    """``"few-shot-0.05"`` -> ``("few-shot", 0.05)``; ``"zero-shot"`` -> ``("zero-shot", 0.0)``;
    other settings -> fraction 1.0.

    Raises:
        ExperimentError: unknown setting or a few-shot fraction outside (0, 1), naming ``where``.
    """
    if text.startswith("few-shot-"):
        try:
            fraction = float(text[len("few-shot-"):])
        except ValueError:
            raise ExperimentError(f"{where}: {text!r}: few-shot needs a fraction, e.g. few-shot-0.05") from None
        if not 0 < fraction < 1:
            raise ExperimentError(f"{where}: {text!r}: the few-shot fraction must be in (0, 1)")
        return "few-shot", fraction
    if text not in SETTINGS or text == "few-shot":
        raise ExperimentError(f"{where}: unknown setting {text!r}; known: "
                              f"{[s for s in SETTINGS if s != 'few-shot'] + ['few-shot-<fraction>']}")
    return text, 0.0 if text == "zero-shot" else 1.0


def _source_sets(value, where: str) -> list[tuple[str, ...]]:
    if value is None or value == []:
        return [()]
    if all(isinstance(v, str) for v in value):
        return [tuple(sorted(value))]
    if all(isinstance(v, list) for v in value):
        return [tuple(sorted(v)) for v in value]
    raise ExperimentError(f"{where}.sources: a list of cities or a list of lists of cities, got {value!r}")


def expand_experiments(config: dict, plugins: dict) -> list[Experiment]:
    """Expand and check the config's ``experiments`` entries.

    Args:
        config: the validated workflow config (``cities``, ``models``, ``experiments``).
        plugins: model name -> plugin (:class:`trajzoo.registry.ModelPlugin`) for every model
            in ``config["models"]``.

    Returns:
        Experiments in config order, duplicates removed (the first keeps its ``default`` flag;
        a later ``default: true`` duplicate sets it).

    Raises:
        ExperimentError: naming ``experiments[i].<key>``: an unknown model, city or variant; a
            setting the model does not support (naming the ones it does); a city without the
            prepared inputs the model reads (e.g. no road network for a road model); a target
            that is also a source; sources given to a single-city setting or missing for a
            cross-city one.
    """
    cities = config["cities"]
    models = config["models"]
    out: dict[tuple, Experiment] = {}
    for i, entry in enumerate(config.get("experiments", {}).get("runs", [])):
        where = f"experiments.runs[{i}]"
        names = list(models) if entry.get("models") == "all" else list(entry.get("models", []))
        if not names:
            raise ExperimentError(f"{where}.models: name at least one model (or 'all')")
        for model in names:
            if model not in models:
                raise ExperimentError(f"{where}.models: {model!r} is not in models: {sorted(models)}")
            plugin = plugins[model]
            city_bound = "roads" in plugin.inputs
            variants = entry.get("variants", ["full"])
            if variants == "all":
                variants = ["full"] + list(models[model].get("variants", {}))
            for variant in variants:
                if variant != "full" and variant not in models[model].get("variants", {}):
                    raise ExperimentError(f"{where}.variants: {variant!r} is not a variant of {model} "
                                          f"(models.{model}.variants: {sorted(models[model].get('variants', {}))})")
            for target in entry.get("targets", []):
                if target not in cities:
                    raise ExperimentError(f"{where}.targets: city {target!r} is not in cities: {sorted(cities)}")
                for text in entry.get("settings", []):
                    setting, fraction = parse_setting(text, f"{where}.settings")
                    if setting not in plugin.settings:
                        raise ExperimentError(
                            f"{where}: model {model!r} does not support setting {setting!r} "
                            f"(it supports {sorted(plugin.settings)})"
                            + ("; it reads road-segment ids of the city it was trained on, so it needs target data"
                               if setting in ("zero-shot", "few-shot") and city_bound else ""))
                    for sources in _source_sets(entry.get("sources"), where):
                        if setting in SOURCE_SETTINGS and not sources:
                            raise ExperimentError(f"{where}: setting {text!r} needs source cities (sources:)")
                        if setting not in SOURCE_SETTINGS:
                            sources = ()
                        if target in sources:
                            raise ExperimentError(f"{where}: target {target!r} is also a source city; "
                                                  f"{setting} would not be {setting}")
                        for city in sources:
                            if city not in cities:
                                raise ExperimentError(f"{where}.sources: city {city!r} is not in cities: "
                                                      f"{sorted(cities)}")
                        for city in (target, *sources):
                            if city_bound and not cities[city].get("osm"):
                                raise ExperimentError(f"{where}: model {model!r} reads road networks, and city "
                                                      f"{city!r} has none (cities.{city}.osm is null)")
                        for variant in variants:
                            exp = Experiment(model, variant, target, setting, fraction, sources,
                                             bool(entry.get("default", True)), city_bound)
                            key = (model, variant, target, setting, fraction, sources)
                            if key in out and exp.default and not out[key].default:
                                out[key] = exp
                            out.setdefault(key, exp)
    return list(out.values())


def default_experiment(experiments: list[Experiment], model: str, target: str, setting: str) -> Experiment | None:
    """The experiment behind ``results/<target>/<model>.csv``: the first ``full`` experiment of
    the model on the target in its default ``setting``, else its first ``full`` experiment on the
    target; None when the model has no experiment there."""
    full = [e for e in experiments if e.model == model and e.target == target and e.variant == "full"]
    preferred = [e for e in full if e.setting == setting]
    return (preferred or full or [None])[0]


#: Columns of the long result format (one row per metric), in order.
LONG_COLUMNS = ["city", "model", "variant", "setting", "train_fraction", "sources", "task", "metric", "value",
                "n_train", "n_test", "seed", "config_digest"]


def long_results(parts, keys: list[dict], digest: str):
    """Assemble evaluation outputs into the long result format (:data:`LONG_COLUMNS`).

    Args:
        parts: evaluation CSVs (columns task, metric, value, n_train, n_test, seed), or frames.
        keys: per part, the experiment's columns (city, model, variant, setting,
            train_fraction, sources), aligned with ``parts``.
        digest: the config digest of what the numbers depend on.

    Returns:
        DataFrame with :data:`LONG_COLUMNS`, parts in the given order.

    Raises:
        ValueError: ``parts`` and ``keys`` differ in length.
    """
    import pandas as pd

    if len(parts) != len(keys):
        raise ValueError(f"{len(parts)} result parts but {len(keys)} keys")
    frames = []
    for part, key in zip(parts, keys):
        frame = part if isinstance(part, pd.DataFrame) else pd.read_csv(part)
        frames.append(frame.assign(**key))
    if not frames:
        return pd.DataFrame(columns=LONG_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table["config_digest"] = digest
    return table[LONG_COLUMNS]
