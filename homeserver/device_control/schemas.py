"""Argument schemas: what a device may publish, and checking a command's args in bounded time.

Every device publishes a JSON Schema (draft 2020-12) per action, and every
command's `args` are checked against it under the append lock, where a slow
check stalls every writer of every process. Any user can create a device, so
the schemas are hostile input. Three things keep a check bounded:

- Patterns (`pattern`, `patternProperties`, and so `additionalProperties`
  next to them) run on RE2, whose matching is linear in the text: `^(a+)+$`
  against 100,000 characters takes microseconds, where Python's backtracking
  `re` doubles its time with every character. RE2 has no backreferences and
  no lookaround; a pattern using them is refused when published. (RE2 is also
  closer to the ECMA-262 dialect JSON Schema names than `re`: `\\d` is ASCII
  and `$` is only the end of the text.)
- Sizes: a schema is at most MAX_SCHEMA_BYTES and MAX_SCHEMA_DEPTH deep, a
  pattern compiles to at most MAX_PROGRAM_SIZE RE2 instructions, and `args`
  are at most MAX_ARGS_BYTES and MAX_ARGS_DEPTH deep.
- A budget: even with both bounded, a check's work is not (`items` of an
  `allOf` multiplies the two sizes, `$ref` chains double it per link), so
  every schema the validator visits, every keyword with a list or object
  value, every error it formats and every regex search is charged in units
  of roughly a microsecond, and a check that runs out is refused. A clock
  deadline backs the units up. See CHECK_UNITS for the numbers.

Keywords whose implementation walks the schema again outside the validator
(`unevaluatedProperties`, `unevaluatedItems`), where no budget can be
charged, are refused, as is a nested `$schema` (which would switch to a
validator without these bounds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing.exceptions import Unresolvable

# Published capabilities: the whole event is at most 64 KiB anyway; one
# action's schema far less. Real argument schemas are a few hundred bytes.
MAX_SCHEMA_BYTES = 8 * 1024
MAX_SCHEMA_DEPTH = 32
# JSON values in all the schemas of one capabilities event: the meta-schema
# check costs up to 0.25 ms per subschema (`true` and `{}` are the dearest).
MAX_CAPABILITY_NODES = 3000
# RE2 instructions: `^[a-z0-9._-]{1,64}$` is about 130, `.{0,1000}` about 2000.
MAX_PROGRAM_SIZE = 2000
# RE2's memory per pattern (program and DFA cache); its default is 8 MiB, and
# its module keeps the last 128 patterns compiled.
RE2_MAX_MEM = 2 * 1024 * 1024
MAX_ARGS_BYTES = 16 * 1024
MAX_ARGS_DEPTH = 32

# The work one check may do, in units of about a microsecond (a keyword call
# of jsonschema costs 2-3 µs on a 2020s core and is charged 3 or more). A
# command with 1000 arrays items of five properties each costs ~60,000; the
# worst schemas and args we could build stop at the limit after 50-150 ms
# (tests/test_device_schemas.py). The deadline, on the clock, catches any
# cost the units do not model; a check that hits either is refused.
CHECK_UNITS = 100_000
CHECK_DEADLINE_S = 0.2
_REF_UNITS = 30
# A regex search is charged per instruction and character: RE2 runs at 1-12 ns
# per (instruction, character) when its DFA cache thrashes, ~0 when it does not.
_SEARCH_STEPS_PER_UNIT = 200

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
UNSUPPORTED_KEYWORDS = frozenset({"unevaluatedProperties", "unevaluatedItems"})
# Keywords whose value is data compared with the instance, not subschemas:
# checking them costs as much as their whole value.
_DATA_KEYWORDS = frozenset({"enum", "const", "dependentRequired"})


class SchemaRefused(Exception):
    """A published argument schema this server will not check commands against."""


class PublishRefused(Exception):
    def __init__(self, action: str | None, reason: str) -> None:
        super().__init__(reason)
        self.action = action
        self.reason = reason


class ArgsInvalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class TooCostly(Exception):
    """The check ran out of its budget."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEM
    return options


def compile_pattern(pattern: str) -> Any:
    """The RE2 program for a JSON Schema pattern; SchemaRefused when RE2 cannot run it."""
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else ""
        raise SchemaRefused(
            f"pattern {pattern!r} is not supported ({reason or 'invalid'}); patterns run on"
            " RE2: no backreferences, no lookahead or lookbehind"
        ) from None
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise SchemaRefused(
            f"pattern {pattern!r} is too large ({compiled.programsize} RE2 instructions,"
            f" at most {MAX_PROGRAM_SIZE})"
        )
    return compiled


# Sizes


def _depth_at_most(value: object, limit: int) -> bool:
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        pending.extend((child, depth + 1) for child in children)
    return True


def _encoded_size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _node_count(value: object) -> int:
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        count += 1
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return count


