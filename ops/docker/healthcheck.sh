#!/bin/sh
# Container health by role (ZIPSCORE_ROLE): workers answer a broker ping addressed to their
# own node name; beat has a recent schedule file; flower answers its /healthcheck; the
# gateway answers its /healthz (liveness only: /readyz is for load balancers).
set -eu
case "${ZIPSCORE_ROLE:-worker}" in
    worker | worker-batch)
        node="${ZIPSCORE_ROLE}@$(hostname)"
        exec celery -A worker inspect ping --destination "${node}" --timeout 10 >/dev/null
        ;;
    beat)
        test -n "$(find /app/var -name 'celerybeat-schedule*' -mmin -10 2>/dev/null)"
        ;;
    flower)
        exec python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:5555/healthcheck', timeout=5)"
        ;;
    gateway)
        exec python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/healthz', timeout=5)"
        ;;
    *)
        exit 0
        ;;
esac
