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
    kind = fields.String(metadata={"enum": ["reader", "agent"]})
    prefix = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreatedSchema(Schema):
    token = fields.String()
    token_info = fields.Nested(TokenSchema, data_key="token_details")


class EmailRequestSchema(Schema):
    """An address to mail a link to (sign-in, reset): a bare address, no names, no CR/LF."""

    email = fields.Email(required=True, validate=validate.Length(max=254))

    @post_load
    def normalise(self, data: dict[str, str], **_: object) -> dict[str, str]:
        data["email"] = data["email"].strip().lower()
        return data


def _new_password() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.Length(
            min=PASSWORD_MIN_LENGTH,
            max=PASSWORD_MAX_LENGTH,
            error="Must be between {min} and {max} characters.",
        ),
    )


class NewPasswordSchema(Schema):
    password = _new_password()


class ChangePasswordSchema(Schema):
    current_password = fields.String(
        required=True, validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH)
    )
    new_password = _new_password()


class ChangeEmailSchema(EmailRequestSchema):
    password = fields.String(
        required=True, validate=validate.Length(min=1, max=PASSWORD_MAX_LENGTH)
    )


class SessionSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    last_seen_at = fields.DateTime()
    user_agent = fields.String()
    address = fields.String()


class _ExportMoney(Schema):
    amount = fields.Integer(required=True)
    currency = fields.String(required=True)


class ExportAccountSchema(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class ExportWalletSchema(Schema):
    currency = fields.String(required=True)
    balance = fields.Nested(_ExportMoney, required=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class ExportEntrySchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    amount = fields.Nested(_ExportMoney, required=True)
    note = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)


class ExportArticleRefSchema(Schema):
    slug = fields.String(required=True)
    title = fields.String(required=True)


class ExportPurchaseSchema(Schema):
    id = fields.Integer(required=True)
    article = fields.Nested(ExportArticleRefSchema, required=True)
    price = fields.Nested(_ExportMoney, required=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    refunded_at = fields.DateTime(allow_none=True)


class ExportEntitlementSchema(Schema):
    article = fields.String(required=True)
    source = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class ExportTopUpSchema(Schema):
    id = fields.String(allow_none=True, metadata={"description": "The Stripe PaymentIntent id."})
    amount = fields.Nested(_ExportMoney, required=True)
    status = fields.String(required=True)
    charge_id = fields.String(allow_none=True)
    created_at = fields.DateTime(required=True)
    credited_at = fields.DateTime(allow_none=True)


class ExportMailSchema(Schema):
    subject = fields.String(required=True)
    status = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class ExportSchema(Schema):
    """Everything stored about the caller; tokens and sessions without their secrets."""

    account = fields.Nested(ExportAccountSchema, required=True)
    wallets = fields.List(fields.Nested(ExportWalletSchema), required=True)
    wallet_entries = fields.List(fields.Nested(ExportEntrySchema), required=True)
    purchases = fields.List(fields.Nested(ExportPurchaseSchema), required=True)
    entitlements = fields.List(fields.Nested(ExportEntitlementSchema), required=True)
    topups = fields.List(fields.Nested(ExportTopUpSchema), required=True)
    tokens = fields.List(fields.Nested(TokenSchema), required=True)
    sessions = fields.List(fields.Nested(SessionSchema), required=True)
    mail = fields.List(fields.Nested(ExportMailSchema), required=True)


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
