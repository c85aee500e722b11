from __future__ import annotations

from marshmallow import Schema, fields, validate

from dispatch_pay.inputs import not_blank
from dispatch_pay.money import MoneySchema

# A budget fits a 32-bit integer column.
MAX_BUDGET = 2**31 - 1


class BudgetAmountSchema(MoneySchema):
    amount = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(
            min=0, max=MAX_BUDGET, error="Must be between {min} and {max} minor units."
        ),
    )


class AgentTokenRequestSchema(Schema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=100), not_blank])
    max_price = fields.Nested(
        BudgetAmountSchema,
        required=True,
        metadata={"description": "the most one article may cost (site currency)"},
    )
    daily_limit = fields.Nested(
        BudgetAmountSchema,
        required=True,
        metadata={"description": "the most this token may spend per UTC day (site currency)"},
    )


class AgentTokenSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    max_price = fields.Nested(MoneySchema, required=True)
    daily_limit = fields.Nested(MoneySchema, required=True)
    spent_today = fields.Nested(MoneySchema, required=True)
    created_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(required=True, allow_none=True)
    revoked_at = fields.DateTime(required=True, allow_none=True)


class AgentTokenCreatedSchema(Schema):
    token = fields.String(required=True, metadata={"description": "the secret, shown once"})
    agent_token = fields.Nested(AgentTokenSchema, required=True)


class AgentTokenListSchema(Schema):
    agent_tokens = fields.List(fields.Nested(AgentTokenSchema), required=True)


class AgentTokenRevokedSchema(Schema):
    agent_token = fields.Nested(AgentTokenSchema, required=True)
