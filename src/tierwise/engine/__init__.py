"""engine layer (see DESIGN.md): Ibis expressions in, expressions out; nothing executes here."""

from tierwise.engine.cohorts import cohort_retention, migration_matrix
from tierwise.engine.profiles import PROFILE_SCHEMA, build_profiles, latest_order_date

__all__ = [
    "PROFILE_SCHEMA",
    "build_profiles",
    "cohort_retention",
    "latest_order_date",
    "migration_matrix",
]
