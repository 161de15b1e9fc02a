"""The operation vocabulary: WoT operation names (TD 1.1 section 5.3.4.2) plus the hub's
own operations on Thing Descriptions and presence."""

from __future__ import annotations

# Properties
READ_PROPERTY = "readproperty"
WRITE_PROPERTY = "writeproperty"
OBSERVE_PROPERTY = "observeproperty"
UNOBSERVE_PROPERTY = "unobserveproperty"
READ_ALL_PROPERTIES = "readallproperties"
READ_MULTIPLE_PROPERTIES = "readmultipleproperties"
WRITE_MULTIPLE_PROPERTIES = "writemultipleproperties"
OBSERVE_ALL_PROPERTIES = "observeallproperties"
UNOBSERVE_ALL_PROPERTIES = "unobserveallproperties"
# Actions
INVOKE_ACTION = "invokeaction"
QUERY_ACTION = "queryaction"
CANCEL_ACTION = "cancelaction"
QUERY_ALL_ACTIONS = "queryallactions"
# Events
SUBSCRIBE_EVENT = "subscribeevent"
UNSUBSCRIBE_EVENT = "unsubscribeevent"
SUBSCRIBE_ALL_EVENTS = "subscribeallevents"
UNSUBSCRIBE_ALL_EVENTS = "unsubscribeallevents"
# The hub's own: Thing Descriptions and presence
UPDATE_THING = "updatething"  # an agent registers or replaces a TD; to consumers, a TD changed
DELETE_THING = "deletething"
READ_THING = "readthing"  # a consumer reads a twin TD
UPDATE_PRESENCE = "updatepresence"  # notification: an agent went online or offline
QUERY_HISTORY = "queryhistory"  # a page of a property's or event's values (docs/history.md)
# A twin's state document: reported, desired, declined, delta (docs/digitwin.md)
READ_STATE = "readstate"
OBSERVE_STATE = "observestate"  # also the notification: a property's desired or declined changed
UNOBSERVE_STATE = "unobservestate"

# Permission names for what agents send (not wire operations): the router asks the
# authorizer for these when an agent reports a value or an event or answers a request.
REPORT_PROPERTY = "reportproperty"
REPORT_EVENT = "reportevent"
ANSWER_REQUEST = "answerrequest"
# Permission name for defining and removing groups of Things (docs/groups.md).
MANAGE_GROUPS = "managegroups"

WOT_OPERATIONS = frozenset(
    {
        READ_PROPERTY,
        WRITE_PROPERTY,
        OBSERVE_PROPERTY,
        UNOBSERVE_PROPERTY,
        READ_ALL_PROPERTIES,
        READ_MULTIPLE_PROPERTIES,
        WRITE_MULTIPLE_PROPERTIES,
        OBSERVE_ALL_PROPERTIES,
        UNOBSERVE_ALL_PROPERTIES,
        INVOKE_ACTION,
        QUERY_ACTION,
        CANCEL_ACTION,
        QUERY_ALL_ACTIONS,
        SUBSCRIBE_EVENT,
        UNSUBSCRIBE_EVENT,
        SUBSCRIBE_ALL_EVENTS,
        UNSUBSCRIBE_ALL_EVENTS,
    }
)
HUB_OPERATIONS = frozenset(
    {
        UPDATE_THING,
        DELETE_THING,
        READ_THING,
        UPDATE_PRESENCE,
        QUERY_HISTORY,
        READ_STATE,
        OBSERVE_STATE,
        UNOBSERVE_STATE,
    }
)
OPERATIONS = WOT_OPERATIONS | HUB_OPERATIONS

# Operations on one affordance, which therefore need a `name`.
NAMED_OPERATIONS = frozenset(
    {
        READ_PROPERTY,
        WRITE_PROPERTY,
        OBSERVE_PROPERTY,
        UNOBSERVE_PROPERTY,
        INVOKE_ACTION,
        SUBSCRIBE_EVENT,
        UNSUBSCRIBE_EVENT,
        QUERY_HISTORY,
    }
)
# Operations that may leave out `thingID`: the "all Things" subscriptions.
THINGLESS_OPERATIONS = frozenset(
    {
        OBSERVE_ALL_PROPERTIES,
        UNOBSERVE_ALL_PROPERTIES,
        SUBSCRIBE_ALL_EVENTS,
        UNSUBSCRIBE_ALL_EVENTS,
        UPDATE_THING,  # a new TD may arrive without an id
        QUERY_ACTION,  # the actionID names the request, and so its Thing
        CANCEL_ACTION,
    }
)
# Requests that add a subscription (a consumer's; an agent's reports use the same names
# as notifications).
SUBSCRIBING_OPERATIONS = frozenset(
    {OBSERVE_PROPERTY, OBSERVE_ALL_PROPERTIES, SUBSCRIBE_EVENT, SUBSCRIBE_ALL_EVENTS, OBSERVE_STATE}
)
# Requests that change what a Thing does; they wait in the queue for its agent.
QUEUED_OPERATIONS = frozenset({INVOKE_ACTION, WRITE_PROPERTY})
