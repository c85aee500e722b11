"""The OpenAPI 3 document of /api/v1, built from the marshmallow schemas the routes use.

Documenting a route is one declaration next to it:

    @bp.get("/wallet")
    @operation("The reader's wallet", query=WalletQuerySchema, response=WalletSchema)
    def get_wallet() -> Response: ...

`operation` only records what the route accepts and answers; `build_document` walks
`app.url_map`, so the paths, path parameters and methods come from the routing table
itself and a route that is not declared is simply missing (tests/api/test_openapi.py fails).
Errors every route can give (a bad token, an unavailable database, invalid input for a
route that reads input) are added here from what the route declares, so they are
described once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from marshmallow import Schema, fields
from werkzeug.routing import Rule

API_PREFIX = "/api/v1"
OPENAPI_VERSION = "3.1.0"
DOCUMENT_KEY = "dispatch_pay.openapi_document"

Auth = Literal["public", "optional", "user", "publisher"]
SchemaType = type[Schema] | Schema
View = TypeVar("View", bound=Callable[..., Any])

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})

# What each status means in this API; a route adds which codes it gives, if it wants.
ERROR_MEANINGS = {
    400: "Malformed body: not a JSON object (`malformed_body`).",
    401: "Not authenticated (`not_authenticated`), or the bearer token is invalid or revoked "
    "(`invalid_token`).",
    402: "Payment needed.",
    403: "Not allowed (`forbidden`); with a login session, a state-changing request without "
    "the X-CSRFToken header (`csrf_failed`).",
    404: "Unknown (`not_found`).",
    409: "Conflict with the current state.",
    413: "The body is larger than 1 MiB (`payload_too_large`).",
    422: "Invalid field values (`invalid_fields`); `fields` names each bad field. Any "
    "route: text with a NUL character or an unpaired surrogate.",
    429: "Too many attempts (`too_many_requests`); wait and try again.",
    503: "A dependency (the database, Stripe) is unavailable.",
}

SECURITY = {
    "public": [{}],
    "optional": [{}, {"bearerAuth": []}, {"sessionCookie": []}],
    "user": [{"bearerAuth": []}, {"sessionCookie": []}],
    "publisher": [{"bearerAuth": []}, {"sessionCookie": []}],
}


@dataclass(frozen=True)
class Operation:
    """What one route accepts and answers, as the OpenAPI document shows it."""

    summary: str
    response: SchemaType | None
    status: tuple[int, ...]
    auth: Auth
    query: SchemaType | None = None
    body: SchemaType | None = None
    headers: SchemaType | None = None
    description: str = ""
    errors: Mapping[int, str] = field(default_factory=dict)
    error_bodies: Mapping[int, SchemaType] = field(default_factory=dict)
    media_types: tuple[str, ...] = ()


def operation(
    summary: str,
    *,
    response: SchemaType | None,
    status: int | tuple[int, ...] = 200,
    auth: Auth = "user",
    query: SchemaType | None = None,
    body: SchemaType | None = None,
    headers: SchemaType | None = None,
    description: str = "",
    errors: Mapping[int, str] | None = None,
    error_bodies: Mapping[int, SchemaType] | None = None,
    media_types: tuple[str, ...] = (),
) -> Callable[[View], View]:
    """Declare how a route appears in the OpenAPI document.

    `auth`: "public" (no login), "optional" (a reader sees more when logged in), "user"
    (any account) or "publisher". `errors` maps a status to the error codes it carries;
    `error_bodies` gives a status whose body has more than the error (a 402 offer).
    `media_types` are other forms of the success body besides JSON, e.g. ("text/csv",)
    for a route that answers `?format=csv`.
    """
    declared = Operation(
        summary=summary,
        response=response,
        status=status if isinstance(status, tuple) else (status,),
        auth=auth,
        query=query,
        body=body,
        headers=headers,
        description=description,
        errors=dict(errors or {}),
        error_bodies=dict(error_bodies or {}),
        media_types=media_types,
    )

    def record(view: View) -> View:
        view.openapi_operation = declared  # type: ignore[attr-defined]
        return view

    return record


# -- schemas of the error shape (the contract's) ------------------------------------------


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "snake_case, stable"})
    message = fields.String(required=True, metadata={"description": "for humans"})
    # `fields` would shadow Schema.fields, hence the data_key.
    field_errors = fields.Dict(
        keys=fields.String(),
        data_key="fields",
        metadata={"description": "each invalid field and what is wrong with it"},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


# -- building the document ------------------------------------------------------------------


def _method_schema(converter: Any, field: fields.Field, **_: Any) -> dict[str, Any]:
    """A `fields.Method` with metadata {"schema": X} is documented as X (or null)."""
    schema = field.metadata.get("schema")
    if schema is None:
        return {}
    ref: dict[str, Any] = converter.resolve_nested_schema(schema)
    if field.allow_none:
        return {"anyOf": [ref, {"type": "null"}]}
    return ref


_CONVERTER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


def openapi_path(rule: Rule) -> str:
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule.rule)


def path_parameters(rule: Rule) -> list[dict[str, Any]]:
    """Path parameters from the rule's converters: integers keep their bounds."""
    converters: dict[str, Any] = getattr(rule, "_converters", {})
    params = []
    for match in _CONVERTER.finditer(rule.rule):
        name = match.group("name")
        converter = converters.get(name)
        if match.group("converter") == "int":
            schema: dict[str, Any] = {
                "type": "integer",
                "minimum": getattr(converter, "min", None) or 0,
            }
            maximum = getattr(converter, "max", None)
            if maximum is not None:
                schema["maximum"] = maximum
        else:
            schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
    return params


