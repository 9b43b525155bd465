"""The answers workers give, as producers read them: one pydantic model each.

A task returns the model's JSON (or the contract's `{"error": {"code", "message"}}`); the
client validates it into the model, and the gateway serves the same models.
"""

from __future__ import annotations

from pydantic import BaseModel


class LookupResult(BaseModel):
    zipcode: int
    risk_factor: str | None
    exists: bool


class RiskFactorListing(BaseModel):
    risk_factor: str
    count: int
    zipcodes: list[int]


class IndexAnswer(BaseModel):
    base_year: int
    index: float
    period: str
    fetched_at: str
    stale: bool


class RefreshReport(BaseModel):
    months_stored: int
    months_new: int
    months_changed: int
    base_years: list[int]
    refreshed_at: str
