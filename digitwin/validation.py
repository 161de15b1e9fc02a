"""Validation of Thing Descriptions and of values against TD data schemas.

``validate_td`` is WoT Discovery "minimal validation": the official TD 1.1 or 1.0 JSON Schema
(chosen by ``@context``), the spot checks a schema cannot express (security names, ``id``), and
the discovery extension schema for an enriched TD's ``registration``.

Both ``validate_td`` and the data-schema checkers use two engines: fastjsonschema (compiled to
Python code) decides valid/invalid quickly, and only on failure does jsonschema's Draft 7
validator run to list every error, since fastjsonschema stops at the first one. Errors are
reported in the WoT Discovery ``validationErrors`` shape: a gojsonschema-style dot path
("(root)" for the document itself) and a human description.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import fastjsonschema
import orjson
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError as _JsError
from jsonschema.exceptions import best_match

__all__ = ["FieldError", "ValidationError", "compile_data_schema", "validate_td"]

TD_CONTEXT_V11 = "https://www.w3.org/2022/wot/td/v1.1"
TD_CONTEXT_V10 = "https://www.w3.org/2019/wot/td/v1"

ROOT = "(root)"
_MAX_DESCRIPTION = 300


# --- public types -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One failing field, as an item of WoT Discovery's ``validationErrors``."""

    field: str
    description: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "description": self.description}


