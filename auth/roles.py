"""Roles and what each may do (docs/auth.md), as a table, plus ownership."""

from __future__ import annotations

from vocabulary import operations as ops
from vocabulary.identity import ADMIN, AGENT, MANAGER, OPERATOR, ROLES, SERVICE, VIEWER

__all__ = ["ADMIN", "AGENT", "MANAGER", "OPERATOR", "ROLES", "SERVICE", "VIEWER"]

# Client kinds and the roles each may hold.
KIND_ROLES = {
    "consumer": (VIEWER, OPERATOR, MANAGER, ADMIN),
    "agent": (AGENT,),
    "service": (SERVICE,),
}

_READ = frozenset(
    {
        ops.READ_PROPERTY,
        ops.READ_ALL_PROPERTIES,
        ops.READ_MULTIPLE_PROPERTIES,
        ops.OBSERVE_PROPERTY,
        ops.UNOBSERVE_PROPERTY,
        ops.OBSERVE_ALL_PROPERTIES,
        ops.UNOBSERVE_ALL_PROPERTIES,
        ops.SUBSCRIBE_EVENT,
        ops.UNSUBSCRIBE_EVENT,
        ops.SUBSCRIBE_ALL_EVENTS,
        ops.UNSUBSCRIBE_ALL_EVENTS,
        ops.QUERY_ACTION,
        ops.QUERY_ALL_ACTIONS,
        ops.READ_THING,
        ops.QUERY_HISTORY,  # who may read a Thing may read its history
        ops.READ_STATE,  # and its state document
        ops.OBSERVE_STATE,
        ops.UNOBSERVE_STATE,
    }
)
_OPERATE = _READ | {ops.INVOKE_ACTION, ops.CANCEL_ACTION}
_MANAGE = _OPERATE | {ops.WRITE_PROPERTY, ops.WRITE_MULTIPLE_PROPERTIES, ops.MANAGE_GROUPS}
# What agents do, on their own Things only.
AGENT_OPERATIONS = frozenset(
    {
        ops.UPDATE_THING,
        ops.DELETE_THING,
        ops.READ_THING,
        ops.QUERY_HISTORY,
        ops.READ_STATE,
        ops.REPORT_PROPERTY,
        ops.REPORT_EVENT,
        ops.ANSWER_REQUEST,
    }
)

PERMISSIONS: dict[str, frozenset[str]] = {
    VIEWER: _READ,
    OPERATOR: _OPERATE,
    MANAGER: _MANAGE,
    ADMIN: ops.OPERATIONS | AGENT_OPERATIONS,
    AGENT: AGENT_OPERATIONS,
    SERVICE: AGENT_OPERATIONS | _MANAGE,
}
