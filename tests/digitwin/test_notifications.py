"""The hub-wide notification numbering and the bounded replay log."""

import pytest

from digitwin.notifications import NotificationLog
from vocabulary.envelope import NOTIFICATION, Message


def event(n: int) -> Message:
    return Message(
        NOTIFICATION, "subscribeevent", thing_id="urn:dev:ops:lamp-1", name="tick", value=n
    )


def filled(size: int, count: int) -> NotificationLog:
    log = NotificationLog(size)
    for n in range(1, count + 1):
        log.append(event(n))
    return log


def seqs(notifications: list) -> list[int]:
    return [notification.seq for notification in notifications]


def test_sequence_numbers_start_at_one_and_increase_by_one() -> None:
    log = NotificationLog()
    assert [log.append(event(n)).seq for n in range(5)] == [1, 2, 3, 4, 5]
    assert log.last_seq == 5


def test_append_returns_the_message_with_its_number() -> None:
    log = NotificationLog()
    message = event(7)
    notification = log.append(message)
    assert notification.message is message


def test_after_returns_exactly_the_later_notifications() -> None:
    log = filled(10, 6)
    later = log.after(3)
    assert seqs(later) == [4, 5, 6]
    assert [n.message.value for n in later] == [4, 5, 6]


def test_after_zero_returns_everything_while_nothing_was_dropped() -> None:
    assert seqs(filled(10, 4).after(0)) == [1, 2, 3, 4]


def test_after_the_last_number_is_empty() -> None:
    assert filled(10, 4).after(4) == []


def test_after_on_an_empty_log_is_empty() -> None:
    assert NotificationLog().after(0) == []


def test_after_a_number_older_than_the_log_is_none() -> None:
    log = filled(3, 10)  # keeps 8, 9, 10
    assert log.after(6) is None
    assert log.after(0) is None


def test_after_the_number_just_before_the_log_returns_the_whole_log() -> None:
    log = filled(3, 10)  # nothing between 7 and 8 is missing
    assert seqs(log.after(7)) == [8, 9, 10]


def test_after_a_number_greater_than_the_last_is_none() -> None:
    log = filled(10, 4)  # e.g. Last-Event-ID 99 from a previous run of the hub
    assert log.after(99) is None


def test_after_a_negative_number_is_none() -> None:
    assert filled(10, 4).after(-1) is None


def test_log_keeps_at_most_its_size() -> None:
    log = filled(100, 1000)
    assert seqs(log.after(900)) == list(range(901, 1001))
    assert log.after(899) is None


def test_log_of_size_one_keeps_the_last() -> None:
    log = filled(1, 5)
    assert seqs(log.after(4)) == [5]
    assert log.after(3) is None


def test_log_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError):
        NotificationLog(0)


def test_each_log_has_its_own_epoch() -> None:
    assert NotificationLog().epoch != NotificationLog().epoch
