"""Reading request input through marshmallow schemas, with the contract's errors."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from dispatch_pay.errors import DomainError, invalid_fields

# Integer primary keys are 32-bit on PostgreSQL: a larger id in a URL matches no route
# (404) instead of reaching the database as an out-of-range value.
MAX_ROW_ID = 2**31 - 1
ROW_ID = f"int(max={MAX_ROW_ID})"


def json_body() -> dict[str, Any]:
    """The request's JSON object; a 400 for anything that is not one."""
    if not request.get_data(cache=True):
        return {}
    payload = request.get_json(force=True, silent=True)
    if not isinstance(payload, dict):
        raise DomainError("malformed_body", "The body must be a JSON object.", status=400)
    return payload


def load_json(schema: Schema, *, partial: bool = False) -> dict[str, Any]:
    return load(schema, json_body(), partial=partial)


def load(schema: Schema, data: Any, *, partial: bool = False) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema.load(data, partial=partial)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise invalid_fields(messages) from exc
    return result


def load_query(schema: Schema) -> dict[str, Any]:
    return load(schema, request.args.to_dict())
