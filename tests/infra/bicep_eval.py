"""Evaluate the expressions of our Bicep templates offline, from pycep-parser's syntax tree.

This is no Bicep compiler: it covers the constructs infra/ uses (parameters, variables, loops,
object and array literals, string interpolation, property and index access, ternaries,
comparisons, a handful of functions, module outputs) so the tests can compute what the template
would set, e.g. the app settings and GATEWAY_REGIONS, and check them against the code.

pycep's tree does not tell an identifier from a string literal: a bare string is read as the
symbol of that name when one is in scope (loop variable, parameter, variable, resource, module),
else as a literal. Values only Azure knows at deployment (an account's endpoint, a connection
string, a principal id) come from ``runtime``, a hook the caller passes, or stay ``Unknown``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycep import BicepParser

__all__ = ["ModuleRef", "Refused", "ResourceRef", "Template", "Unknown", "parse"]

_MISSING = object()
_INTERPOLATION = re.compile(r"\$\{")
_FAIL = re.compile(r"\bfail\(")
_FAIL_STANDIN = "dataUriToString("  # pycep 0.5.1 parses it; infra/ never calls it itself


def parse(path: Path) -> dict[str, Any]:
    """pycep's syntax tree of one .bicep file (raises on a syntax error). Cached by content:
    lark parses a file in seconds, and the tests read each file many times."""
    text = path.read_text()
    if _FAIL_STANDIN in text:
        raise ValueError(f"{path.name} calls {_FAIL_STANDIN[:-1]}, the stand-in for fail()")
    return _parse_text(_FAIL.sub(_FAIL_STANDIN, text))


@functools.lru_cache(maxsize=256)
def _parse_text(text: str) -> dict[str, Any]:
    # lark's tree transformer recurses once per nesting level, and module outputs are evaluated
    # (and their files parsed) from deep inside an evaluation.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    return _parser().parse(text=text)


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()  # building the grammar takes seconds: once per process


class Refused(Exception):
    """A ``fail(message)`` the template evaluated: the deployment would stop with ``message``."""


class Unknown(str):
    """A value known only at deployment; prints as ``<what>`` and absorbs further access."""

    def __new__(cls, what: str) -> Unknown:
        return super().__new__(cls, f"<{what}>")


# (resource type, property path, resource name) -> value. ``list()`` calls it as
# ("list", api version, resource id).
Runtime = Callable[[str, str, str], Any]


@dataclass
class ResourceRef:
    template: Template
    symbol: str
    type: str
    config: dict[str, Any]
    scope: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        if key == "id":
            return f"/fake/{self.type}/{self.name}"
        return _Lazy(self, (key,))

    @property
    def name(self) -> str:
        return self.template.eval(self.config["name"], self.scope)


@dataclass
class _Lazy:
    """Part of a resource's declared body, evaluated when it is read."""

    resource: ResourceRef
    path: tuple[str, ...]

    def resolve(self) -> Any:
        node: Any = self.resource.config
        for key in self.path:
            if not isinstance(node, dict) or key not in node:
                return self.resource.template.runtime_value(
                    self.resource.type, ".".join(self.path), self.resource.name
                )
            node = node[key]
        return self.resource.template.eval(node, self.resource.scope)

    def get(self, key: str) -> Any:
        return _Lazy(self.resource, (*self.path, key))


@dataclass
class ModuleRef:
    template: Template  # the module's own template, with its parameters bound
    condition: bool

    def get(self, key: str) -> Any:
        if key == "outputs":
            return {name: _Output(self.template, name) for name in self.template.tree["outputs"]}
        raise KeyError(key)


@dataclass
class _Output:
    template: Template
    name: str

    def resolve(self) -> Any:
        return self.template.output(self.name)


