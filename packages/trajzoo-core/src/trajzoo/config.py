"""Configuration classes of the core and the model packages: one declarative mechanism.

A config class is a dataclass deriving from :class:`ConfigClass` whose fields declare their
allowed values with :func:`ranged`::

    @dataclass
    class MyConfig(ConfigClass):
        d_model: int = ranged(64, ge=1)
        dropout: float = ranged(0.0, ge=0, lt=1)
        dispatch: str = ranged("sparse", choices=("dense", "sparse"))

        def check(self) -> None:  # optional: constraints between fields
            check_divisible(self, "d_model", "heads")

Every construction (``MyConfig(...)``, ``dataclasses.replace``, :meth:`ConfigClass.from_dict`)
checks each field's type (from its annotation: ``bool``, ``int``, ``float`` = a finite int or
float, ``str``, ``X | None``) and range, then :meth:`ConfigClass.check`. Messages name the field
and the allowed range, e.g. ``dropout must be in [0, 1), got 1.5``; :meth:`ConfigClass.from_dict`
also refuses unknown keys, naming them, and with ``key="models.metatrl.hparams"`` every message
names the full dotted key (``models.metatrl.hparams.dropout must be in [0, 1), got 1.5``), so the
workflow can validate a model's config section when the DAG is built.
"""
from __future__ import annotations

import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound="ConfigClass")


def strict_from_dict(cls: type[T], d: Mapping[str, Any] | None, what: str) -> T:
    """Build the dataclass ``cls`` from a mapping (e.g. a YAML section); missing keys take the
    dataclass defaults.

    Args:
        cls: a dataclass type.
        d: field values (None = all defaults).
        what: name used in the error message (e.g. ``"start hparams"``).

    Returns:
        ``cls(**d)``.

    Raises:
        ValueError: naming every key of ``d`` that is not a field of ``cls`` (and whatever
            ``cls.__post_init__`` raises for out-of-range values). For a :class:`ConfigClass`
            this is :meth:`ConfigClass.from_dict` (``what`` then names the section).
    """
    if isinstance(cls, type) and issubclass(cls, ConfigClass):
        return cls.from_dict(d, key=what)  # type: ignore[return-value]
    d = dict(d or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s): {unknown} (known: {sorted(known)})")
    return cls(**d)


@dataclass(frozen=True)
class Range:
    """The allowed values of a config field (see :func:`ranged`): bounds and/or a set of choices.

    Attributes:
        ge, gt, le, lt: inclusive / exclusive lower and upper bounds (None = unbounded).
        choices: the allowed values (None = any value within the bounds).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is allowed (a NaN never is when a bound is set)."""
        if self.choices is not None and value not in self.choices:
            return False
        try:
            return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                    and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        except TypeError:
            return False

    def describe(self) -> str:
        """The allowed values in words: ``>= 1``, ``> 0``, ``in [0, 1)``, ``'dense' or 'sparse'``."""
        if self.choices is not None:
            names = [repr(c) for c in self.choices]
            return " or ".join(names) if len(names) <= 2 else "one of " + ", ".join(names)
        low = (self.ge, "[", ">=") if self.ge is not None else (self.gt, "(", ">") if self.gt is not None else None
        high = (self.le, "]", "<=") if self.le is not None else (self.lt, ")", "<") if self.lt is not None else None
        if low and high:
            return f"in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
        if low:
            return f"{low[2]} {_number(low[0])}"
        if high:
            return f"{high[2]} {_number(high[0])}"
        return "any value"


def _number(x: float) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, choices: tuple | list | None = None) -> Any:
    """A dataclass field with a default and its allowed values, for :class:`ConfigClass` subclasses.

    Args:
        default: the field's default (must itself be allowed).
        ge, gt: inclusive / exclusive lower bound.
        le, lt: inclusive / exclusive upper bound.
        choices: the allowed values (e.g. ``("dense", "sparse")``).

    Returns:
        ``dataclasses.field(default=default, metadata={"range": Range(...)})``.

    A None value (of an ``X | None`` field) is never range-checked.

    Raises:
        ValueError: ``default`` outside the range it declares.
    """
    spec = Range(ge, gt, le, lt, tuple(choices) if choices is not None else None)
    if default is not None and not spec.contains(default):
        raise ValueError(f"default {default!r} is not {spec.describe()}")
    return field(default=default, metadata={"range": spec})


@lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name) for f in fields(cls)}


