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


def load_json(schema: Schema, *, partial: bool | tuple[str, ...] = False) -> dict[str, Any]:
    return load(schema, json_body(), partial=partial)


def load(schema: Schema, data: Any, *, partial: bool | tuple[str, ...] = False) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema.load(data, partial=partial)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise invalid_fields(messages) from exc
    return result


def load_query(schema: Schema) -> dict[str, Any]:
    return load(schema, request.args.to_dict())


# -- text the database can store ------------------------------------------------------------

UNSTORABLE = "Must not contain NUL characters or unpaired surrogates."


def _storable(text: str) -> bool:
    """PostgreSQL text holds no NUL, and neither database takes unpaired surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_unstorable(value: Any, where: str = "") -> str | None:
    """The name of the first string (or key) in a JSON value that cannot be stored."""
    if isinstance(value, str):
        return None if _storable(value) else (where or "_schema")
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if not _storable(str(key)):
                return where or "_schema"
            found = first_unstorable(item, name)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


def refuse_unstorable_text() -> None:
    """Refuse, before any route runs, text no database column can hold.

    Without this, a NUL in a slug, an email or a title reaches PostgreSQL and fails
    there as a 500. The path is a 404 (no such thing can exist); fields are a 422.
    """
    if not _storable(request.path):
        raise DomainError("not_found", "Nothing is here.", status=404)
    for source in (request.args, request.form):
        for key, values in source.lists():
            if not _storable(key) or not all(_storable(v) for v in values):
                raise invalid_fields({key if _storable(key) else "_schema": [UNSTORABLE]})
    if request.path.startswith("/api/") and request.get_data(cache=True):
        payload = request.get_json(force=True, silent=True)
        field = first_unstorable(payload)
        if field is not None:
            raise invalid_fields({field: [UNSTORABLE]})
