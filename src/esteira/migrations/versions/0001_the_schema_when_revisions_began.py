"""the schema when revisions began

Revision 0001, the first: the tables as `create_all` made them before revisions began.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=True),
        sa.Column("step_run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_alerts_pipeline_run_id"), ["pipeline_run_id"], unique=False
        )

    op.create_table(
        "alias_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.String(length=32), nullable=True),
        sa.Column("to_version", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alias_changes", schema=None) as batch_op:
        batch_op.create_index("ix_alias_changes_model", ["model", "alias", "id"], unique=False)

    op.create_table(
        "alias_intents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.String(length=32), nullable=True),
        sa.Column("to_version", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "batch_predictions",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("input_table", sa.String(length=200), nullable=False),
        sa.Column("input_version", sa.Integer(), nullable=False),
        sa.Column("output_table", sa.String(length=200), nullable=False),
        sa.Column("output_version", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "cd_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("champion_version", sa.String(length=32), nullable=True),
        sa.Column("release", sa.String(length=64), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cd_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_cd_decisions_model", ["model", "version"], unique=False)

    op.create_table(
        "ct_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("batch", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=True),
        sa.Column("champion_before", sa.String(length=32), nullable=True),
        sa.Column("champion_after", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ct_runs", schema=None) as batch_op:
        batch_op.create_index("ix_ct_runs_model", ["model", "id"], unique=False)

    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("release", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index("ix_deployments_environment", ["environment", "id"], unique=False)

    op.create_table(
        "gate_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("champion_version", sa.String(length=32), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_gate_decisions_model", ["model", "version"], unique=False)

    op.create_table(
        "monitoring",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("batch", sa.String(length=200), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=False),
        sa.Column("drifted", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitoring", schema=None) as batch_op:
        batch_op.create_index("ix_monitoring_model", ["model", "id"], unique=False)

    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("pipeline", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("trigger_reason", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("code_version", sa.String(length=64), nullable=False),
        sa.Column("git_commit", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("only_step", sa.String(length=200), nullable=True),
        sa.Column("until_step", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pipeline_runs_pipeline_started", ["pipeline", "started_at"], unique=False
        )
        batch_op.create_index("ix_pipeline_runs_started", ["started_at"], unique=False)

    op.create_table(
        "step_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_run_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("cached_from", sa.String(length=32), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["pipeline_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_step_runs_cache", ["cache_key", "status", "ended_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_step_runs_pipeline_run_id"), ["pipeline_run_id"], unique=False
        )
        batch_op.create_index("ix_step_runs_step_ended", ["step", "ended_at"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("step_run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("model_uri", sa.Text(), nullable=False),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index("ix_model_versions_name", ["name", "version"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_model_versions_step_run_id"), ["step_run_id"], unique=False
        )

    op.create_table(
        "step_io",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("step_run_id", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("step_io", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_step_io_step_run_id"), ["step_run_id"], unique=False)

    op.create_table(
        "table_access",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("step_run_id", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=5), nullable=False),
        sa.Column("table", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("table_access", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_table_access_step_run_id"), ["step_run_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("table_access", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_table_access_step_run_id"))

    op.drop_table("table_access")
    with op.batch_alter_table("step_io", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_io_step_run_id"))

    op.drop_table("step_io")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_step_run_id"))
        batch_op.drop_index("ix_model_versions_name")

    op.drop_table("model_versions")
    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_step_runs_step_ended")
        batch_op.drop_index(batch_op.f("ix_step_runs_pipeline_run_id"))
        batch_op.drop_index("ix_step_runs_cache")

    op.drop_table("step_runs")
    with op.batch_alter_table("pipeline_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_runs_started")
        batch_op.drop_index("ix_pipeline_runs_pipeline_started")

    op.drop_table("pipeline_runs")
    with op.batch_alter_table("monitoring", schema=None) as batch_op:
        batch_op.drop_index("ix_monitoring_model")

    op.drop_table("monitoring")
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_gate_decisions_model")

    op.drop_table("gate_decisions")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index("ix_deployments_environment")

    op.drop_table("deployments")
    with op.batch_alter_table("ct_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_ct_runs_model")

    op.drop_table("ct_runs")
    with op.batch_alter_table("cd_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_cd_decisions_model")

    op.drop_table("cd_decisions")
    op.drop_table("batch_predictions")
    op.drop_table("alias_intents")
    with op.batch_alter_table("alias_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_alias_changes_model")

    op.drop_table("alias_changes")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_pipeline_run_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_created_at"))

    op.drop_table("alerts")