def _error_statuses(op: Operation, method: str, rule: Rule) -> dict[int, str]:
    """Every error status the route can answer, with what it means there."""
    statuses: dict[int, str] = {401: ERROR_MEANINGS[401], 503: ERROR_MEANINGS[503]}
    if op.auth in ("public", "optional"):  # no login needed; only a bad token is refused
        statuses[401] = "The bearer token is invalid or revoked (`invalid_token`)."
    if op.auth == "publisher" or method in UNSAFE_METHODS:
        statuses[403] = ERROR_MEANINGS[403]
    if rule.arguments:
        statuses[404] = ERROR_MEANINGS[404]
    if op.body is not None:
        statuses[400] = ERROR_MEANINGS[400]
        statuses[413] = ERROR_MEANINGS[413]
    statuses[422] = ERROR_MEANINGS[422]  # any query string can carry unstorable text
    for status, codes in op.errors.items():
        meaning = ERROR_MEANINGS.get(status, "")
        statuses[status] = f"{meaning} {codes}".strip()
    for status in op.error_bodies:
        statuses.setdefault(status, ERROR_MEANINGS.get(status, "Error."))
    return dict(sorted(statuses.items()))


def _json(schema: SchemaType) -> dict[str, dict[str, Any]]:
    return {"application/json": {"schema": schema}}


def _operation_dict(rule: Rule, method: str, op: Operation) -> dict[str, Any]:
    blueprint = rule.endpoint.split(".", 1)[0]
    methods = sorted((rule.methods or set()) - AUTOMATIC_METHODS)
    operation_id = rule.endpoint.replace(".", "_")
    if len(methods) > 1:
        operation_id += "_" + method.lower()
    parameters: list[Any] = []
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if op.headers is not None:
        parameters.append({"in": "header", "schema": op.headers})
    responses: dict[str, Any] = {}
    for status in op.status:
        success: dict[str, Any] = {"description": "Success." if status < 300 else "Redirect."}
        content = _json(op.response) if op.response is not None else {}
        content.update({media: {"schema": {"type": "string"}} for media in op.media_types})
        if content:
            success["content"] = content
        responses[str(status)] = success
    for status, meaning in _error_statuses(op, method, rule).items():
        body = op.error_bodies.get(status, ErrorSchema)
        responses[str(status)] = {"description": meaning, "content": _json(body)}
    result: dict[str, Any] = {
        "operationId": operation_id,
        "summary": op.summary,
        "tags": [blueprint.removesuffix("_api")],
        "security": SECURITY[op.auth],
        "responses": responses,
    }
    if op.description:
        result["description"] = op.description
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        # A partial body (PATCH) may be empty: nothing changes.
        partial = bool(getattr(op.body, "partial", False))
        result["requestBody"] = {"required": not partial, "content": _json(op.body)}
    return result


def api_rules(app: Flask) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.rule.startswith(API_PREFIX + "/")),
        key=lambda r: r.rule,
    )


def declared_operation(app: Flask, rule: Rule) -> Operation | None:
    view = app.view_functions.get(rule.endpoint)
    found: Operation | None = getattr(view, "openapi_operation", None)
    return found


def build_document(app: Flask) -> dict[str, Any]:
    """The whole document; routes without an `operation` declaration are left out."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=f"{app.config.get('SITE_NAME', 'dispatch_pay')} API",
        version="1",
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={
            "description": "Per-article paywall: readers, articles, wallet and publishing. "
            "Money is always {amount: integer minor units, currency: lowercase ISO 4217}."
        },
    )
    assert plugin.converter is not None
    plugin.converter.add_attribute_function(_method_schema)
    spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "An API token (dp_…)."},
    )
    spec.components.security_scheme(
        "sessionCookie",
        {
            "type": "apiKey",
            "in": "cookie",
            "name": "session",
            "description": "The browser's login session; state-changing requests also "
            "need the X-CSRFToken header.",
        },
    )
    spec.components.schema("Error", schema=ErrorSchema)
    for rule in api_rules(app):
        op = declared_operation(app, rule)
        if op is None:
            continue
        operations = {
            method.lower(): _operation_dict(rule, method, op)
            for method in sorted((rule.methods or set()) - AUTOMATIC_METHODS)
        }
        spec.path(path=openapi_path(rule), operations=operations, parameters=path_parameters(rule))
    return spec.to_dict()


def document(app: Flask) -> dict[str, Any]:
    """Built once per process, on first use: the routing table does not change."""
    cached: dict[str, Any] | None = app.extensions.get(DOCUMENT_KEY)
    if cached is None:
        cached = build_document(app)
        app.extensions[DOCUMENT_KEY] = cached
    return cached


# -- serving it -----------------------------------------------------------------------------

bp = Blueprint("openapi", __name__)


@bp.app_template_filter("code_spans")
def _code_spans(text: str) -> Any:
    from dispatch_pay.api.docs_view import code_spans

    return code_spans(text)


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(document(current_app._get_current_object()))  # type: ignore[attr-defined]


@bp.get("/api/docs")
def api_docs() -> str:
    from dispatch_pay.api.docs_view import docs_context

    return render_template(
        "api_docs.html",
        **docs_context(document(current_app._get_current_object())),  # type: ignore[attr-defined]
    )
