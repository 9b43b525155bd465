"""The health index route: /index, the latest index for a base year.

    add_index_route(app, context)

The base year is validated on the loop; a cached entry is read there too (and marked stale
by its age); a miss asks a worker through the question gate, without a second cache read.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import FastAPI, Query

from producer.gateway.context import Context
from producer.gateway.openapi import documented_errors, success
from worker.contract.answers import IndexAnswer
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import utcnow, with_staleness
from worker.contract.validation import parse_base_year

_EXAMPLE = {
    "base_year": 2004,
    "index": 135.61,
    "period": "2021-09",
    "fetched_at": "2021-10-01T07:15:02Z",
    "stale": False,
}


def add_index_route(app: FastAPI, context: Context) -> None:
    client, run, reader, gate = context.client, context.run, context.reader, context.gate
    settings = context.settings

    @app.get(
        "/index",
        response_model=IndexAnswer,
        responses={
            200: success(_EXAMPLE),
            **documented_errors(
                400,
                *context.auth_errors,
                503,
                504,
                example=(
                    ErrorCode.WRONG_YEAR,
                    "base year must be one of 1996, 2004, 2013, 2025, not '1999'",
                ),
            ),
        },
        tags=["index"],
        operation_id="latestIndex",
        summary="Latest health index",
        dependencies=context.guarded,
    )
    async def health_index(
        base_year: Annotated[str | None, Query(description="1996, 2004, 2013 or 2025")] = None,
        year: Annotated[
            str | None, Query(description="The older name of base_year", deprecated=True)
        ] = None,
    ) -> IndexAnswer:
        """The latest health index for a base year (default 2004); 503 INDEX_UNAVAILABLE
        before the first successful refresh."""
        arrived = time.monotonic()
        if base_year is not None and year is not None and base_year != year:
            raise ZipscoreError(ErrorCode.WRONG_YEAR, "base_year and year disagree: give one")
        chosen = base_year if base_year is not None else year
        supported = settings.index_base_years
        number = parse_base_year(
            settings.index_default_base_year if chosen is None else chosen, supported
        )
        if reader is None:  # the client reads the cache, on its thread
            return await gate.ask(lambda left: client.index(number, timeout=left), run, arrived)
        if (cached := await reader.index(number)) is not None:
            stale_after = settings.index_stale_after_seconds
            return IndexAnswer.model_validate(with_staleness(cached, stale_after, utcnow()))
        return await gate.ask(
            lambda left: client.index_uncached(number, timeout=left), run, arrived
        )
