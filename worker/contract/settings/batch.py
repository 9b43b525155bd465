"""Settings of batches: chunk sizes, how many in flight, deadlines and retention."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class BatchSettings(BaseSettings):
    """How a batch is cut, sent and kept; how large a risk table file may be."""

    batch_chunk_size: int = Field(default=50_000, ge=1, le=1_000_000)
    batch_max_chunk_mb: int = Field(default=32, ge=1, le=512)
    batch_in_flight: int = Field(default=6, ge=1, le=256)
    batch_chunk_deadline_seconds: float = Field(default=120.0, gt=0, le=86_400)
    batch_max_attempts: int = Field(default=5, ge=1, le=100)
    batch_ttl_seconds: int = Field(default=7 * 86_400, ge=60)
    batch_lease_seconds: float = Field(default=15.0, gt=0, le=3_600)
    batch_poll_seconds: float = Field(default=0.05, gt=0, le=10)
    table_max_mb: int = Field(default=64, ge=1, le=4096)
