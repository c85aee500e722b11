from __future__ import annotations

from marshmallow import Schema, fields, post_load, validate

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024


class CredentialsSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(
        required=True,
        validate=validate.Length(
            min=PASSWORD_MIN_LENGTH,
            max=PASSWORD_MAX_LENGTH,
            error="Must be between {min} and {max} characters.",
        ),
    )

    @post_load
    def normalise(self, data: dict[str, str], **_: object) -> dict[str, str]:
        data["email"] = data["email"].strip().lower()
        return data


class LoginSchema(Schema):
    """Login takes any password length, so old or odd passwords still get an answer."""

    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(
        required=True, validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH)
    )

    @post_load
    def normalise(self, data: dict[str, str], **_: object) -> dict[str, str]:
        data["email"] = data["email"].strip().lower()
        return data


class TokenRequestSchema(LoginSchema):
    name = fields.String(load_default="API token", validate=validate.Length(min=1, max=100))


class ReaderSchema(Schema):
    id = fields.Integer()
    email = fields.String()


class SignupResponseSchema(Schema):
    reader = fields.Nested(ReaderSchema)
    token = fields.String()


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreatedSchema(Schema):
    token = fields.String()
    token_info = fields.Nested(TokenSchema, data_key="token_details")


# Response bodies of the accounts API (`required=True` on an output field documents
# that the key is always present; marshmallow ignores it on dump).
class UserSchema(ReaderSchema):
    role = fields.String(required=True, metadata={"enum": ["reader", "publisher"]})


class MeSchema(Schema):
    user = fields.Nested(UserSchema, required=True)


class TokenListSchema(Schema):
    tokens = fields.List(fields.Nested(TokenSchema), required=True)


class TokenRevokedSchema(Schema):
    token_details = fields.Nested(TokenSchema, required=True)
