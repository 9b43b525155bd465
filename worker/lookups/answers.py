"""Answering lookups: plain functions over a store and the cache, tested without Celery."""

from __future__ import annotations

from typing import Any

from worker.contract.result_cache import BY_RISK_FACTOR, LOOKUP, ResultCache
from worker.contract.validation import parse_risk_factor, parse_zipcode
from worker.lookups.current_table import CurrentTable
from worker.lookups.zipcodes import ZipcodeStore


def lookup(table: CurrentTable, cache: ResultCache, zipcode: object) -> dict[str, Any]:
    """`{"zipcode", "risk_factor", "exists"}` for one zipcode, cached under its table version.

    When the cache write shows a newer published version (a load since this process copied
    the table), the table is copied again and the zipcode answered from the new one.
    """
    number = parse_zipcode(zipcode)
    for _ in range(2):
        version, factor = table.lookup(number)
        answer = {"zipcode": number, "risk_factor": factor, "exists": factor is not None}
        if not table.catch_up(cache.put(version, LOOKUP, number, answer)):
            break
    return answer


def by_risk_factor(store: ZipcodeStore, cache: ResultCache, risk_factor: object) -> dict[str, Any]:
    """`{"risk_factor", "count", "zipcodes"}`: every zipcode carrying the factor, ascending."""
    factor = parse_risk_factor(risk_factor)
    version, zipcodes = store.by_risk_factor(factor)
    answer = {"risk_factor": factor, "count": len(zipcodes), "zipcodes": zipcodes}
    cache.put(version, BY_RISK_FACTOR, factor, answer)
    return answer
