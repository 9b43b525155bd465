"""`zipscore lookup` and `zipscore zipcodes`: questions answered through the lookups queue."""

from __future__ import annotations

import click

from producer.cli.answers import ClientFactory, answer_or_fail, emit, json_option


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("zipcode")
@json_option
@click.pass_obj
def lookup(make_client: ClientFactory, zipcode: str, as_json: bool) -> None:
    """Risk factor of one ZIPCODE (1000-9999)."""
    result = answer_or_fail(lambda: make_client().lookup(zipcode), as_json)
    human = result.risk_factor or f"unknown: {result.zipcode} is not in the risk table"
    emit(result.model_dump(), as_json, human)


@click.command()
@click.option("--risk-factor", "risk_factor", required=True, help="A, B or C.")
@json_option
@click.pass_obj
def zipcodes(make_client: ClientFactory, risk_factor: str, as_json: bool) -> None:
    """Every zipcode carrying a risk factor."""
    listing = answer_or_fail(lambda: make_client().by_risk_factor(risk_factor), as_json)
    emit(listing.model_dump(), as_json, " ".join(str(z) for z in listing.zipcodes))
