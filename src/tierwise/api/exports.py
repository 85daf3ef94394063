"""Customer files for download, through the same service (scope, masking, consent, audit) as
`tierwise export customers`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from tierwise.api.auth import StoreDep, UserDep
from tierwise.api.customers import customer_filter
from tierwise.api.schemas import CustomerExportQuery, ErrorOut
from tierwise.services import exports

router = APIRouter(responses={401: {"model": ErrorOut}}, tags=["exports"])

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.get(
    "/exports/customers",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def export_customers(
    query: Annotated[CustomerExportQuery, Query()], user: UserDep, store: StoreDep
) -> FileResponse:
    """The caller's customers matching the filters as a CSV or Excel file (audited)."""
    fd, name = tempfile.mkstemp(prefix="tierwise-export-", suffix=f".{query.format}")
    os.close(fd)
    path = Path(name)
    try:
        result = exports.export_customers(
            store, user, customer_filter(query), purpose=query.purpose, out=path
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[query.format],
        filename=f"customers-{result.run_id or 'none'}-{query.purpose}.{query.format}",
        headers={"X-Content-SHA256": result.sha256},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
