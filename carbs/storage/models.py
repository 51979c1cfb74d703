"""SQLAlchemy table definitions.

JSON payloads are stored as text so the same schema works unchanged on SQLite
and PostgreSQL. Bump ``SCHEMA_VERSION`` whenever a table changes, and list
the columns a new version adds in ``ADDED_COLUMNS`` so that existing databases
are upgraded in place when they are opened (new tables need no entry:
``create_all`` makes them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# 1: studies and trials. 2: intermediate reports (learning curves) and the
# PRUNED trial state; a version-1 database gains the new table when opened.
# 3: trials record the trial they re-run (retry_of) and the launcher job that
# ran them (job). 4: a pool of precomputed suggestions per study
# (carbs_suggestion_pool), the claim of its refill (carbs_studies.pool_claimed_at)
# and the start of an ask made while no trial ran (carbs_studies.asking_since).
SCHEMA_VERSION = 4

# version -> (table, column, SQL type) added by that version; the columns are
# nullable, so existing rows stay valid.
ADDED_COLUMNS: dict[int, tuple[tuple[str, str, str], ...]] = {
    3: (
        ("carbs_trials", "retry_of", "INTEGER"),
        ("carbs_trials", "job", "VARCHAR(255)"),
    ),
    4: (
        ("carbs_studies", "pool_claimed_at", "TIMESTAMP WITH TIME ZONE"),
        ("carbs_studies", "asking_since", "TIMESTAMP WITH TIME ZONE"),
    ),
}


class Base(DeclarativeBase):
    """Declarative base of every carbs table."""


class SchemaVersionRow(Base):
    """A single row holding the schema version the database was written with."""

    __tablename__ = "carbs_schema_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class StudyRow(Base):
    """A study: its search space, direction, metric, settings and run config."""

    __tablename__ = "carbs_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    direction: Mapped[int] = mapped_column(Integer, nullable=False)
    metric: Mapped[str] = mapped_column(String(255), nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    settings_json: Mapped[str] = mapped_column(Text, nullable=False)
    config_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    user_attrs_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # When a process claimed the refill of the study's suggestion pool (None: nobody holds it).
    pool_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # When an ask that found no trial running began computing its own suggestion
    # (None once it stored its trial): another ask meanwhile means concurrent workers.
    asking_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TrialRow(Base):
    """A trial of a study, numbered from 0 within the study."""

    __tablename__ = "carbs_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_carbs_trials_study_number"),
        Index("ix_carbs_trials_study_state", "study_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("carbs_studies.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    output: Mapped[float | None] = mapped_column(Double, nullable=True)
    cost: Mapped[float | None] = mapped_column(Double, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_grace: Mapped[float | None] = mapped_column(Double, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # How the optimizer chose the point ("random", "model", "resample", ...):
    # rebuilding the optimizer needs the count of resamples handed out.
    suggestion_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The trial this one re-runs (same point) after it was lost; a chain of
    # retry_of links is the lineage of one point.
    retry_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The launcher's job that ran it, e.g. "slurm:1234".
    job: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fail_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    stderr_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_attrs_json: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class IntermediateRow(Base):
    """One intermediate report of a trial: its metric at a step, and the cost spent so far."""

    __tablename__ = "carbs_intermediate_values"
    __table_args__ = (
        UniqueConstraint("trial_id", "step", name="uq_carbs_intermediate_trial_step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(
        ForeignKey("carbs_trials.id", ondelete="CASCADE"), nullable=False, index=True
    )
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    value: Mapped[float] = mapped_column(Double, nullable=False)
    cost: Mapped[float] = mapped_column(Double, nullable=False)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ModelCacheRow(Base):
    """What the optimizer of a study chose to share between processes (its fitted
    hyperparameters, as JSON) and who is computing the next version."""

    __tablename__ = "carbs_model_cache"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("carbs_studies.id", ondelete="CASCADE"), primary_key=True
    )
    observation_count: Mapped[int] = mapped_column(Integer, nullable=False)
    payload_json: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SuggestionRow(Base):
    """A suggestion made ahead of time for the next asks of a study (its suggestion pool).

    ``basis`` is the number of observations the models had seen, ``definition``
    a digest of the study's space and settings when it was made: an ask uses a
    row only while both still hold, and deletes it in the transaction that
    stores the trial, so no row is handed out twice.
    """

    __tablename__ = "carbs_suggestion_pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("carbs_studies.id", ondelete="CASCADE"), nullable=False, index=True
    )
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    suggestion_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    basis: Mapped[int] = mapped_column(Integer, nullable=False)
    definition: Mapped[str] = mapped_column(String(64), nullable=False)
    # Upper-quantile predicted cost (the one the cost caps apply to), when the models made it.
    cost_upper: Mapped[float | None] = mapped_column(Double, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
