"""The JSON written by ``tapegrad bench --json``: its schema (JSON Schema, draft 2020-12)
and a validator.

``validate(doc)`` uses the ``jsonschema`` package when it is installed and otherwise a
small built-in validator that understands the subset of JSON Schema used here (type,
enum, const, properties, required, additionalProperties (false or a schema), items,
minimum, minItems).
"""
from __future__ import annotations

_NUM_OR_NULL = {"type": ["number", "null"]}
_STR_OR_NULL = {"type": ["string", "null"]}

THREADS = {
    "type": ["object", "null"],
    "description": "how the engine's thread count was set",
    "required": ["requested", "effective", "controlled", "how"],
    "properties": {
        "requested": {"type": "integer", "minimum": 1},
        "effective": {"type": ["integer", "array", "null"],
                      "description": "the count the engine reports after setting; null: unknown"},
        "controlled": {"type": "boolean",
                       "description": "false when the harness could not set it"},
        "how": {"type": "string"},
    },
}

_THREAD_COUNT = {"type": "integer", "minimum": 1}

ENGINE = {
    "type": "object",
    "required": ["name", "status", "description", "version", "notice", "threads"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "status": {"enum": ["available", "skipped"]},
        "description": {"type": "string"},
        "version": _STR_OR_NULL,
        "notice": {"type": ["string", "null"], "description": "one line, why it was skipped"},
        "threads": THREADS,
        "threads_by_count": {
            "type": ["object", "null"],
            "description": "the same for each thread count of the run, keyed by the count "
                           "(a string); absent in tapegrad-bench/1",
            "additionalProperties": THREADS,
        },
    },
}