class ValidationError(ValueError):
    """A document or value failed validation; ``errors`` lists every failing field."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        super().__init__(_summary(self.errors))


def _summary(errors: list[FieldError], shown: int = 3) -> str:
    if not errors:
        return "validation failed"
    head = "; ".join(f"{e.field}: {e.description}" for e in errors[:shown])
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun}: {head}{more}".replace("\n", " ")


# --- formats ------------------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))",
    re.ASCII,
)


def _is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (offset required), as WoT Discovery demands for ``registration``."""
    if not isinstance(value, str):
        return True  # formats only constrain strings; the type check is the schema's job
    m = _DATE_TIME.fullmatch(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        date(year, month, day)
    except ValueError:
        return False
    off_h, off_m = m.group(7), m.group(8)
    if off_h is not None and (int(off_h) > 23 or int(off_m) > 59):
        return False
    return hour < 24 and minute < 60 and second <= 60  # 60: leap second


def _accept(_value: object) -> bool:
    return True


def _formats_in(schema: object) -> set[str]:
    """Every ``format`` value used in a schema (property *names* map to dicts, so are skipped)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            fmt = node.get("format")
            if isinstance(fmt, str):
                found.add(fmt)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


# --- the two-engine validator -------------------------------------------------------------------


class _Engine:
    """fastjsonschema decides, jsonschema explains. Only ``date-time`` is format-checked
    (when asked): the TD schemas' ``uri``/``iri-reference`` are left to the spot checks, and
    data schemas must accept unknown formats."""

    def __init__(self, schema: dict[str, Any] | bool, *, check_date_time: bool) -> None:
        if check_date_time:
            # Neutralise every other format the schema uses, so both engines agree exactly.
            formats: dict[str, Callable[[object], bool]] = {f: _accept for f in _formats_in(schema)}
            formats["date-time"] = _is_date_time
            self._fast = fastjsonschema.compile(schema, formats=formats, use_default=False)
            checker = FormatChecker(formats=())
            checker.checks("date-time")(_is_date_time)
            self._slow = Draft7Validator(schema, format_checker=checker)
        else:
            self._fast = fastjsonschema.compile(schema, use_default=False, use_formats=False)
            self._slow = Draft7Validator(schema)

    def errors(self, instance: object) -> list[FieldError]:
        try:
            self._fast(instance)
            return []
        except Exception:  # JsonSchemaValueException, or anything odd about the input
            pass
        # jsonschema is the reference: where fastjsonschema is stricter (1.0 as an integer),
        # no errors here means the instance is valid.
        found = _dedupe(fe for err in self._slow.iter_errors(instance) for fe in _explain(err))
        return sorted(found, key=_depth)  # stable: shallow problems (missing members) first


def _depth(error: FieldError) -> int:
    return 0 if error.field == ROOT else error.field.count(".") + 1


def _load_schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("digitwin").joinpath("schemas", name).read_text("utf-8"))


@functools.cache
def _td_engine(version: str) -> _Engine:
    """Compiled lazily (about 0.1 s per schema) and kept for the life of the process."""
    name = f"td-json-schema-validation-{version}.json"
    return _Engine(_load_schema(name), check_date_time=True)


@functools.cache
def _discovery_engine() -> _Engine:
    return _Engine(_load_schema("td-discovery-extensions-json-schema.json"), check_date_time=True)


# --- turning jsonschema errors into FieldErrors -------------------------------------------------


def _field(path: Iterable[object]) -> str:
    return ".".join(str(p) for p in path) or ROOT


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _name(path: list[object]) -> str:
    """What to call the value at ``path`` in a sentence: its key, or "<array> item"."""
    if not path:
        return "value"
    if isinstance(path[-1], int):
        return f"{_name(path[:-1])} item"
    return str(path[-1])


def _literal(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _describe(err: _JsError) -> FieldError:
    """One jsonschema error (not a oneOf/anyOf with context) as a FieldError."""
    path = list(err.absolute_path)
    field = _field(path)
    name = _name(path)
    kind, expected = err.validator, err.validator_value
    if kind == "required":
        inst = err.instance if isinstance(err.instance, dict) else {}
        missing = [p for p in expected if p not in inst]
        prop = next((p for p in missing if err.message.startswith(repr(p))), None)
        text = f"{prop} is required" if prop is not None else err.message
    elif kind == "type":
        want = "/".join(expected) if isinstance(expected, list) else str(expected)
        text = f"Invalid type. Expected: {want}, given: {_json_type(err.instance)}"
    elif kind == "enum":
        allowed = ", ".join(_literal(v) for v in expected)
        text = f"{name} must be one of the following: {allowed} (given: {_literal(err.instance)})"
    elif kind == "const":
        text = f"{name} does not match: {_literal(expected)}"
    elif kind == "format" and expected == "regex":
        text = f"{name} is not a valid regular expression"
    elif kind == "format":
        text = f"Does not match format '{expected}'"
        if expected == "date-time":
            text += " (RFC 3339, e.g. 2021-01-19T17:02:00Z)"
    elif kind == "minItems":
        text = f"Array must have at least {expected} item{'' if expected == 1 else 's'}"
    elif kind == "minProperties":
        text = f"Must have at least {expected} member{'' if expected == 1 else 's'}"
    elif kind == "not":
        # The TD schema explains its "not"s, e.g. "A basic link element should not contain icon"
        why = expected.get("description") if isinstance(expected, dict) else None
        text = why or f"{name} must not be valid under {_literal(expected)}"
    elif kind in ("oneOf", "anyOf"):
        which = "exactly one" if kind == "oneOf" else "at least one"
        text = f"{name} must match {which} of the allowed schemas ({kind})"
        if kind == "oneOf" and not err.context:
            text = f"{name} matches more than one of the allowed schemas (oneOf)"
    else:
        text = err.message
    if len(text) > _MAX_DESCRIPTION:
        text = text[: _MAX_DESCRIPTION - 3] + "..."
    return FieldError(field, text)


def _explain(err: _JsError) -> list[FieldError]:
    """Describe an error; for a failed oneOf/anyOf, describe the branch that was meant.

    The intended branch is the only one that neither fails on the instance's type nor on a
    discriminator (a single-valued ``enum``/``const`` such as a security scheme's ``scheme``).
    """
    if err.validator not in ("oneOf", "anyOf") or not err.context:
        return [_describe(err)]
    branches: dict[object, list[_JsError]] = {}
    for sub in err.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    candidates = [subs for subs in branches.values() if not _off_target(subs)]
    if len(candidates) == 1:
        return [fe for sub in candidates[0] for fe in _explain(sub)]
    if not candidates:
        enumerated = _discriminator_error(err, list(branches.values())) or _type_error(err)
        if enumerated is not None:
            return [enumerated]
    if len(candidates) > 1:
        # Problems every plausible branch agrees on (e.g. a link without href) are real.
        explained = [_dedupe(fe for sub in subs for fe in _explain(sub)) for subs in candidates]
        common = [fe for fe in explained[0] if all(fe in other for other in explained[1:])]
        if common:
            return common
    pool = [sub for subs in candidates for sub in subs] or list(err.context)
    best = best_match(pool)
    if best is None or best is err:
        return [_describe(err)]
    return _explain(best)


def _is_discriminator(sub: _JsError) -> bool:
    """An error saying "this branch is for another kind of value", e.g. ``scheme`` mismatch."""
    if len(sub.relative_path) != 1:
        return False
    if sub.validator == "const":
        return True
    if sub.validator == "enum" and isinstance(sub.validator_value, list):
        return len(sub.validator_value) == 1 or sub.relative_path[0] == "scheme"
    # Additional security schemes are told apart by a prefixed ``scheme`` ("ace:...").
    return sub.validator == "pattern" and sub.relative_path[0] == "scheme"


def _off_target(subs: list[_JsError]) -> bool:
    for sub in subs:
        if sub.validator == "type" and not sub.relative_path:
            return True
        if _is_discriminator(sub):
            return True
        if sub.validator in ("oneOf", "anyOf") and not sub.relative_path and sub.context:
            nested: dict[object, list[_JsError]] = {}
            for s in sub.context:
                nested.setdefault(s.relative_schema_path[0], []).append(s)
            if all(_off_target(v) for v in nested.values()):
                return True
    return False


def _discriminator_error(err: _JsError, branches: list[list[_JsError]]) -> FieldError | None:
    """Every branch rejected the same discriminator: name the value and what is allowed."""
    allowed: list[str] = []
    key: object = None
    stack = [sub for subs in branches for sub in subs]
    while stack:
        sub = stack.pop(0)
        if sub.validator in ("oneOf", "anyOf") and not sub.relative_path:
            stack.extend(sub.context)
        elif _is_discriminator(sub):
            if key is None:
                key = sub.relative_path[0]
            if sub.relative_path[0] != key:
                continue
            if sub.validator == "const":
                values = [_literal(sub.validator_value)]
            elif sub.validator == "enum":
                values = [_literal(v) for v in sub.validator_value]
            else:
                values = [f"a value matching '{sub.validator_value}'"]
            allowed.extend(v for v in values if v not in allowed)
    inst = err.instance
    in_object = isinstance(inst, dict) and key in inst
    in_array = isinstance(inst, list) and isinstance(key, int) and 0 <= key < len(inst)
    if not (in_object or in_array):
        return None
    value = inst[key]  # type: ignore[index]
    path = [*err.absolute_path, key]
    text = f"{_name(path)} {_literal(value)} is not allowed; expected one of: {', '.join(allowed)}"
    return FieldError(_field(path), text)


def _type_error(err: _JsError) -> FieldError | None:
    """Every branch wants another type (e.g. ``security: 5``): list all the types allowed."""
    wanted: list[str] = []
    for sub in err.context:
        if sub.validator == "type" and not sub.relative_path:
            types = (
                sub.validator_value
                if isinstance(sub.validator_value, list)
                else [sub.validator_value]
            )
            wanted.extend(t for t in types if t not in wanted)
    if not wanted:
        return None
    text = f"Invalid type. Expected: {'/'.join(wanted)}, given: {_json_type(err.instance)}"
    return FieldError(_field(err.absolute_path), text)


def _dedupe(errors: Iterable[FieldError]) -> list[FieldError]:
    return list(dict.fromkeys(errors))


# --- Thing Descriptions -------------------------------------------------------------------------

_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f]+")


def validate_td(td: object) -> None:
    """Raise ValidationError listing EVERY failing field, or return None."""
    if not isinstance(td, dict):
        raise ValidationError(
            [FieldError(ROOT, f"Invalid type. Expected: object, given: {_json_type(td)}")]
        )
    errors: list[FieldError] = []
    version, context_error = _td_version(td)
    schema_errors = _td_engine(version).errors(td)
    if context_error is not None:
        errors.append(context_error)
        # The schema would only repeat it, less clearly.
        schema_errors = [e for e in schema_errors if not _under(e.field, "@context")]
    errors.extend(schema_errors)
    errors.extend(_spot_checks(td))
    if "registration" in td:
        errors.extend(_discovery_engine().errors(td))
    if errors:
        raise ValidationError(_dedupe(errors))


def _under(field: str, top: str) -> bool:
    return field == top or field.startswith(top + ".")


def _td_version(td: dict[str, Any]) -> tuple[str, FieldError | None]:
    """Schema version from ``@context``; without a TD context, 1.1 checks the rest."""
    if "@context" not in td:
        return "1.1", None  # the schema reports "@context is required"
    ctx = td["@context"]
    entries = ctx if isinstance(ctx, list) else [ctx]
    uris = {c for c in entries if isinstance(c, str)}
    if TD_CONTEXT_V11 in uris:
        return "1.1", None
    if TD_CONTEXT_V10 in uris:
        return "1.0", None
    return "1.1", FieldError(
        "@context",
        f"@context must contain {TD_CONTEXT_V11!r} (TD 1.1) or {TD_CONTEXT_V10!r} (TD 1.0)",
    )


def _spot_checks(td: dict[str, Any]) -> list[FieldError]:
    """The WoT Discovery minimal-validation checks a JSON Schema cannot express.

    ``op`` per form location needs no check here: both the TD 1.0 and 1.1 schemas restrict it.
    Everything is type-guarded, because these run even when the schema already failed.
    """
    errors: list[FieldError] = []
    defs = td.get("securityDefinitions")
    if isinstance(defs, dict):  # otherwise the schema has reported it; names can't be checked
        errors.extend(_undefined_schemes(td.get("security"), "security", defs))
        for name, scheme in defs.items():
            if isinstance(scheme, dict) and scheme.get("scheme") == "combo":
                for key in ("oneOf", "allOf"):
                    field = f"securityDefinitions.{name}.{key}"
                    errors.extend(_undefined_schemes(scheme.get(key), field, defs, combo=name))
        for path, form in _forms(td):
            if "security" in form:
                errors.extend(_undefined_schemes(form["security"], f"{path}.security", defs))
    tid = td.get("id")
    if isinstance(tid, str) and _ABSOLUTE_URI.fullmatch(tid) is None:
        errors.append(
            FieldError(
                "id", "id must be an absolute URI with a scheme, e.g. urn:uuid:... or https:"
            )
        )
    return errors


def _undefined_schemes(
    names: object, field: str, defs: dict[str, Any], combo: str | None = None
) -> list[FieldError]:
    if isinstance(names, str):
        items: list[tuple[str, object]] = [(field, names)]
    elif isinstance(names, list):
        items = [(f"{field}.{i}", n) for i, n in enumerate(names)]
    else:
        return []  # absent or mistyped: the schema reports the type
    errors = []
    for where, name in items:
        if not isinstance(name, str):
            continue
        if name not in defs:
            errors.append(FieldError(where, f"{name!r} is not defined in securityDefinitions"))
        elif name == combo:
            errors.append(FieldError(where, f"combo scheme {name!r} cannot include itself"))
    return errors


def _forms(td: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(dot path, form) for the Thing-level forms and every affordance's forms."""
    yield from _indexed_forms(td.get("forms"), "forms")
    for kind in ("properties", "actions", "events"):
        affordances = td.get(kind)
        if not isinstance(affordances, dict):
            continue
        for name, aff in affordances.items():
            if isinstance(aff, dict):
                yield from _indexed_forms(aff.get("forms"), f"{kind}.{name}.forms")


def _indexed_forms(forms: object, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(forms, list):
        for i, form in enumerate(forms):
            if isinstance(form, dict):
                yield f"{prefix}.{i}", form


# --- data schemas -------------------------------------------------------------------------------

# TD vocabulary that is not JSON Schema. Draft 7 would ignore most of it, but stripping keeps the
# compiled code small, and contentEncoding/contentMediaType must go because fastjsonschema checks
# them while Draft 7 (and TD) treat them as annotations.
_TD_ONLY_KEYS = frozenset(
    {
        "forms",
        "observable",
        "uriVariables",
        "unit",
        "@type",
        "titles",
        "descriptions",
        "contentEncoding",
        "contentMediaType",
        # action and event affordance members
        "safe",
        "idempotent",
        "synchronous",
        "input",
        "output",
        "subscription",
        "data",
        "dataResponse",
        "cancellation",
        # keep Draft 7 semantics whatever the schema claims
        "$schema",
        "$id",
    }
)
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "dependencies")
_SCHEMA_LISTS = ("oneOf", "anyOf", "allOf")
_SCHEMA_ONE = (
    "additionalProperties",
    "additionalItems",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
)


def _to_json_schema(schema: object) -> object:
    """A TD data schema as a plain Draft 7 schema: TD-only keys removed at every schema level
    (never inside enum/const/default values or from property names)."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _TD_ONLY_KEYS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {k: _to_json_schema(v) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_to_json_schema(v) for v in value]
        elif key == "items":
            value = (
                [_to_json_schema(v) for v in value]
                if isinstance(value, list)
                else _to_json_schema(value)
            )
        elif key in _SCHEMA_ONE:
            value = _to_json_schema(value)
        out[key] = value
    return out


def _remote_refs(schema: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Paths of ``$ref``s that leave the document: fastjsonschema would fetch them over the
    network while compiling, which a TD sent by an agent must never trigger."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
            yield (*path, "$ref")
        for k, v in schema.items():
            yield from _remote_refs(v, (*path, k))
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            yield from _remote_refs(v, (*path, i))


def compile_data_schema(schema: dict[str, Any]) -> Callable[[object], None]:
    """Return a checker for a TD DataSchema (a property affordance, an action's input/output,
    an event's data). The checker raises ValidationError (fields relative to the value,
    "(root)" for the value itself) or returns None. A broken schema raises ValidationError
    here, naming the problem, so the checker itself never fails on the schema."""
    if not isinstance(schema, dict):
        raise ValidationError(
            [
                FieldError(
                    ROOT, f"invalid data schema: expected an object, given {_json_type(schema)}"
                )
            ]
        )
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ValidationError([FieldError(ROOT, f"invalid data schema: {exc}")]) from None
    return _compile_data_schema(key)


@functools.lru_cache(maxsize=4096)
def _compile_data_schema(key: bytes) -> Callable[[object], None]:
    """Keyed on the canonical JSON, so equal schemas share one checker and a caller mutating
    its dict later cannot change a cached checker. Failures are not cached (they raise)."""
    schema = _to_json_schema(orjson.loads(key))
    problems = [
        FieldError(_field(p), "invalid data schema: only local $refs (#...) are allowed")
        for p in _remote_refs(schema)
    ]
    meta = Draft7Validator(
        Draft7Validator.META_SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER
    )
    for err in meta.iter_errors(schema):
        problems.extend(
            FieldError(fe.field, f"invalid data schema: {fe.description}") for fe in _explain(err)
        )
    if problems:
        raise ValidationError(_dedupe(problems))
    assert isinstance(schema, dict | bool)  # the meta-schema takes nothing else
    try:
        engine = _Engine(schema, check_date_time=False)
    except Exception as exc:  # fastjsonschema's definition errors, bad regexes, ...
        raise ValidationError([FieldError(ROOT, f"invalid data schema: {exc}")]) from None
    errors_of = engine.errors

    def check(value: object) -> None:
        errors = errors_of(value)
        if errors:
            raise ValidationError(errors)

    return check