def _schema_objects(schema: object) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """Every object in the schema, and whether it is the root."""
    pending: list[tuple[object, bool]] = [(schema, True)]
    while pending:
        item, root = pending.pop()
        if isinstance(item, Mapping):
            yield item, root
            pending.extend((value, False) for value in item.values())
        elif isinstance(item, list):
            pending.extend((value, False) for value in item)


def _check_shape(schema: Mapping[str, Any]) -> None:
    """Size, depth and keywords, before anything else looks at the schema."""
    if not _depth_at_most(schema, MAX_SCHEMA_DEPTH):
        raise SchemaRefused(f"nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if (size := _encoded_size(schema)) > MAX_SCHEMA_BYTES:
        raise SchemaRefused(f"{size} bytes long, at most {MAX_SCHEMA_BYTES}")
    # Like the $ref check, this looks at every object's keys, so a property
    # that happens to be named after one of these keywords counts as one too.
    for item, root in _schema_objects(schema):
        if "$schema" in item and (not root or item["$schema"] != SCHEMA_DIALECT):
            raise SchemaRefused(f"$schema may only be {SCHEMA_DIALECT!r}, and only at the top")
        for keyword in UNSUPPORTED_KEYWORDS & item.keys():
            raise SchemaRefused(f"{keyword} is not supported")


def check_published(schemas: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse what a device publishes (action name -> args schema) unless commands
    can be checked against every schema in it; PublishRefused names the action.

    Bounded: MAX_CAPABILITY_NODES for the meta-schema check, then one budget
    for the trial runs of all actions.
    """
    total = 0
    for action, schema in schemas.items():
        try:
            _check_shape(schema)
            for item, _ in _schema_objects(schema):
                if isinstance(pattern := item.get("pattern"), str):
                    compile_pattern(pattern)
                if isinstance(patterns := item.get("patternProperties"), Mapping):
                    for pattern in patterns:
                        compile_pattern(pattern)
        except SchemaRefused as refused:
            raise PublishRefused(action, str(refused)) from None
        total += _node_count(schema)
    if total > MAX_CAPABILITY_NODES:
        raise PublishRefused(
            None, f"the argument schemas hold {total} JSON values, at most {MAX_CAPABILITY_NODES}"
        )
    for action, schema in schemas.items():
        try:
            Draft202012Validator.check_schema(schema, format_checker=_SCHEMA_FORMATS)
        except (SchemaError, SchemaRefused) as error:
            reason = error.message if isinstance(error, SchemaError) else str(error)
            raise PublishRefused(action, f"not a valid JSON Schema: {reason}") from None
    # A trial run finds a $ref to nowhere, or one to itself, before any command does.
    budget = _Budget(CHECK_UNITS, time.perf_counter() + CHECK_DEADLINE_S)
    for action, schema in schemas.items():
        try:
            _run(schema, {}, budget)
        except (Unresolvable, RecursionError, SchemaRefused):
            raise PublishRefused(action, "a $ref in it cannot be resolved") from None
        except TooCostly:
            raise PublishRefused(action, "checking even empty args is too costly") from None


def check_args(schema: Mapping[str, Any], args: Mapping[str, Any]) -> None:
    """ArgsInvalid naming the first problem unless `args` satisfy `schema`.

    SchemaRefused when the schema cannot be used (it was published before these
    rules, or its $ref cannot be resolved); TooCostly past the budget.
    """
    if not _depth_at_most(args, MAX_ARGS_DEPTH):
        raise ArgsInvalid("", f"nested deeper than {MAX_ARGS_DEPTH} levels")
    _check_shape(schema)
    try:
        error = _run(schema, args)
    except (Unresolvable, RecursionError):
        raise SchemaRefused("a $ref in it cannot be resolved") from None
    if error is not None:
        raise ArgsInvalid(error.json_path.removeprefix("$"), error.message)


def args_size(args: Mapping[str, Any]) -> int:
    return _encoded_size(args)


# The budget


@dataclass
class _Budget:
    units: int
    deadline: float
    root_units: int = 0
    schema_costs: dict[int, int] = field(default_factory=dict)
    patterns: dict[str, Any] = field(default_factory=dict)
    errors_seen: set[int] = field(default_factory=set)

    def charge(self, units: int) -> None:
        self.units -= units
        if self.units < 0 or time.perf_counter() > self.deadline:
            raise TooCostly

    def charge_schema(self, schema: Mapping[str, Any]) -> None:
        cost = self.schema_costs.get(id(schema))
        if cost is None:
            cost = 3 + len(schema)
            for keyword, value in schema.items():
                if keyword in _DATA_KEYWORDS:
                    cost += _node_count(value)
                elif isinstance(value, Mapping | list):
                    cost += len(value)
            self.schema_costs[id(schema)] = cost
        self.charge(cost)

    def charge_error(self, error: ValidationError) -> None:
        # The message holds a repr of the instance, which may be all of args.
        if id(error) not in self.errors_seen:
            self.errors_seen.add(id(error))
            self.charge(1 + len(error.message) // 16)

    def search(self, pattern: str, text: str) -> bool:
        compiled = self.patterns.get(pattern)
        if compiled is None:
            self.charge(1 + len(pattern) // 4)
            compiled = self.patterns[pattern] = compile_pattern(pattern)
        self.charge(1 + compiled.programsize * (len(text) + 1) // _SEARCH_STEPS_PER_UNIT)
        return compiled.search(text) is not None


_BUDGET: ContextVar[_Budget] = ContextVar("argument_check_budget")


def _run(
    schema: Mapping[str, Any], args: object, budget: _Budget | None = None
) -> ValidationError | None:
    checked = {key: value for key, value in schema.items() if key != "$schema"}
    if budget is None:
        budget = _Budget(CHECK_UNITS, time.perf_counter() + CHECK_DEADLINE_S)
    budget.root_units = _node_count(schema)
    token = _BUDGET.set(budget)
    try:
        found: ValidationError | None = best_match(_ArgumentValidator(checked).iter_errors(args))
        return found
    finally:
        _BUDGET.reset(token)


# The validator: draft 2020-12 with RE2 patterns, charged as it goes


def _charged_keywords(schema: Any) -> Any:
    # jsonschema calls this once for every (schema, instance) pair it checks.
    _BUDGET.get().charge_schema(schema)
    return schema.items()


def _charging(keyword_check: Any) -> Any:
    def charged(
        validator: Any, value: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        budget = _BUDGET.get()
        for error in keyword_check(validator, value, instance, schema) or ():
            budget.charge_error(error)
            yield error

    return charged


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _BUDGET.get().search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    budget = _BUDGET.get()
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if budget.search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The properties neither `properties` nor `patternProperties` name."""
    named = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    budget = _BUDGET.get()
    budget.charge(1 + len(instance))
    return [
        name
        for name in instance
        if name not in named and not any(budget.search(pattern, name) for pattern in patterns)
    ]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif additional is False and extras:
        listed = ", ".join(repr(name) for name in sorted(extras))
        verb = "was" if len(extras) == 1 else "were"
        yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _unique_items(
    validator: Any, unique: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # jsonschema compares every pair of items that do not sort (objects): quadratic.
    # Events hold no floats, so canonical JSON is exact equality (true is not 1).
    if unique is not True or not validator.is_type(instance, "array"):
        return
    budget = _BUDGET.get()
    seen: set[str] = set()
    for item in instance:
        encoded = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        budget.charge(3 + len(encoded) // 16)
        if encoded in seen:
            yield ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(encoded)


def _reference(keyword_check: Any) -> Any:
    def charged(
        validator: Any, ref: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        budget = _BUDGET.get()
        # Resolving costs several keyword calls; a pointer is followed step by
        # step, but a plain name (an $anchor) makes the resolver look through
        # the whole schema.
        pointer = isinstance(ref, str) and (ref == "#" or ref.startswith("#/"))
        budget.charge(_REF_UNITS if pointer else _REF_UNITS + 3 * budget.root_units)
        yield from keyword_check(validator, ref, instance, schema)

    return charged


def _unsupported(
    validator: Any, value: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    raise SchemaRefused("unevaluatedProperties and unevaluatedItems are not supported")


def _keyword_checks() -> dict[str, Any]:
    checks = dict(Draft202012Validator.VALIDATORS)
    checks.update(
        pattern=_pattern,
        patternProperties=_pattern_properties,
        additionalProperties=_additional_properties,
        uniqueItems=_unique_items,
        unevaluatedProperties=_unsupported,
        unevaluatedItems=_unsupported,
    )
    checks["$ref"] = _reference(checks["$ref"])
    checks["$dynamicRef"] = _reference(checks["$dynamicRef"])
    return {keyword: _charging(check) for keyword, check in checks.items()}


# No `version`: that would register it as *the* 2020-12 validator for everyone.
_ArgumentValidator = validators.create(
    meta_schema=Draft202012Validator.META_SCHEMA,
    validators=_keyword_checks(),
    type_checker=Draft202012Validator.TYPE_CHECKER,
    format_checker=Draft202012Validator.FORMAT_CHECKER,
    applicable_validators=_charged_keywords,
)


def _is_re2_pattern(text: object) -> bool:
    if not isinstance(text, str):
        return True
    compile_pattern(text)
    return True


# Checking a published schema against the meta-schema: its `format: regex`
# means "RE2 can run it" here, not "Python's re can".
_SCHEMA_FORMATS = FormatChecker()
_SCHEMA_FORMATS.checks("regex", raises=SchemaRefused)(_is_re2_pattern)
