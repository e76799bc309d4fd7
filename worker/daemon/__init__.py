"""`worker run`: the long-lived daemon.

- Schedule: one APScheduler job per source (its `every` or `cron`), the first run at start (a
  big wave paced), an `every` on the source's spread grid (a stable offset within the interval,
  see schedule.py), a little jitter (10% of the interval, at most 30 s; 5 s for cron). The job only *starts* a pass
  task; a source whose previous pass still runs skips the run (never two passes of one source at
  once), and runs missed while the loop was busy are coalesced into one.
- Deliveries: one loop per channel, so a slow or hanging channel never holds up another. A loop
  runs a round when a pass queued alerts, when the earliest pending delivery is due (retries go
  out on their own, not only after a crawl), and at least every 30 s.
- Live config: the file's content is checked every second (edits in place and by rename look the
  same) and on SIGHUP. A valid edit is applied as a difference: sources added, removed or
  rescheduled; watchlists and channels swapped for the next pages and rounds; `[http]` gets a
  new HTTP client; `[http_status]` moves the listener; `[logging] level` applies. Passes and
  rounds in flight finish with what they started with. An invalid edit is logged with the same
  messages `worker check` prints and the last good config stays.
- Stop: SIGTERM/SIGINT stop new work; running passes and delivery rounds get SHUTDOWN_GRACE
  seconds to finish (a second signal cuts that short), the rest is cancelled (what was stored
  stays stored, undelivered alerts stay queued), then the listener, the HTTP client(s) and the
  database are closed and `run_daemon` returns 0.

Layout: `Daemon` (lifecycle.py: startup, serve, shutdown, `apply`, status) owns its parts, each
with its own state (none holds the daemon): `SourceJobs` (jobs.py: the scheduler, the passes
it starts; triggers in schedule.py) or, on PostgreSQL, `FleetJobs` (fleet.py: sources claimed
from the schedule the replicas share), `ChannelLoops` (deliveries.py), `ConfigWatcher`
(watcher.py: the file, validated, handed to `Daemon.apply`) and the `HealthServer`
(worker/health.py, given status and metrics functions). tasks.py holds the helpers they share;
run.py is `run_daemon`.
"""

from worker.daemon.deliveries import DELIVERY_POLL, DELIVERY_RECHECK
from worker.daemon.lifecycle import SHUTDOWN_GRACE, Daemon
from worker.daemon.run import run_daemon
from worker.daemon.schedule import (
    CRON_JITTER,
    INTERVAL_JITTER,
    MAX_JITTER,
    crontab_day_of_week,
    trigger_for,
)
from worker.daemon.watcher import CONFIG_POLL, CONFIG_SETTLE, CONFIG_SETTLE_MAX

__all__ = [
    "CONFIG_POLL",
    "CONFIG_SETTLE",
    "CONFIG_SETTLE_MAX",
    "CRON_JITTER",
    "DELIVERY_POLL",
    "DELIVERY_RECHECK",
    "INTERVAL_JITTER",
    "MAX_JITTER",
    "SHUTDOWN_GRACE",
    "Daemon",
    "crontab_day_of_week",
    "run_daemon",
    "trigger_for",
]
