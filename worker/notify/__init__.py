"""The notify stage: render alerts, send them through apprise, run the delivery queue.

apprise is imported on first use (checking a channel URL, building a Notifier), not with this
package; the `console://` schema (alerts printed to stdout) is registered then.
"""

from worker.notify.channels import Notifier, SendResult, check_channel_urls, check_url, redact
from worker.notify.deliver import (
    DeliveryQueue,
    DeliveryReport,
    backoff,
    deliver_due,
    test_alert,
)
from worker.notify.pacing import Pacing
from worker.notify.render import (
    Message,
    Rendering,
    Templates,
    alert_test_message,
    render,
    render_digest,
)

__all__ = [
    "DeliveryQueue",
    "DeliveryReport",
    "Message",
    "Notifier",
    "Pacing",
    "Rendering",
    "SendResult",
    "Templates",
    "alert_test_message",
    "backoff",
    "check_channel_urls",
    "check_url",
    "deliver_due",
    "redact",
    "render",
    "render_digest",
    "test_alert",
]
