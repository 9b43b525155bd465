"""`zipscore serve`: the gateway under uvicorn, in this process.

    zipscore serve --host 127.0.0.1 --port 5000

Refuses to start beyond loopback without API keys, before anything binds.
"""

from __future__ import annotations

import logging

from producer.gateway.auth import ApiKeys, refuse_exposure
from worker.contract import log_setup
from worker.contract.settings import get_settings


def serve(host: str = "127.0.0.1", port: int = 5000) -> None:
    """Run the gateway with uvicorn in this process until interrupted.

    Raises:
        SettingsError: before anything binds, when `host` is beyond loopback and no API
            keys are configured (or the settings are not valid).
    """
    import uvicorn

    refuse_exposure(host, port, ApiKeys(get_settings().gateway_api_keys))
    log_setup.configure(logging.INFO)
    uvicorn.run(
        "producer.gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,  # zipscore's own logging (ZIPSCORE_LOG_FORMAT)
        timeout_graceful_shutdown=10,
    )
