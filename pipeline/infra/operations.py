"""``up``'s flags for the workflow's schedule, the alert address and the alarm's threshold."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.config import DEFAULT_MAX_QUARANTINE_RATE

# Glue's cron: six fields (minutes hours day-of-month month day-of-week year) in cron(...).
CRON = re.compile(r"cron\((\S+ ){5}\S+\)")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def schedule_problem(schedule: str) -> str | None:
    """What is wrong with a Glue schedule expression, or None for ``cron(m h dom mon dow y)``."""
    if CRON.fullmatch(schedule):
        return None
    return (
        f"schedule {schedule!r} is not a Glue cron expression: six fields in cron(...), "
        'e.g. "cron(0 6 * * ? *)" (06:00 UTC every day)'
    )


def email_problem(address: str) -> str | None:
    """What is wrong with an alert address, or None when it looks like an email address."""
    return None if EMAIL.fullmatch(address) else f"{address!r} does not look like an email address"


@dataclass(frozen=True)
class Operations:
    """What ``up``'s flags choose for the workflow, the alerts and the alarm.

    They are the desired state: ``up`` without ``--schedule`` puts the start trigger back
    to on demand, and without ``--max-quarantine-rate`` the alarm back to the default.
    ``alert_email`` only adds a subscription; ``up`` never removes one.
    """

    schedule: str | None = None  # None: the workflow runs on demand only
    alert_email: str | None = None
    max_quarantine_rate: float = DEFAULT_MAX_QUARANTINE_RATE

    def problems(self) -> list[str]:
        found = []
        if self.schedule is not None and (why := schedule_problem(self.schedule)):
            found.append(why)
        if self.alert_email is not None and (why := email_problem(self.alert_email)):
            found.append(why)
        if not 0.0 <= self.max_quarantine_rate <= 1.0:
            found.append("--max-quarantine-rate must be between 0 and 1")
        return found
