"""A lease on a database row, so two runs of a job never overlap (beat firing while a slow run
is still going, two beat processes by mistake). Works the same on PostgreSQL and SQLite: one
conditional UPDATE takes the lease; a run that dies leaves it to expire after `ttl`."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from audit.models import JobLock


@contextmanager
def job_lock(name: str, *, ttl: timedelta) -> Iterator[bool]:
    """Yields True while holding the lease, False if another run holds it."""
    holder = uuid.uuid4().hex
    JobLock.objects.get_or_create(name=name)
    now = timezone.now()
    taken = JobLock.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__lte=now), name=name
    ).update(holder=holder, expires_at=now + ttl)
    try:
        yield bool(taken)
    finally:
        if taken:
            JobLock.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)
