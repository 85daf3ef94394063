"""Publish a warehouse snapshot into the operational store, where the API and dashboard read.

The warehouse snapshot holds no contact data; publishing joins each customer's latest name,
phone, email, consent and account manager from `customers`, so erasure has one place to
clean in the store and the raw table in the warehouse. The store switches to the new run in
one transaction: readers see the old run or the new one, never a mix.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow.dataset as ds
from ibis.backends import BaseBackend

from tierwise.core.settings import Settings
from tierwise.engine.staging import customers_at
from tierwise.services.dashboard import RunRef, run_dashboard
from tierwise.services.run import snapshot_table
from tierwise.services.serving import opened_store
from tierwise.store.publish import DEFAULT_BATCH, PublishResult, publish_run

CONTACT_COLUMNS = (
    "name", "phone", "email", "consent_marketing", "account_manager", "region", "city",
    "gender", "age_band", "acquisition_channel",
)  # fmt: skip
MIGRATION_KEYS = ("dimension", "from_value", "to_value", "customers", "rate")
COHORT_KEYS = ("cohort_month", "month_offset", "cohort_size", "active_customers", "retention")


def published_rows(con: BaseBackend, run_id: str, as_of: date) -> ir.Table:
    """The snapshot with each customer's contact and ownership fields (null when unknown)."""
    profiles = con.table(snapshot_table("profiles", run_id))
    if "customers" not in con.list_tables():
        return profiles.mutate(**{c: ibis.null("string") for c in CONTACT_COLUMNS})
    contacts = customers_at(con.table("customers"), as_of)
    contacts = contacts.select(
        _cid=contacts.customer_id, **{c: contacts[c] for c in CONTACT_COLUMNS}
    )
    joined = profiles.left_join(contacts, profiles.customer_id == contacts._cid)
    return joined.drop("_cid")


def publish(settings: Settings, con: BaseBackend, run_id: str, as_of: date) -> PublishResult:
    migrations = con.table(snapshot_table("migration", run_id)).to_pyarrow().to_pylist()
    cohorts = con.table(snapshot_table("cohorts", run_id)).to_pyarrow().to_pylist()
    dashboard = run_dashboard(con, RunRef(run_id, as_of))
    # Spooled to Parquet and read back in batches: bounded memory, and the warehouse
    # connection is free again before the store is written. Spark writes a directory of parts.
    # In id order, the rows append to the end of the store's table and primary key.
    with tempfile.TemporaryDirectory(prefix="tierwise-publish-") as tmp:
        spool = Path(tmp) / "profiles.parquet"
        published_rows(con, run_id, as_of).order_by("customer_id").to_parquet(spool)
        with opened_store(settings) as store:
            return publish_run(
                store.write,
                run_id,
                as_of,
                ds.dataset(spool, format="parquet").to_batches(batch_size=DEFAULT_BATCH),
                dashboard=dashboard,
                migrations=[{k: r[k] for k in MIGRATION_KEYS} for r in migrations],
                cohorts=[{k: r[k] for k in COHORT_KEYS} for r in cohorts],
            )
