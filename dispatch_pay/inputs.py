"""Reading request input through marshmallow schemas, with the contract's errors."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema, ValidationError
from werkzeug.routing import IntegerConverter, Map

from dispatch_pay.errors import DomainError, invalid_fields

# Deeper than any schema of ours; stops absurd nesting before it costs a stack.
MAX_JSON_DEPTH = 32
UNSAFE_TEXT = "Contains characters that are not allowed (NUL or unpaired surrogates)."
# Integer primary keys are 32-bit on PostgreSQL: a larger id in a URL matches no route
# (404) instead of reaching the database as an out-of-range value.
MAX_ROW_ID = 2**31 - 1
ROW_ID = f"int(max={MAX_ROW_ID})"


def _malformed(message: str = "The body must be a JSON object.") -> DomainError:
    return DomainError("malformed_body", message, status=400)


def json_body() -> dict[str, Any]:
    """The request's JSON object; a 400 for anything that is not one."""
    if not request.get_data(cache=True):
        return {}
    try:
        payload = request.get_json(force=True, silent=True)
    except RecursionError as exc:  # json.loads gives up on very deep nesting
        raise _malformed("The body is nested too deeply.") from exc
    if not isinstance(payload, dict):
        raise _malformed()
    bad = unsafe_text_fields(payload)
    if bad:
        raise invalid_fields(bad, "Some fields contain characters that are not allowed.")
    return payload


def is_safe_text(text: str) -> bool:
    """Text every database stores: no NUL (PostgreSQL refuses it) and valid Unicode."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a JSON "\\ud800" escape
        return False
    return True


def unsafe_text_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The fields (nested like marshmallow's errors) whose strings are not safe text.

    Walks the body without recursion; a 400 for nesting deeper than MAX_JSON_DEPTH or
    for keys that are not safe text (they cannot be named back to the client).
    """
    bad: dict[str, Any] = {}
    stack: list[tuple[tuple[str, ...], Any]] = [((), payload)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise _malformed("The body is nested too deeply.")
        if isinstance(value, dict):
            for key, item in value.items():
                if not is_safe_text(key):
                    raise _malformed("The body has a key that is not valid text.")
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, str(i)), item) for i, item in enumerate(value))
        elif isinstance(value, str) and not is_safe_text(value):
            node = bad
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = [UNSAFE_TEXT]
    return bad


def reject_unsafe_request_text() -> None:
    """Before every request: text no database column can hold never reaches one.

    A NUL in a slug, an email or a title would fail in PostgreSQL as a 500. In the path
    it is a 404 (no such thing can exist); in the query or a form, a 422 naming the field.
    JSON bodies are checked by json_body, field by field.
    """
    if not is_safe_text(request.path):
        raise DomainError("not_found", "Nothing is here.", status=404)
    sources = [request.args]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sources.append(request.form)
    for source in sources:
        for key, values in source.lists():
            if not is_safe_text(key) or not all(is_safe_text(v) for v in values):
                raise invalid_fields({key if is_safe_text(key) else "_schema": [UNSAFE_TEXT]})


def not_blank(value: str) -> None:
    """A validator for text that must say something: whitespace alone is refused."""
    if not value.strip():
        raise ValidationError("Must not be blank.")


def load_json(schema: Schema, *, partial: bool | tuple[str, ...] | None = None) -> dict[str, Any]:
    return load(schema, json_body(), partial=partial)


def load(
    schema: Schema, data: Any, *, partial: bool | tuple[str, ...] | None = None
) -> dict[str, Any]:
    try:
        result: dict[str, Any] = schema.load(data, partial=partial)
    except ValidationError as exc:
        raise invalid_fields(field_messages(exc)) from exc
    return result


def field_messages(exc: ValidationError) -> dict[str, Any]:
    """marshmallow's messages by field; "_schema" for those about the whole input."""
    return exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}


def form_errors(exc: ValidationError) -> dict[str, list[str]]:
    """The same messages as flat lines per field, for HTML forms and the command line."""
    return {str(k): flat_messages(v) for k, v in field_messages(exc).items()}


def flat_messages(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in flat_messages(v)]
    if isinstance(value, list):
        return [m for v in value for m in flat_messages(v)]
    return [str(value)]


def load_query(schema: Schema) -> dict[str, Any]:
    return load(schema, request.args.to_dict())


class DatabaseIdConverter(IntegerConverter):
    """`<int:…>` in our URLs: a positive id that fits an INTEGER column.

    Larger numbers would overflow the database driver (a 500); here they match no
    route, a 404.
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)