def _type_error(value: Any, annotation: Any) -> str | None:
    """None if ``value`` has the annotated type, else what it should be (``"an integer"``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(annotation)):
            return None
        if len(args) != 1:
            return None
        annotation = args[0]
    if annotation is bool:
        return None if isinstance(value, bool) else "true or false"
    if annotation is int:
        return None if isinstance(value, numbers.Integral) and not isinstance(value, bool) else "an integer"
    if annotation is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite number"
    if annotation is str:
        return None if isinstance(value, str) else "a string"
    return None


def _full(key: str | None, name: str) -> str:
    return f"{key}.{name}" if key else name


class ConfigClass:
    """Base of every configuration dataclass: type and range checks from the field declarations
    (:func:`ranged`), cross-field checks (:meth:`check`), and a strict :meth:`from_dict`.

    Subclasses are ``@dataclass`` (frozen or not) and must not define ``__post_init__`` (put
    constraints between fields in :meth:`check`).
    """

    def __post_init__(self) -> None:
        """Check every field (type, then range), then :meth:`check`.

        Raises:
            ValueError: ``<field> must be <allowed>, got <value>`` for the first bad field, or what
                :meth:`check` raises.
        """
        for f in fields(self):  # type: ignore[arg-type]
            type(self).check_value(f.name, getattr(self, f.name))
        self.check()

    def check(self) -> None:
        """Constraints between fields (none by default); raise ValueError naming the fields."""

    @classmethod
    def check_value(cls, name: str, value: Any, key: str | None = None) -> None:
        """Check one field value against its annotation and :func:`ranged` declaration.

        Args:
            name: field name.
            value: candidate value.
            key: dotted prefix for the message (e.g. ``"models.metatrl.hparams"``).

        Raises:
            ValueError: ``<key>.<name> must be <allowed>, got <value>`` (type or range).
        """
        wanted = _type_error(value, _field_types(cls).get(name))
        if wanted is not None:
            raise ValueError(f"{_full(key, name)} must be {wanted}, got {value!r}")
        spec = next(f for f in fields(cls) if f.name == name).metadata.get("range")  # type: ignore[arg-type]
        if spec is not None and value is not None and not spec.contains(value):
            raise ValueError(f"{_full(key, name)} must be {spec.describe()}, got {value!r}")

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any] | None = None, key: str | None = None) -> C:
        """Build from a mapping (e.g. a YAML section); missing keys take the defaults.

        Args:
            d: field values (None = all defaults).
            key: where the mapping sits in the config, e.g. ``"models.metatrl.hparams"``; every
                message then names the full dotted key.

        Returns:
            The config object.

        Raises:
            ValueError: ``unknown key(s) <key>.<k>, ... (known: ...)`` naming every key that is not
                a field; ``<key>.<field> must be <allowed>, got <value>`` for a value of the wrong
                type or out of range; ``<key>: <message>`` for a failed :meth:`check`.
        """
        d = dict(d or {})
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(str(k) for k in set(d) - set(known))
        if unknown:
            where = f"{cls.__name__} " if key is None else ""
            raise ValueError(f"unknown {where}key(s) {', '.join(_full(key, k) for k in unknown)} "
                             f"(known: {', '.join(known)})")
        for name, value in d.items():
            cls.check_value(name, value, key)
        try:
            return cls(**d)
        except ValueError as exc:
            if key is None:
                raise
            raise ValueError(f"{key}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (round-trips through :meth:`from_dict`)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def describe(cls) -> list[tuple[str, str, Any, str]]:
        """``(name, type, default, allowed values)`` of every field, for documentation."""
        rows = []
        for f in fields(cls):  # type: ignore[arg-type]
            spec = f.metadata.get("range")
            annotation = _field_types(cls).get(f.name)
            rows.append((f.name, getattr(annotation, "__name__", str(annotation)), f.default,
                         spec.describe() if spec is not None else "any value"))
        return rows


def check_divisible(config: Any, numerator: str, denominator: str) -> None:
    """Raise unless field ``numerator`` is divisible by field ``denominator`` (e.g. the model size
    by the number of attention heads).

    Raises:
        ValueError: ``<numerator>=<a> is not divisible by <denominator>=<b>``.
    """
    a, b = getattr(config, numerator), getattr(config, denominator)
    if a % b:
        raise ValueError(f"{numerator}={a} is not divisible by {denominator}={b}")


def check_ordered(config: Any, low: str, high: str) -> None:
    """Raise unless field ``low`` <= field ``high`` (the two ends of a range of values).

    Raises:
        ValueError: ``need <low> <= <high>, got <a>, <b>``.
    """
    a, b = getattr(config, low), getattr(config, high)
    if not a <= b:
        raise ValueError(f"need {low} <= {high}, got {a}, {b}")


#: Tolerance of the split fractions' sum (train + val + test = 1).
SPLIT_SUM_TOLERANCE = 1e-9


def check_city_config(name: str, city: Mapping[str, Any]) -> None:
    """Check what a city's config section means (its structure is the JSON schema's job), so a
    bad value fails when the DAG is built, naming the key, before any job runs.

    Checks: ``bbox`` is ``[min_lon, min_lat, max_lon, max_lat]`` with each min < max, inside
    lon [-180, 180] / lat [-90, 90] and inside the ``crs``'s area of use (pyproj); ``crs`` is a
    code pyproj knows, projected, with axes in metres (a geographic CRS such as EPSG:4326 would
    make every "metre" a degree); ``timezone`` is an IANA time zone (zoneinfo); ``split``
    fractions sum to 1; ``filters.min_points <= filters.max_points``,
    ``map_matching.min_segments <= map_matching.max_segments``; ``filters.plausible_years`` is
    ``[first, last]`` with first <= last.

    Args:
        name: the city's key under ``cities``.
        city: its section (after schema validation with defaults).

    Raises:
        ValueError: ``cities.<name>.<key>: <problem>`` for the first problem found.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from pyproj import CRS
    from pyproj.exceptions import CRSError

    key = f"cities.{name}"
    crs_text = city.get("crs")
    crs = None
    if crs_text is not None:
        try:
            crs = CRS.from_user_input(crs_text)
        except CRSError:
            raise ValueError(f"{key}.crs: {crs_text!r} is not a CRS pyproj knows (unknown EPSG code?)") from None
        if not crs.is_projected:
            raise ValueError(f"{key}.crs: {crs_text!r} ({crs.name}) is not a projected CRS; distances and "
                             "lengths are in its units, so use a projected CRS in metres (e.g. the city's UTM zone)")
        units = {a.unit_name for a in crs.axis_info}
        if units - {"metre"}:
            raise ValueError(f"{key}.crs: {crs_text!r} ({crs.name}) has axes in {sorted(units)}, not metres")
    bbox = city.get("bbox")
    if bbox is not None:
        lo_lon, lo_lat, hi_lon, hi_lat = (float(v) for v in bbox)
        if not (lo_lon < hi_lon and lo_lat < hi_lat):
            raise ValueError(f"{key}.bbox: {list(bbox)} is not [min_lon, min_lat, max_lon, max_lat] with "
                             "min < max (swapped order?)")
        if not (-180 <= lo_lon and hi_lon <= 180 and -90 <= lo_lat and hi_lat <= 90):
            raise ValueError(f"{key}.bbox: {list(bbox)} is outside lon [-180, 180] / lat [-90, 90] "
                             "(order is [min_lon, min_lat, max_lon, max_lat])")
        area = crs.area_of_use if crs is not None else None
        if area is not None and not (area.west - 1e-9 <= lo_lon and hi_lon <= area.east + 1e-9
                                     and area.south - 1e-9 <= lo_lat and hi_lat <= area.north + 1e-9):
            raise ValueError(f"{key}.bbox: {list(bbox)} is not inside the area of use of {key}.crs {crs_text} "
                             f"({area.name.split('.')[0]}: lon {area.west} .. {area.east}, lat {area.south} .. {area.north})")
    tz = city.get("timezone")
    if tz is not None:
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{key}.timezone: {tz!r} is not an IANA time zone (e.g. 'Europe/Lisbon')") from None
    split = city.get("split") or {}
    fractions = [split.get(s) for s in ("train", "val", "test")]
    if all(f is not None for f in fractions) and abs(sum(fractions) - 1.0) > SPLIT_SUM_TOLERANCE:
        raise ValueError(f"{key}.split: train + val + test = {sum(fractions):g}, must be 1 "
                         f"(got {fractions[0]}, {fractions[1]}, {fractions[2]})")
    for section, low, high in (("filters", "min_points", "max_points"),
                               ("map_matching", "min_segments", "max_segments")):
        sec = city.get(section) or {}
        if sec.get(low) is not None and sec.get(high) is not None and sec[low] > sec[high]:
            raise ValueError(f"{key}.{section}: {low} = {sec[low]} > {high} = {sec[high]} (need {low} <= {high})")
    years = (city.get("filters") or {}).get("plausible_years")
    if years is not None and not years[0] <= years[1]:
        raise ValueError(f"{key}.filters.plausible_years: {list(years)} is not [first, last] with first <= last")