RESULT = {
    "type": "object",
    "description": "one (workload, case, engine) measurement; times are seconds per call",
    "required": ["workload", "case", "engine", "status", "params", "reason", "reference",
                 "max_rel_err", "tolerance", "number", "times_s", "median_s", "min_s",
                 "max_s", "unit", "work", "work_name", "ratio", "ratio_min", "ratio_max"],
    "additionalProperties": False,
    "properties": {
        "workload": {"type": "string"},
        "case": {"type": "string"},
        "engine": {"type": "string"},
        "status": {"enum": ["ok", "refused", "error"]},
        "params": {"type": "object"},
        "reason": {"type": ["string", "null"],
                   "description": "for refused/error: 'refused: wrong answer (max rel err ...)'"},
        "reference": {"type": ["string", "null"], "description": "the engine checked against"},
        "max_rel_err": _NUM_OR_NULL,
        "tolerance": _NUM_OR_NULL,
        "number": {"type": "integer", "minimum": 0, "description": "calls per sample"},
        "times_s": {"type": "array", "items": {"type": "number", "minimum": 0},
                    "description": "per-call time of each repeat, in run order"},
        "median_s": _NUM_OR_NULL,
        "min_s": _NUM_OR_NULL,
        "max_s": _NUM_OR_NULL,
        "unit": {"enum": ["time", "per_op", "throughput"]},
        "work": {"type": "number", "description": "ops or items per call"},
        "work_name": {"type": "string"},
        "ratio": {"type": ["number", "null"],
                  "description": "median of per-repeat (time / baseline time)"},
        "ratio_min": _NUM_OR_NULL,
        "ratio_max": _NUM_OR_NULL,
        "threads": {"type": ["integer", "null"], "minimum": 1,
                    "description": "the thread count every engine was set to for this "
                                   "result (absent in tapegrad-bench/1: settings.threads)"},
        "flops": {"type": ["number", "null"], "minimum": 0,
                  "description": "floating-point operations per call (workloads that "
                                 "define them: gemm, matmul); GFLOP/s = flops / time / 1e9"},
        "limit": {
            "type": ["object", "null"],
            "description": "this engine's time as a multiple of a limit engine's (gemm-only "
                           "for mlp_train), median of per-repeat ratios; null: none timed",
            "required": ["engine", "ratio", "ratio_min", "ratio_max"],
            "additionalProperties": False,
            "properties": {
                "engine": {"type": "string"},
                "ratio": {"type": "number", "minimum": 0},
                "ratio_min": {"type": "number", "minimum": 0},
                "ratio_max": {"type": "number", "minimum": 0},
            },
        },
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/tapegrad/tapegrad/bench-schema-2.json",
    "title": "tapegrad bench results",
    "type": "object",
    "required": ["schema", "created", "quick", "settings", "machine", "engines", "results",
                 "notices"],
    "additionalProperties": False,
    "properties": {
        "schema": {"enum": ["tapegrad-bench/1", "tapegrad-bench/2"],
                   "description": "2 adds threads/flops/limit per result and lists of "
                                  "thread counts; a /1 document still reads"},
        "created": {"type": "string", "description": "ISO 8601 UTC time of the run"},
        "quick": {"type": "boolean"},
        "settings": {
            "type": "object",
            "required": ["workloads", "engines", "threads", "repeat", "warmup", "min_time_s",
                         "baseline", "seed"],
            "properties": {
                "workloads": {"type": "array", "items": {"type": "string"}},
                "engines": {"type": "array", "items": {"type": "string"}},
                "threads": {"type": ["integer", "array"], "minimum": 1, "items": _THREAD_COUNT,
                            "minItems": 1,
                            "description": "the thread count, or the list of them when "
                                           "the run was repeated per count (--threads 1,2)"},
                "repeat": {"type": "integer", "minimum": 1},
                "warmup": {"type": "integer", "minimum": 0},
                "min_time_s": {"type": "number", "minimum": 0},
                "settle": {"type": "boolean",
                           "description": "waited for idle helper threads before each sample"},
                "baseline": _STR_OR_NULL,
                "seed": {"type": "integer"},
                "reference_order": {"type": "array", "items": {"type": "string"}},
            },
        },
        "machine": {
            "type": "object",
            "required": ["cpu", "cores", "simd_level", "blas", "python", "versions", "date"],
            "properties": {
                "cpu": {"type": "string"},
                "cpu_flags": {"type": "array", "items": {"type": "string"}},
                "cores": {"type": "integer", "minimum": 1},
                "logical_cpus": {"type": ["integer", "null"]},
                "simd_level": {"type": "string"},
                "blas": {"type": "array", "items": {"type": "object"}},
                "platform": {"type": "string"},
                "machine": {"type": "string"},
                "python": {"type": "string"},
                "python_implementation": {"type": "string"},
                "versions": {"type": "object"},
                "date": {"type": "string"},
                "contention": {
                    "type": "object",
                    "description": "other load on the machine during the run",
                    "properties": {
                        "wall_s": {"type": "number"},
                        "other_cpu_share": {
                            "type": ["number", "null"],
                            "description": "fraction of all cores' time other processes "
                                           "kept busy (Linux /proc/stat; null elsewhere)"},
                        "load_average_start": {"type": ["array", "null"]},
                        "load_average_end": {"type": ["array", "null"]},
                    },
                },
            },
        },
        "engines": {"type": "array", "items": ENGINE},
        "results": {"type": "array", "items": RESULT},
        "notices": {"type": "array", "items": {"type": "string"}},
    },
}


class SchemaError(ValueError):
    """The document does not match the schema; the message gives the JSON path."""


def validate(doc, schema=None):
    """Raise :class:`SchemaError` if ``doc`` does not match ``schema`` (default: the
    results schema). Uses ``jsonschema`` when installed."""
    schema = SCHEMA if schema is None else schema
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        try:
            jsonschema.validate(doc, schema)
        except jsonschema.ValidationError as exc:
            path = "$" + "".join(f"[{p!r}]" for p in exc.absolute_path)
            raise SchemaError(f"{path}: {exc.message}") from None
        return
    validate_builtin(doc, schema)


def validate_builtin(doc, schema=None):
    """The built-in validator (the subset of JSON Schema that SCHEMA uses)."""
    _check(doc, SCHEMA if schema is None else schema, "$")


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _check(value, schema, path):
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            raise SchemaError(f"{path}: {value!r:.60} is not of type {' or '.join(types)}")
    if "const" in schema and value != schema["const"]:
        raise SchemaError(f"{path}: {value!r:.60} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r:.60} is not one of {schema['enum']}")
    if "minimum" in schema and _TYPES["number"](value) and value < schema["minimum"]:
        raise SchemaError(f"{path}: {value!r} is less than the minimum {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                raise SchemaError(f"{path}: {key!r} is a required property")
        props = schema.get("properties", {})
        for key, v in value.items():
            if key in props:
                _check(v, props[key], f"{path}[{key!r}]")
            elif schema.get("additionalProperties") is False:
                raise SchemaError(f"{path}: additional property {key!r} is not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                _check(v, schema["additionalProperties"], f"{path}[{key!r}]")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise SchemaError(f"{path}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for i, v in enumerate(value):
                _check(v, schema["items"], f"{path}[{i}]")
