"""JSON documents that satisfy a JSON Schema (for tool arguments and ``response_format``), and the
structured-outputs ``strict`` rules Azure enforces on such a schema.

The generator covers what function and response schemas use: ``type`` (also a list), ``properties``,
``required``, ``items``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` / ``allOf``, ``$ref`` into
``$defs`` / ``definitions``, ``minItems``/``maxItems``, ``minimum``/``maximum``,
``minLength``/``maxLength`` and ``default``. Values are deterministic for a given seed.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["SchemaError", "instance", "strict_problem"]

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "gateway", "region", "quota")
_MAX_DEPTH = 12


class SchemaError(ValueError):
    """The schema cannot be satisfied (or is not a schema)."""


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"unsupported $ref {ref!r}")
        target: Any = root
        for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else ():
            if not isinstance(target, dict) or part not in target:
                raise SchemaError(f"unresolvable $ref {ref!r}")
            target = target[part]
        schema = target
        seen += 1
        if seen > 32:
            raise SchemaError("circular $ref")
    if schema is True or schema is None:
        return {}
    if not isinstance(schema, dict):
        raise SchemaError("a schema must be an object")
    return schema


def instance(schema: Any, seed: int = 0, *, all_properties: bool = True) -> Any:
    """A value valid against ``schema``. Optional properties are included when ``all_properties``."""
    root = schema if isinstance(schema, dict) else {}
    return _value(schema, root, random.Random(seed), 0, all_properties)


def _value(schema: Any, root: dict[str, Any], rng: random.Random, depth: int, every: bool) -> Any:
    s = _resolve(schema, root)
    if depth > _MAX_DEPTH:
        raise SchemaError("schema nests too deeply")
    if "const" in s:
        return s["const"]
    if isinstance(s.get("enum"), list) and s["enum"]:
        return s["enum"][rng.randrange(len(s["enum"]))]
    for key in ("anyOf", "oneOf"):
        options = s.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if _resolve(o, root).get("type") != "null"]
            return _value((non_null or options)[0], root, rng, depth + 1, every)
    if isinstance(s.get("allOf"), list) and s["allOf"]:
        merged: dict[str, Any] = {}
        for part in s["allOf"]:
            part = _resolve(part, root)
            for k, v in part.items():
                if k in ("properties",) and isinstance(v, dict):
                    merged.setdefault("properties", {}).update(v)
                elif k == "required" and isinstance(v, list):
                    merged.setdefault("required", []).extend(v)
                else:
                    merged.setdefault(k, v)
        return _value(merged, root, rng, depth + 1, every)
    kind = s.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or kind
        kind = kinds[0] if kinds else None
    if kind is None:
        kind = (
            "object" if "properties" in s else "array" if "items" in s else "string"
        )  # an untyped schema: a string satisfies it
    if kind == "object":
        props = s.get("properties") or {}
        required = set(s.get("required") or ())
        out = {}
        for name, sub in props.items():
            if every or name in required:
                out[name] = _value(sub, root, rng, depth + 1, every)
        for name in required - set(out):
            out[name] = "value"
        return out
    if kind == "array":
        low = int(s.get("minItems", 1))
        high = int(s.get("maxItems", max(low, 2)))
        count = max(low, min(high, 2))
        items = s.get("items", {})
        return [_value(items, root, rng, depth + 1, every) for _ in range(count)]
    if kind == "integer":
        return _number(s, rng, integer=True)
    if kind == "number":
        return _number(s, rng, integer=False)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if "default" in s and isinstance(s["default"], str):
        return s["default"]
    text = " ".join(rng.choice(_WORDS) for _ in range(2))
    low, high = int(s.get("minLength", 0)), int(s.get("maxLength", 10_000))
    text = (text + "x" * max(0, low - len(text)))[:high]
    return text


def _number(s: dict[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    low = s.get("minimum", s.get("exclusiveMinimum", 0))
    high = s.get("maximum", s.get("exclusiveMaximum", max(low, 0) + 100))
    if "exclusiveMinimum" in s and "minimum" not in s:
        low = low + 1
    if "exclusiveMaximum" in s and "maximum" not in s:
        high = high - 1
    if integer:
        low_i, high_i = int(low), int(high)
        return rng.randint(low_i, max(low_i, high_i))
    return round(rng.uniform(float(low), float(max(low, high))), 3)


def strict_problem(schema: Any, path: str = "") -> str | None:
    """Why ``schema`` breaks the strict structured-outputs rules (None when it follows them):
    every object sets ``additionalProperties: false`` and lists all its properties in ``required``."""
    return _strict(schema, schema if isinstance(schema, dict) else {}, path or "()", 0)


def _strict(schema: Any, root: dict[str, Any], where: str, depth: int) -> str | None:
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return None  # the target is checked where it is defined
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "object" in kinds:
        if schema.get("additionalProperties") is not False:
            return f"In context={where}, 'additionalProperties' is required to be supplied and to be false."
        props = list((schema.get("properties") or {}).keys())
        missing = [p for p in props if p not in (schema.get("required") or [])]
        if missing:
            return (
                f"In context={where}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{missing[0]}'."
            )
    children: list[tuple[str, Any]] = []
    for name, sub in (schema.get("properties") or {}).items():
        children.append((f"{where}, 'properties', '{name}'", sub))
    if "items" in schema:
        children.append((f"{where}, 'items'", schema["items"]))
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or ()):
            children.append((f"{where}, '{key}', {i}", sub))
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            children.append((f"{where}, '{key}', '{name}'", sub))
    for child_where, sub in children:
        problem = _strict(sub, root, child_where, depth + 1)
        if problem:
            return problem
    return None
