"""Verifies captured webhook deliveries with third parties' libraries: the
signature with `standardwebhooks` (the Standard Webhooks reference library),
the body with `cloudevents` (the CloudEvents SDK, structured mode).

Reads a JSON list of {"secret", "headers", "body"} on stdin; prints one JSON
result per delivery: {"valid": bool, "error": str, "event": {...}}.
Installed by .ci/tools.sh; run by tests/e2e/webhooks.rs.
"""

import json
import sys

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks.webhooks import Webhook


def check(case):
    try:
        Webhook(case["secret"]).verify(case["body"], case["headers"])
    except Exception as error:  # the library's verification errors
        return {"valid": False, "error": f"{type(error).__name__}: {error}"}
    event = from_http_event(
        HTTPMessage(headers=case["headers"], body=case["body"].encode())
    )
    time = event.get_time()
    return {
        "valid": True,
        "error": "",
        "event": {
            "id": event.get_id(),
            "source": event.get_source(),
            "specversion": event.get_specversion(),
            "type": event.get_type(),
            "subject": event.get_subject(),
            "time": time.isoformat() if time else None,
            "datacontenttype": event.get_datacontenttype(),
            "data": event.get_data(),
        },
    }


print(json.dumps([check(case) for case in json.load(sys.stdin)]))
