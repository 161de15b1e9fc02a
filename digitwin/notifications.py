"""Hub-wide notification numbering and the bounded log that replays recent ones.

Every notification gets the next sequence number. The log keeps the most recent ones so
a subscriber that reconnects (SSE ``Last-Event-ID``) can receive what it missed; when
what it missed is older than the log, ``after`` says so and the subscriber must re-read
the state instead. ``epoch`` changes at every start, so numbers from an earlier run are
recognised as such.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass

from vocabulary.envelope import Message


@dataclass(frozen=True, slots=True)
class Notification:
    seq: int
    message: Message


class NotificationLog:
    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError("the notification log needs room for at least one entry")
        self._entries: deque[Notification] = deque(maxlen=size)
        self.last_seq = 0
        self.epoch = uuid.uuid4().hex[:8]

    def append(self, message: Message) -> Notification:
        self.last_seq += 1
        notification = Notification(self.last_seq, message)
        self._entries.append(notification)
        return notification

    def gap(self) -> None:
        """Notifications were missed (a cluster node that stopped following the other
        nodes while nobody here watched): no resume from before now is complete, so
        every one gets None (the client reads the state again)."""
        self._entries.clear()
        self.last_seq += 1

    def after(self, seq: int) -> list[Notification] | None:
        """Notifications after ``seq``; None when some of them are no longer in the log
        (or ``seq`` is not from this run)."""
        if seq > self.last_seq or seq < 0:
            return None
        if seq == self.last_seq:
            return []
        oldest = self._entries[0].seq if self._entries else self.last_seq + 1
        if seq + 1 < oldest:
            return None
        return list(self._entries)[seq + 1 - oldest :]
