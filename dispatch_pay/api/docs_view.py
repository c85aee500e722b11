"""The OpenAPI document turned into what templates/api_docs.html shows people.

Operations list their parameters, body and responses; schemas are shown once each, in
their own section, and everything that uses one links to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

SCHEMA_REF = "#/components/schemas/"
CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches {}"),
    ("format", "{}"),
    ("default", "default {}"),
)
AUTH_LABELS = {
    "public": "No login needed",
    "optional": "Login optional (entitled readers see more)",
    "user": "Bearer token or login session",
}


@dataclass(frozen=True)
class TypeLabel:
    """A type as text, with the schema it names (for a link) if any."""

    text: str
    schema: str | None = None


@dataclass(frozen=True)
class FieldRow:
    name: str
    types: list[TypeLabel]
    required: bool
    notes: list[str]


@dataclass(frozen=True)
class SchemaView:
    name: str
    description: str
    fields: list[FieldRow]


@dataclass(frozen=True)
class ResponseView:
    status: str
    description: str
    schema: str | None
    other_media: list[str]  # besides JSON, e.g. text/csv


@dataclass(frozen=True)
class OperationView:
    anchor: str
    method: str
    path: str
    summary: str
    description: str
    tag: str
    auth: str
    parameters: list[FieldRow]
    body: str | None
    responses: list[ResponseView]


def code_spans(text: str) -> Markup:
    """Descriptions mark codes and fields with `backticks`; show them as code."""
    pieces = text.split("`")  # odd pieces were between backticks
    return Markup("").join(
        Markup("<code>{}</code>").format(piece) if i % 2 else escape(piece)
        for i, piece in enumerate(pieces)
    )


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.removeprefix(SCHEMA_REF) if isinstance(ref, str) else None


def type_labels(schema: dict[str, Any]) -> list[TypeLabel]:
    name = ref_name(schema)
    if name is not None:
        return [TypeLabel(name, name)]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return [label for part in schema[key] for label in type_labels(part)]
    if "enum" in schema:
        return [TypeLabel("one of " + ", ".join(str(v) for v in schema["enum"]))]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
    labels: list[TypeLabel] = []
    for kind in kinds:
        if kind == "array":
            items = type_labels(schema.get("items", {}))
            labels.extend(TypeLabel(f"list of {i.text}", i.schema) for i in items)
        elif kind == "object" and "additionalProperties" in schema:
            values = type_labels(schema["additionalProperties"] or {})
            text = values[0].text if values else "any"
            labels.append(TypeLabel(f"object of {text}"))
        else:
            labels.append(TypeLabel(str(kind)))
    return labels or [TypeLabel("any")]


def notes(schema: dict[str, Any]) -> list[str]:
    found = [
        template.format(json.dumps(schema[key]) if key == "default" else schema[key])
        for key, template in CONSTRAINTS
        if key in schema
    ]
    if schema.get("readOnly"):
        found.append("read-only")
    if schema.get("description"):
        found.append(str(schema["description"]))
    return found


def field_rows(schema: dict[str, Any]) -> list[FieldRow]:
    required = set(schema.get("required", []))
    return [
        FieldRow(name, type_labels(prop), name in required, notes(prop))
        for name, prop in schema.get("properties", {}).items()
    ]


def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    if not content:
        return None
    schema: dict[str, Any] | None = content.get("application/json", {}).get("schema")
    return schema


def _auth(operation: dict[str, Any]) -> str:
    security = operation.get("security", [])
    if security == [{}]:
        return AUTH_LABELS["public"]
    if {} in security:
        return AUTH_LABELS["optional"]
    if "publisher" in operation.get("tags", []):
        return "Publisher: bearer token or login session"
    return AUTH_LABELS["user"]


def operation_view(
    path: str, method: str, operation: dict[str, Any], path_params: list[dict[str, Any]]
) -> OperationView:
    params = path_params + operation.get("parameters", [])
    parameters = [
        FieldRow(
            f"{p['name']} ({p['in']})",
            type_labels(p.get("schema", {})),
            bool(p.get("required")),
            notes(p.get("schema", {})) + ([p["description"]] if p.get("description") else []),
        )
        for p in params
    ]
    body_schema = _json_schema(operation.get("requestBody", {}).get("content"))
    responses = [
        ResponseView(
            status,
            response.get("description", ""),
            ref_name(_json_schema(response.get("content")) or {}),
            [m for m in response.get("content", {}) if m != "application/json"],
        )
        for status, response in operation["responses"].items()
    ]
    return OperationView(
        anchor=operation["operationId"],
        method=method.upper(),
        path=path,
        summary=operation.get("summary", ""),
        description=operation.get("description", ""),
        tag=(operation.get("tags") or ["api"])[0],
        auth=_auth(operation),
        parameters=parameters,
        body=ref_name(body_schema) if body_schema else None,
        responses=responses,
    )


def docs_context(document: dict[str, Any]) -> dict[str, Any]:
    operations = [
        operation_view(path, method, operation, item.get("parameters", []))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]
    operations.sort(key=lambda op: (op.tag, op.path, op.method))
    schemas = [
        SchemaView(name, schema.get("description", ""), field_rows(schema))
        for name, schema in sorted(document["components"]["schemas"].items())
    ]
    tags = sorted({op.tag for op in operations})
    return {
        "info": document["info"],
        "operations": operations,
        "tags": tags,
        "schemas": schemas,
        "security": document["components"].get("securitySchemes", {}),
    }
