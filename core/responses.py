"""The response messages the router answers requests with."""

from __future__ import annotations

from typing import Any

from vocabulary.envelope import ABSENT, FAILED, RESPONSE, Message
from vocabulary.problems import Problem


def response(
    request: Message,
    *,
    output: Any = ABSENT,
    status: str | None = None,
    action_id: str | None = None,
    thing_id: str | None = None,
    timestamp: str = "",
) -> Message:
    return Message(
        RESPONSE,
        request.operation,
        thing_id or request.thing_id,
        request.name,
        output=output,
        status=status,
        correlation_id=request.correlation_id,
        action_id=action_id,
        timestamp=timestamp,
    )


def error_response(message: Message, problem: Problem) -> Message:
    return Message(
        RESPONSE,
        message.operation,
        message.thing_id,
        message.name,
        error=problem.to_dict(),
        status=FAILED,
        correlation_id=message.correlation_id or message.message_id,
        action_id=message.action_id,
    )
