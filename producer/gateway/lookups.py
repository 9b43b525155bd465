"""The zipcode routes: /zipcodes/{zipcode} (one zipcode's risk factor) and /zipcodes
(every zipcode with a risk factor).

    add_lookup_routes(app, context)

Input is validated on the loop (pure). A cache hit is read on the loop too; a miss asks a
worker through the question gate, on a thread, without reading the cache a second time.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import FastAPI, Query

from producer.gateway.context import Context
from producer.gateway.openapi import documented_errors, success
from worker.contract.answers import LookupResult, RiskFactorListing
from worker.contract.errors import ErrorCode
from worker.contract.result_cache import BY_RISK_FACTOR, LOOKUP
from worker.contract.validation import parse_risk_factor, parse_zipcode


def add_lookup_routes(app: FastAPI, context: Context) -> None:
    client, run, reader, gate = context.client, context.run, context.reader, context.gate

    @app.get(
        "/zipcodes/{zipcode}",
        response_model=LookupResult,
        responses={
            200: success({"zipcode": 9000, "risk_factor": "B", "exists": True}),
            **documented_errors(
                400,
                *context.auth_errors,
                503,
                504,
                example=(ErrorCode.ZIPCODE_NOT_VALID, "zipcode 999 is outside 1000-9999"),
            ),
        },
        tags=["zipcodes"],
        operation_id="lookupZipcode",
        summary="Risk factor of one zipcode",
        dependencies=context.guarded,
    )
    async def lookup(zipcode: str) -> LookupResult:
        """The risk factor of one zipcode (1000-9999); `exists: false` when not in the table."""
        arrived = time.monotonic()
        number = parse_zipcode(zipcode)  # pure: a refused input never leaves the loop
        if reader is None:  # the client reads the cache, on its thread
            return await gate.ask(lambda left: client.lookup(number, timeout=left), run, arrived)
        if (cached := await reader.lookup(LOOKUP, number)) is not None:
            return LookupResult.model_validate(cached)
        return await gate.ask(
            lambda left: client.lookup_uncached(number, timeout=left), run, arrived
        )

    @app.get(
        "/zipcodes",
        response_model=RiskFactorListing,
        responses={
            200: success({"risk_factor": "A", "count": 3, "zipcodes": [9170, 9171, 9172]}),
            **documented_errors(
                400,
                *context.auth_errors,
                503,
                504,
                example=(
                    ErrorCode.RISK_FACTOR_NOT_VALID,
                    "risk factor must be one of A, B, C, not 'Z'",
                ),
            ),
        },
        tags=["zipcodes"],
        operation_id="listZipcodes",
        summary="Zipcodes with a risk factor",
        dependencies=context.guarded,
    )
    async def by_risk_factor(
        risk_factor: Annotated[str, Query(description="A, B or C")],
    ) -> RiskFactorListing:
        """Every zipcode carrying a risk factor, ascending."""
        arrived = time.monotonic()
        factor = parse_risk_factor(risk_factor)
        if reader is None:
            return await gate.ask(
                lambda left: client.by_risk_factor(factor, timeout=left), run, arrived
            )
        if cached := await reader.lookup(BY_RISK_FACTOR, factor):
            return RiskFactorListing.model_validate(cached)
        return await gate.ask(
            lambda left: client.by_risk_factor_uncached(factor, timeout=left), run, arrived
        )