class Template:
    """One .bicep file with its parameters bound; ``eval`` computes expressions in it."""

    def __init__(
        self,
        path: Path,
        params: Mapping[str, Any] | None = None,
        *,
        runtime: Runtime | None = None,
    ) -> None:
        self.path = path
        self.tree = parse(path)
        self.runtime = runtime
        self._given = dict(params or {})
        self._cache: dict[str, Any] = {}

    # --- symbols -------------------------------------------------------------------------------
    def param(self, name: str) -> Any:
        if name in self._given:
            return _resolve(self._given[name])
        default = self.tree["parameters"][name].get("default")
        if default is None:
            raise KeyError(f"{self.path.name}: parameter '{name}' has no value and no default")
        return self.eval(default, {})

    def variable(self, name: str) -> Any:
        key = f"var:{name}"
        if key not in self._cache:
            self._cache[key] = self.eval(self.tree["variables"][name]["value"], {})
        return self._cache[key]

    def output(self, name: str) -> Any:
        return self.eval(self.tree["outputs"][name]["value"], {})

    def resource(self, name: str) -> ResourceRef | list[ResourceRef]:
        decl = self.tree["resources"][name]
        config = decl["config"]
        if "loop_type" in config:
            return [
                ResourceRef(self, name, decl["type"], config["config"], scope)
                for scope in self._loop_scopes(config["loop_type"], {})
            ]
        if "condition" in config and "config" in config:
            config = config["config"]
        return ResourceRef(self, name, decl["type"], config)

    def module(self, name: str) -> ModuleRef | list[ModuleRef]:
        decl = self.tree["modules"][name]
        path = (self.path.parent / decl["detail"]["path"]).resolve()
        config = decl["config"]
        if "loop_type" in config:
            refs = []
            for scope in self._loop_scopes(config["loop_type"], {}):
                condition = config.get("condition")
                refs.append(self._module_ref(path, config["config"], scope, condition))
            return refs
        if "condition" in config and "config" in config:
            return self._module_ref(path, config["config"], {}, config["condition"])
        return self._module_ref(path, config, {}, None)

    def _module_ref(
        self, path: Path, config: dict[str, Any], scope: dict[str, Any], condition: Any
    ) -> ModuleRef:
        params = {k: _Deferred(self, v, scope) for k, v in (config.get("params") or {}).items()}
        deployed = True if condition is None else bool(self.eval(condition, scope))
        return ModuleRef(Template(path, params, runtime=self.runtime), deployed)

    def modules(self) -> dict[str, ModuleRef | list[ModuleRef]]:
        return {name: self.module(name) for name in self.tree["modules"]}

    def lookup(self, name: str, scope: Mapping[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        tree = self.tree
        if name in tree.get("parameters", {}):
            return self.param(name)
        if name in tree.get("variables", {}):
            return self.variable(name)
        if name in tree.get("resources", {}):
            return self.resource(name)
        if name in tree.get("modules", {}):
            return self.module(name)
        return _MISSING

    def runtime_value(self, rtype: str, path: str, name: str) -> Any:
        if self.runtime is not None:
            value = self.runtime(rtype, path, name)
            if value is not None:
                return value
        return Unknown(f"{rtype}/{name}.{path}")

    # --- expressions ---------------------------------------------------------------------------
    def eval(self, node: Any, scope: Mapping[str, Any]) -> Any:
        return _resolve(self._eval(node, scope))

    def _eval(self, node: Any, scope: Mapping[str, Any]) -> Any:
        if node is None or isinstance(node, bool | int | float):
            return node
        if isinstance(node, _Value):
            return node.value
        if isinstance(node, str):
            if _INTERPOLATION.search(node):
                return self._interpolate(node, scope)
            found = self.lookup(node, scope)
            return node if found is _MISSING else found
        if isinstance(node, list):
            return [self.eval(item, scope) for item in node]
        if isinstance(node, dict):
            if set(node) == {"operator"}:
                return self._operator(node["operator"], scope)
            if set(node) == {"function"}:
                return self._function(node["function"], scope)
            if "loop_type" in node:
                return [
                    self.eval(node["config"], inner)
                    for inner in self._loop_scopes(node["loop_type"], scope)
                ]
            return {key: self.eval(value, scope) for key, value in node.items()}
        raise TypeError(f"unexpected node {node!r}")

    def _loop_scopes(self, loop: dict[str, Any], scope: Mapping[str, Any]) -> list[dict]:
        detail = loop["detail"]
        items = self.eval(detail["array_name"], scope)
        if loop["type"] == "array":
            return [{**scope, detail["item_name"]: item} for item in items]
        if loop["type"] == "array_index":
            return [
                {**scope, detail["item_name"]: item, detail["index_name"]: i}
                for i, item in enumerate(items)
            ]
        raise NotImplementedError(f"loop type {loop['type']}")

    def _operator(self, op: dict[str, Any], scope: Mapping[str, Any]) -> Any:
        kind, ops = op["type"], op["operands"]
        if kind == "property_accessor":
            inner = ops["operand_2"]
            # pycep nests `a.b != c` as a.(b != c): re-associate the comparison.
            if isinstance(inner, dict) and "operator" in inner:
                inner_op = inner["operator"]
                if inner_op["type"] not in ("property_accessor", "index_accessor"):
                    left = {
                        "operator": {
                            "type": "property_accessor",
                            "operands": {
                                "operand_1": ops["operand_1"],
                                "operand_2": inner_op["operands"]["operand_1"],
                            },
                        }
                    }
                    return self._operator(
                        {
                            "type": inner_op["type"],
                            "operands": {
                                "operand_1": left,
                                "operand_2": inner_op["operands"]["operand_2"],
                            },
                        },
                        scope,
                    )
                if inner_op["type"] == "property_accessor":
                    head = _access(
                        self._eval(ops["operand_1"], scope), inner_op["operands"]["operand_1"]
                    )
                    return self._operator(
                        {
                            "type": "property_accessor",
                            "operands": {
                                "operand_1": _Value(head),
                                "operand_2": inner_op["operands"]["operand_2"],
                            },
                        },
                        scope,
                    )
            return _access(self._eval(ops["operand_1"], scope), inner)
        if kind == "index_accessor":
            target = self.eval(ops["operand_1"], scope)
            return _access(target, self.eval(ops["operand_2"], scope))
        if kind == "conditional":
            chosen = "true_value" if self.eval(ops["condition"], scope) else "false_value"
            return self._eval(ops[chosen], scope)
        if kind == "not":
            return not self.eval(ops["bool_value"], scope)
        a = self.eval(ops["operand_1"], scope)
        if kind == "and":
            return bool(a) and bool(self.eval(ops["operand_2"], scope))
        if kind == "or":
            return bool(a) or bool(self.eval(ops["operand_2"], scope))
        b = self.eval(ops["operand_2"], scope)
        binary: dict[str, Callable[[Any, Any], Any]] = {
            "equals": lambda x, y: x == y,
            "not_equals": lambda x, y: x != y,
            "multiply": lambda x, y: x * y,
            "add": lambda x, y: x + y,
            "minus": lambda x, y: x - y,
            "greater_than": lambda x, y: x > y,
            "less_than": lambda x, y: x < y,
            "coalesce": lambda x, y: x if x is not None else y,
        }
        if kind not in binary:
            raise NotImplementedError(f"operator {kind}")
        return binary[kind](a, b)

    def _function(self, fn: dict[str, Any], scope: Mapping[str, Any]) -> Any:
        kind, params = fn["type"], dict(fn.get("parameters") or {})
        if kind == "filter":
            items = self.eval(params["input_array"], scope)
            var = params["input_element"]
            return [x for x in items if self.eval(params["expression"], {**scope, var: x})]
        if kind == "load_json_content":
            return json.loads((self.path.parent / params["file_path"]).read_text())
        if kind == "data_uri_to_string":  # fail(message), see parse
            raise Refused(self.eval(next(iter(params.values())), scope))
        if kind == "list_func":
            target = self.eval(params["resource_identifier"], scope)
            api = self.eval(params["api_version"], scope)
            return self.runtime_value("list", str(api), str(target))
        index = params.pop("index", None)
        prop = params.pop("property_name", None)
        args = [self.eval(v, scope) for v in params.values() if v is not None]
        value = _FUNCTIONS[kind](*args) if kind in _FUNCTIONS else _unsupported(kind)
        if index is not None:
            value = value[self.eval(index, scope)]
        if prop is not None:
            value = _access(value, prop)
        return value

    def _interpolate(self, text: str, scope: Mapping[str, Any]) -> str:
        out, pos = [], 0
        while (start := text.find("${", pos)) != -1:
            out.append(text[pos:start])
            end, depth, i = None, 0, start + 2
            while i < len(text):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    if depth == 0:
                        end = i
                        break
                    depth -= 1
                elif text[i] == "'":
                    i = text.index("'", i + 1)
                i += 1
            if end is None:
                raise ValueError(f"unterminated interpolation in {text!r}")
            out.append(_to_text(_Expr(self, text[start + 2 : end], scope).parse()))
            pos = end + 1
        out.append(text[pos:])
        return "".join(out)


@dataclass
class _Deferred:
    """A module parameter's expression, evaluated in the parent when the module reads it."""

    template: Template
    node: Any
    scope: Mapping[str, Any]

    def resolve(self) -> Any:
        return self.template.eval(self.node, self.scope)


@dataclass
class _Value:
    value: Any


def _resolve(value: Any) -> Any:
    while isinstance(value, _Lazy | _Output | _Deferred):
        value = value.resolve()
    if isinstance(value, _Value):
        return value.value
    return value


def _access(target: Any, key: Any) -> Any:
    if isinstance(target, _Lazy | ResourceRef):
        return target.get(key)  # a resource's body is read only as deep as the expression goes
    target = _resolve(target)
    if isinstance(key, dict) and set(key) == {"operator"}:
        raise NotImplementedError(f"access by expression {key!r}")
    if isinstance(target, Unknown):
        return Unknown(f"{target[1:-1]}.{key}")
    if isinstance(target, ModuleRef):
        return target.get(key)
    if isinstance(target, list):
        return _resolve(target[int(key)])
    if isinstance(target, dict):
        if key not in target:
            raise KeyError(f"no property '{key}' in {sorted(target)}")
        return _resolve(target[key])
    raise TypeError(f"cannot read '{key}' of {target!r}")


def _to_text(value: Any) -> str:
    value = _resolve(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _unsupported(kind: str) -> Any:
    raise NotImplementedError(f"function {kind}")


def _string(value: Any) -> str:
    value = _resolve(value)
    if isinstance(value, str):
        return value
    return _to_text(value)


def _unique_string(*parts: Any) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:13]


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "union": lambda *objs: (
        list(dict.fromkeys(x for obj in objs for x in obj))
        if all(isinstance(o, list) for o in objs)
        else {k: v for obj in objs for k, v in obj.items()}
    ),
    "empty": lambda value: not value,
    "string_func": _string,
    "string": _string,
    "json_func": json.loads,
    "json": json.loads,
    "join": lambda items, sep: sep.join(_to_text(i) for i in items),
    "split": lambda text, sep: str(text).split(sep),
    "last": lambda items: items[-1],
    "to_lower": lambda text: str(text).lower(),
    "unique_string": _unique_string,
    "subscription": lambda *a: {"id": "/subscriptions/0000", "subscriptionId": "0000"},
    "guid": lambda *parts: _unique_string(*parts),
    "environment": lambda: {"suffixes": {"storage": "core.windows.net"}},
    "length": len,
    "contains": lambda container, item: item in container,
    "replace": lambda text, old, new: str(text).replace(old, new),
    "subscription_resource_id": lambda rtype, *names: (
        "/subscriptions/0000/providers/" + rtype + "/" + "/".join(map(str, names))
    ),
}


class _Expr:
    """A tiny parser for the expressions inside ``${...}``: names, a.b, a[i], 'text', numbers,
    f(x, y), and ``*`` (what the templates interpolate)."""

    _TOKEN = re.compile(r"\s*(?:(\d+)|'([^']*)'|([A-Za-z_][A-Za-z0-9_]*)|(.))")

    def __init__(self, template: Template, text: str, scope: Mapping[str, Any]) -> None:
        self.template, self.scope = template, scope
        self.tokens = [m.groups() for m in self._TOKEN.finditer(text) if any(m.groups())]
        self.pos = 0

    def parse(self) -> Any:
        value = self._product()
        if self.pos != len(self.tokens):
            raise NotImplementedError(f"interpolation {self.tokens!r}")
        return value

    def _peek(self, symbol: str) -> bool:
        return self.pos < len(self.tokens) and self.tokens[self.pos][3] == symbol

    def _product(self) -> Any:
        value = self._postfix()
        while self._peek("*"):
            self.pos += 1
            value = value * self._postfix()
        return value

    def _postfix(self) -> Any:
        number, text, name, _ = self.tokens[self.pos]
        self.pos += 1
        if number is not None:
            value: Any = int(number)
        elif text is not None:
            value = text
        elif name is not None and self._peek("("):
            self.pos += 1
            args = []
            while not self._peek(")"):
                args.append(self._product())
                if self._peek(","):
                    self.pos += 1
            self.pos += 1
            value = _FUNCTIONS[_snake(name)](*args)
        else:
            found = self.template.lookup(name, self.scope)
            if found is _MISSING:
                raise KeyError(f"unknown symbol '{name}' in an interpolation")
            value = _resolve(found)
        while self._peek(".") or self._peek("["):
            if self._peek("."):
                self.pos += 1
                value = _access(value, self.tokens[self.pos][2])
                self.pos += 1
            else:
                self.pos += 1
                key = self._product()
                self.pos += 1  # ]
                value = _access(value, key)
        return value


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
