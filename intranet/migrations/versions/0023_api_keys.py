"""api keys: server-to-server clients, stored as a public prefix and the SHA-256 of the secret

Revision ID: 0023_api_keys
Revises: 0022_journeys
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0023_api_keys"
down_revision = "0022_journeys"
branch_labels = None
depends_on = None


def _fk(column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["intranet_employee.id"],
                                   name=op.f(f"fk_intranet_api_key_{column}_intranet_employee"), ondelete="SET NULL")


def upgrade() -> None:
    op.create_table(
        "intranet_api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_by_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_pk", sa.Integer(), nullable=True),
        sa.CheckConstraint("length(secret_sha256) = 64", name=op.f("ck_intranet_api_key_secret_sha256_length")),
        sa.CheckConstraint("scopes <> ''", name=op.f("ck_intranet_api_key_scopes_present")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 100", name=op.f("ck_intranet_api_key_name_length")),
        _fk("created_by_pk"),
        _fk("revoked_by_pk"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intranet_api_key")),
        sa.UniqueConstraint("prefix", name=op.f("uq_intranet_api_key_prefix")),
    )


def downgrade() -> None:
    op.drop_table("intranet_api_key")
