"""``up``'s flags: what starts the workflow (a schedule, files landing), the alert address
and the alarm's threshold."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.config import DEFAULT_MAX_QUARANTINE_RATE

# Glue's cron: six fields (minutes hours day-of-month month day-of-week year) in cron(...).
CRON = re.compile(r"cron\((\S+ ){5}\S+\)")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# `up --schedule none`: the workflow back to on demand (no schedule, no arrivals).
NO_SCHEDULE = "none"
# `up --on-arrival`: Glue's EventBatchingCondition. The workflow starts when this many
# files have landed or this many seconds after the first one, whichever comes first.
# Two files: a day's sales export and its customers export; 900 s is Glue's longest
# window (and its default), so a day's lone file still starts a run within 15 minutes.
DEFAULT_BATCH_SIZE = 2
DEFAULT_BATCH_WINDOW = 900
BATCH_SIZE_RANGE = (1, 100)  # Glue's limits
BATCH_WINDOW_RANGE = (1, 900)

EXCLUSIVE_START = (
    "--on-arrival and --schedule are exclusive: the workflow starts when files land or on "
    "a clock, not both (--schedule none makes it on demand)"
)


def schedule_problem(schedule: str) -> str | None:
    """What is wrong with a Glue schedule expression, or None for ``cron(m h dom mon dow y)``
    (or ``none``, on demand)."""
    if schedule == NO_SCHEDULE or CRON.fullmatch(schedule):
        return None
    return (
        f"schedule {schedule!r} is not a Glue cron expression: six fields in cron(...), "
        f'e.g. "cron(0 6 * * ? *)" (06:00 UTC every day), or {NO_SCHEDULE!r} for on demand'
    )


def email_problem(address: str) -> str | None:
    """What is wrong with an alert address, or None when it looks like an email address."""
    return None if EMAIL.fullmatch(address) else f"{address!r} does not look like an email address"


def batch_problems(batch_size: int | None, batch_window: int | None) -> list[str]:
    """What is wrong with the batching flags against Glue's limits (empty when nothing)."""
    found = []
    for flag, value, (low, high) in (
        ("--batch-size", batch_size, BATCH_SIZE_RANGE),
        ("--batch-window", batch_window, BATCH_WINDOW_RANGE),
    ):
        if value is not None and not low <= value <= high:
            found.append(f"{flag} must be between {low} and {high} (Glue's limits), not {value}")
    return found


@dataclass(frozen=True)
class Operations:
    """What ``up``'s flags choose for the workflow, the alerts and the alarm.

    What starts the workflow and who gets alerts are kept as deployed unless a flag says
    otherwise: ``schedule`` None and ``on_arrival`` False keep the start trigger as it is
    (on demand when there is none yet), ``--schedule none`` makes it on demand. An
    ``alert_email`` is added to the subscriptions, ``no_alert_email`` removes every email
    subscription, neither leaves them alone. The alarm's threshold is the desired state
    (the default when not given).
    """

    schedule: str | None = None  # a Glue cron, NO_SCHEDULE, or None: keep what is deployed
    on_arrival: bool = False
    batch_size: int | None = None  # None: the deployed trigger's, else the default
    batch_window: int | None = None
    alert_email: str | None = None
    no_alert_email: bool = False
    max_quarantine_rate: float = DEFAULT_MAX_QUARANTINE_RATE

    @property
    def cron(self) -> str | None:
        """The schedule's cron expression, or None when the workflow is not scheduled."""
        return None if self.schedule in (None, NO_SCHEDULE) else self.schedule

    @property
    def start_given(self) -> bool:
        """True when a flag says what starts the workflow (else ``up`` keeps what is there)."""
        return self.schedule is not None or self.on_arrival

    @property
    def batching(self) -> dict[str, int]:
        """The start trigger's EventBatchingCondition (on arrival)."""
        return {
            "BatchSize": self.batch_size or DEFAULT_BATCH_SIZE,
            "BatchWindow": self.batch_window or DEFAULT_BATCH_WINDOW,
        }

    def problems(self) -> list[str]:
        found = []
        if self.cron is not None and (why := schedule_problem(self.cron)):
            found.append(why)
        if self.on_arrival and self.schedule is not None:
            found.append(EXCLUSIVE_START)
        if not self.on_arrival and (self.batch_size or self.batch_window):
            found.append("--batch-size and --batch-window go with --on-arrival")
        found += batch_problems(self.batch_size, self.batch_window)
        if self.alert_email is not None and (why := email_problem(self.alert_email)):
            found.append(why)
        if self.alert_email is not None and self.no_alert_email:
            found.append("--alert-email and --no-alert-email contradict each other: give one")
        if not 0.0 <= self.max_quarantine_rate <= 1.0:
            found.append("--max-quarantine-rate must be between 0 and 1")
        return found
