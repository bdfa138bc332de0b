"""Pairing rules: which target file belongs to a degraded file when their names differ.

Benchmarks are published with names that differ between the degraded and the clean side:
Rain100L ``rain-12`` <-> ``norain-12``, RESIDE ``0025_0.8_0.04`` <-> ``0025`` (several hazy
images per clear one), DIV2K ``0001x4`` <-> ``0001``. A :class:`PairingRule` maps a degraded
name to its target name, either with a template (``{field}`` matches one or more characters
other than ``/``, non-greedily) or with a regular expression with named groups, e.g.
``(?P<id>\\d+)_.*``. Names are file stems (relative paths without extension in recursive or
globbed folders). :func:`match_names` applies a list of rules (the first that names an
existing target wins, so mirror variants can be listed side by side) and reports every name
it could not pair in one error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from rcot_lightning.errors import RCOTError

__all__ = ["PairingRule", "as_rules", "match_names"]

_FIELD = re.compile(r"\{(\w+)\}")


def _listing(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


class PairingRule:
    """Map a degraded image name to the name of its target.

    Args:
        degraded: a template such as ``"rain-{id}"`` or ``"{id}_{airlight}_{beta}"``, or a
            regular expression with named groups (recognised by ``(?P<``); it must match the
            whole name.
        target: a template over the fields of ``degraded``, e.g. ``"norain-{id}"``.
        key: the config key of the rule, named in error messages.

    Example:
        >>> rule = PairingRule("{id}_{airlight}_{beta}", "{id}")
        >>> rule.target_name("0025_0.8_0.04"), rule.target_name("0025")
        ('0025', None)
        >>> PairingRule(r"(?P<id>\\d+)x4", "{id}").target_name("0001x4")
        '0001'
    """

    def __init__(self, degraded: str, target: str, key: str = "data.folders.pairing") -> None:
        if not isinstance(degraded, str) or not isinstance(target, str) or not degraded:
            raise RCOTError(
                f"{key}: a rule needs two strings, degraded and target, got "
                f"{degraded!r} -> {target!r}"
            )
        self.degraded, self.target, self.key = degraded, target, key
        source = degraded if "(?P<" in degraded else _template_regex(degraded, key)
        try:
            self.pattern = re.compile(source)
        except re.error as err:
            raise RCOTError(
                f"{key}: {degraded!r} is not a valid regular expression ({err})"
            ) from None
        missing = sorted(set(_FIELD.findall(target)) - set(self.pattern.groupindex))
        if missing:
            raise RCOTError(
                f"{key}: the target {target!r} uses {', '.join(missing)}, which the degraded "
                f"pattern {degraded!r} does not define"
            )

    def target_name(self, name: str) -> str | None:
        """The target name of degraded ``name``, or ``None`` when the rule does not match it."""
        found = self.pattern.fullmatch(name)
        if found is None:
            return None
        return _FIELD.sub(lambda m: found.group(m.group(1)), self.target)

    def __repr__(self) -> str:
        return f"{self.degraded!r} -> {self.target!r}"


def _template_regex(template: str, key: str) -> str:
    parts, seen, end = [], set(), 0
    for field in _FIELD.finditer(template):
        parts.append(re.escape(template[end : field.start()]))
        name = field.group(1)
        # A field used twice must hold the same text both times.
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+?)")
        seen.add(name)
        end = field.end()
    parts.append(re.escape(template[end:]))
    if not seen:
        raise RCOTError(f"{key}: the template {template!r} has no {{field}}; e.g. 'rain-{{id}}'")
    return "".join(parts)


def as_rules(spec: Any, key: str = "data.folders.pairing") -> list[PairingRule]:
    """Rules from a config value: ``None``, one ``{degraded, target}`` mapping, or a list of them.

    Example:
        >>> as_rules([{"degraded": "rain-{id}", "target": "norain-{id}"}])
        ['rain-{id}' -> 'norain-{id}']
    """
    if spec is None:
        return []
    if isinstance(spec, PairingRule):
        return [spec]
    items = [spec] if isinstance(spec, Mapping) else spec
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise RCOTError(
            f"{key} must be a mapping {{degraded: 'rain-{{id}}', target: 'norain-{{id}}'}} or a "
            f"list of them, got {spec!r}"
        )
    rules = []
    for i, item in enumerate(items):
        if isinstance(item, PairingRule):
            rules.append(item)
            continue
        where = f"{key}[{i}]" if not isinstance(spec, Mapping) else key
        if not isinstance(item, Mapping) or set(item) != {"degraded", "target"}:
            raise RCOTError(f"{where} must have exactly the keys degraded and target, got {item!r}")
        rules.append(PairingRule(str(item["degraded"]), str(item["target"]), where))
    return rules


def match_names(
    degraded: Sequence[str],
    target: Sequence[str],
    rules: Sequence[PairingRule] = (),
    many_to_one: bool = False,
    where: tuple[str, str] = ("degraded folder", "target folder"),
    ignore: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
) -> list[tuple[int, int]]:
    """Pair degraded names with target names: identical names, or by the first matching rule.

    Args:
        degraded: degraded image names.
        target: target image names.
        rules: pairing rules tried in order; none pairs identical names.
        many_to_one: allow several degraded images per target (RESIDE); otherwise that is an
            error naming the target and its images.
        where: descriptions (folders) of the two lists, for error messages.
        ignore: degraded / target names skipped as unreadable: their partners are dropped
            silently (the skip already warned about them).

    Returns:
        ``(degraded index, target index)`` for every degraded image, in degraded order.

    Raises:
        RCOTError: no name matches any rule; some names have no partner (all are listed);
            a target has several degraded images and ``many_to_one`` is off.

    Example:
        >>> rules = as_rules({"degraded": "rain-{id}", "target": "norain-{id}"})
        >>> match_names(["rain-1", "rain-2"], ["norain-2", "norain-1"], rules)
        [(0, 1), (1, 0)]
    """
    target_index = {name: j for j, name in enumerate(target)}
    pairs: list[tuple[int, int]] = []
    no_rule, no_target = [], []
    for i, name in enumerate(degraded):
        if not rules:
            candidates = [name]
        else:
            candidates = [t for rule in rules if (t := rule.target_name(name)) is not None]
            if not candidates:
                no_rule.append(name)
                continue
        found = next((t for t in candidates if t in target_index), None)
        if found is not None:
            pairs.append((i, target_index[found]))
        elif not any(t in ignore[1] for t in candidates):
            no_target.append(f"{name} (expected {candidates[0]})" if rules else name)
    if rules and len(no_rule) == len(degraded):
        raise RCOTError(
            f"data.folders.pairing: no rule of {list(rules)} matches any of the {len(degraded)} "
            f"names in {where[0]} (e.g. {_listing(list(degraded), 3)}); fix the rule or point the "
            "folder at the degraded images"
        )
    used = {j for _, j in pairs}
    partners = _partners(ignore[0], rules)
    lonely = [n for j, n in enumerate(target) if j not in used and n not in partners]
    parts = []
    if no_rule:
        parts.append(
            f"{len(no_rule)} degraded images match no rule of {list(rules)}: "
            f"{_listing(no_rule)} (in {where[0]})"
        )
    if no_target:
        how = "target of the name their rule gives" if rules else "target with the same stem"
        parts.append(
            f"{len(no_target)} degraded images have no {how}: {_listing(no_target)} (in {where[0]})"
        )
    if lonely:
        how = "by any rule" if rules else "with the same stem"
        parts.append(
            f"{len(lonely)} target images have no degraded image {how}: {_listing(lonely)} "
            f"(in {where[1]})"
        )
    if parts:
        hint = "set data.folders.pairing" if not rules else "fix data.folders.pairing"
        raise RCOTError(
            "paired folders: " + "; ".join(parts) + "; files are matched by name without "
            f"extension (or by data.folders.pairing rules), so rename or remove them, or {hint}"
        )
    if not many_to_one:
        by_target: dict[int, list[str]] = {}
        for i, j in pairs:
            by_target.setdefault(j, []).append(degraded[i])
        shared = [(target[j], names) for j, names in by_target.items() if len(names) > 1]
        if shared:
            examples = "; ".join(f"{t} <- {_listing(n, 3)}" for t, n in shared[:3])
            raise RCOTError(
                f"paired folders: {len(shared)} targets in {where[1]} have several degraded "
                f"images ({examples}); set data.folders.many_to_one=true if that is intended (e.g. "
                "RESIDE: several hazy images per clear one)"
            )
    return pairs


def _partners(skipped: frozenset[str], rules: Sequence[PairingRule]) -> set[str]:
    """Target names of degraded images that were skipped as unreadable."""
    if not rules:
        return set(skipped)
    return {t for name in skipped for rule in rules if (t := rule.target_name(name)) is not None}
