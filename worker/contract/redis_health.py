"""Whether Redis can keep zipscore's queues: its eviction policy and how full it is.

Read by `zipscore doctor` (worker/database/admin.py), the gateway's `/readyz`, and a worker once
it is ready (a warning in its log). Each problem is one line that starts with its code:

- `BROKER_EVICTION_POLICY`: `maxmemory-policy` is not `noeviction`, so Redis may delete
  keys when full, queued messages (the `lookups` list) and results among them, silently;
- `BROKER_MEMORY_PRESSURE`: Redis uses `PRESSURE_THRESHOLD` or more of its `maxmemory`;
  at 100 % it refuses writes (producers get BACKEND_UNAVAILABLE, workers wait).

The policy is read with `CONFIG GET`, or from `INFO memory` where CONFIG is disabled
(managed Redis services). A server that answers neither is reported without these checks.
"""

from __future__ import annotations

import redis

EVICTION_POLICY = "BROKER_EVICTION_POLICY"
MEMORY_PRESSURE = "BROKER_MEMORY_PRESSURE"
PRESSURE_THRESHOLD = 0.9
SAFE_POLICY = "noeviction"


def _policy(client: redis.Redis, info: dict[str, object]) -> str | None:
    try:
        answer = client.config_get("maxmemory-policy")
    except redis.ResponseError:  # CONFIG renamed or disabled
        answer = {}
    policy = answer.get("maxmemory-policy") or info.get("maxmemory_policy")
    if isinstance(policy, bytes):
        policy = policy.decode()
    return str(policy) if policy else None


def memory_problems(client: redis.Redis) -> list[str]:
    """One line per problem, each starting with its code; empty when Redis is fit.

    Raises redis.RedisError when Redis cannot be reached (the caller reports that).
    """
    try:
        info: dict[str, object] = client.info("memory")
    except redis.ResponseError:  # a Redis-compatible server without INFO
        return []
    problems = []
    policy = _policy(client, info)
    if policy is not None and policy != SAFE_POLICY:
        problems.append(
            f"{EVICTION_POLICY}: maxmemory-policy is {policy}, so Redis may evict queued "
            f"messages and results when full; set maxmemory-policy {SAFE_POLICY}"
        )
    used, limit = _int(info.get("used_memory")), _int(info.get("maxmemory"))
    if limit and used >= PRESSURE_THRESHOLD * limit:
        problems.append(
            f"{MEMORY_PRESSURE}: Redis uses {used / 2**20:.1f} MB of its maxmemory "
            f"{limit / 2**20:.1f} MB ({100 * used / limit:.0f} %); at 100 % it refuses "
            "new work (or, with an evicting policy, drops keys): raise maxmemory or free memory"
        )
    return problems


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else 0
