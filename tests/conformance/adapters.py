"""One adapter per binding, each with the same async calls: the only binding-specific
code of the conformance suite. Built on the project's clients (clients/); where one
lacks a call the adapter says so and uses what the client has.

An agent adapter registers TDs, reports values and events (each report is followed by
a barrier, so it returns the hub's refusal or None), takes requests and answers them.
A consumer adapter reads, writes, invokes, queries and cancels, observes and subscribes;
notifications arrive as ``Note`` on ``next_note``. Every refusal raises ``Refused``
with the problem's status, whatever the binding's own error type."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from bindings.mqtt import topics
from bindings.nats import subjects
from clients.errors import HubError
from clients.http import ABSENT as HTTP_ABSENT
from clients.http import HttpConsumer
from clients.mqtt import MqttClient, MqttError
from clients.nats import NatsAgent, NatsConsumer
from clients.websocket import WsClient
from tests.support.running import RunningHub
from tests.support.sse import SseReader
from tests.waiting import until
from vocabulary.envelope import ABSENT

FINAL = ("completed", "failed", "expired", "cancelled")
BARRIER = ("readthing", "urn:wothub:authn")  # a request every client may make


class Refused(Exception):
    """The hub refused: ``status`` is the RFC 9457 problem's."""

    def __init__(self, status: int | None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {problem}")
        self.status = status
        self.problem = problem or {}


@dataclass
class Note:
    """A notification as the consumer got it: the envelope where the binding sends one
    (WebSocket, NATS), the SSE event id on HTTP; MQTT twin topics carry the raw value."""

    thing_id: str
    name: str
    value: Any
    envelope: dict[str, Any] | None = None
    event_id: str | None = None


def _problem(response: dict[str, Any]) -> dict[str, Any] | None:
    return response.get("error") if response.get("status") == "failed" else None


# -- agents ------------------------------------------------------------------------------


class WebSocketAgent:
    """The project's WebSocket client, through ``running.device`` (tests/support)."""

    binding = "websocket"

    def __init__(self, device) -> None:
        self.device = device
        self._closed = False

    @classmethod
    async def connect(cls, running: RunningHub, client_id: str) -> WebSocketAgent:
        token_for(running, client_id, "agent", "agent")  # the account, before device() adds it
        return cls(await running.device(client_id))

    async def register(self, td: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.device.client.register(td)
        except HubError as error:
            raise Refused(error.status, error.problem) from None

    async def report_property(self, thing_id: str, name: str, value: Any):
        return await self._report("observeproperty", thing_id, name, value)

    async def report_event(self, thing_id: str, name: str, value: Any):
        return await self._report("subscribeevent", thing_id, name, value)

    async def _report(self, operation: str, thing_id: str, name: str, value: Any):
        error = await self.device.send(
            {"messageType": "notification", "operation": operation,
             "thingID": thing_id, "name": name, "value": value}
        )  # fmt: skip
        return None if error is None else error.error

    async def next_request(self, timeout: float = 5.0) -> dict[str, Any]:
        return (await self.device.next_request(timeout)).to_dict()

    async def answer(self, request: dict[str, Any], output: Any) -> None:
        await self.device.client.answer(request, output=output)

    async def close(self) -> None:
        if not self._closed:  # once: Device.close waits until the hub has seen it
            self._closed = True
            await self.device.close()


class MqttAgent:
    """clients/mqtt.py. It offers no report that tells of a refusal: the report is
    followed by a request (a barrier) and the refusal, an uncorrelated response on the
    client's resp topic, is taken from the client's queue of those (``_responses``)."""

    binding = "mqtt"

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self._requests = client.requests()

    @classmethod
    async def connect(cls, running: RunningHub, client_id: str) -> MqttAgent:
        client = await _mqtt(running, client_id, "agent")
        agent = cls(client)
        # Subscribing to its request topic makes the agent online: queued requests follow.
        agent._first = asyncio.ensure_future(anext(agent._requests))
        await _mqtt_subscribed(running, client_id)
        return agent

    async def register(self, td: dict[str, Any]) -> dict[str, Any]:
        response = await self.client._ask(
            topics.agent_topic(self.client.client_id, topics.TD, td.get("id")),
            {"messageType": "request", "operation": "updatething", "input": td},
        )
        if _problem(response):
            raise Refused(response["error"].get("status"), response["error"])
        return response["output"]

    async def report_property(self, thing_id: str, name: str, value: Any):
        self.client.report_property(thing_id, name, value)
        return await self._refusal()

    async def report_event(self, thing_id: str, name: str, value: Any):
        self.client.report_event(thing_id, name, value)
        return await self._refusal()

    def property_address(self, thing_id: str, name: str) -> str:
        return topics.agent_topic(self.client.client_id, topics.PROP, thing_id, name)

    async def publish(self, topic: str, payload: dict[str, Any]):
        """An envelope as is on an agent topic (the address tests); the refusal or None."""
        self.client._publish(topic, payload, 0)
        return await self._refusal()

    async def _refusal(self) -> dict[str, Any] | None:
        await self.client.request(*BARRIER)  # answered after the report was handled
        refused = self.client._responses
        return refused.get_nowait().get("error") if not refused.empty() else None

    async def next_request(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            if self._first is not None:
                first, self._first = self._first, None
                return await first
            return await anext(self._requests)

    async def answer(self, request: dict[str, Any], output: Any) -> None:
        self.client.answer(request, output=output)

    async def close(self) -> None:
        if self._first is not None:
            self._first.cancel()
        await self.client.close()


class NatsAgentSide:
    """clients/nats.py. ``NatsAgent`` logs and drops the error responses to refused
    reports (they come on its request subject); a second subscription of its own
    connection to that subject keeps them, and a hello request is the barrier."""

    binding = "nats"

    def __init__(self, agent: NatsAgent, refusals) -> None:
        self.agent = agent
        self._refusals = refusals

    @classmethod
    async def connect(cls, running: RunningHub, client_id: str) -> NatsAgentSide:
        agent = await NatsAgent.connect(
            running.hub.nats.url,
            client_id,
            token=token_for(running, client_id, "agent", "agent"),
            ca_pem=running.hub.ca.ca_cert_pem,
        )
        refusals = await agent.nc.subscribe(subjects.agent(client_id, subjects.REQ))
        return cls(agent, refusals)

    async def register(self, td: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.agent.register(td)
        except HubError as error:
            raise Refused(error.status, error.problem) from None

    async def report_property(self, thing_id: str, name: str, value: Any):
        await self.agent.report_property(thing_id, name, value)
        return await self._refusal()

    async def report_event(self, thing_id: str, name: str, value: Any):
        await self.agent.report_event(thing_id, name, value)
        return await self._refusal()

    def property_address(self, thing_id: str, name: str) -> str:
        return subjects.agent(self.agent.client_id, subjects.PROP, thing_id, name)

    async def publish(self, subject: str, payload: dict[str, Any]):
        """An envelope as is on an agent subject (the address tests); the refusal or None."""
        await self.agent.nc.publish(subject, orjson.dumps(payload))
        return await self._refusal()

    async def _refusal(self) -> dict[str, Any] | None:
        # The hub handles an agent's subjects in order: the hello is answered after the
        # report, and a refusal of it arrived (on the request subject) before the answer.
        await self.agent.hello()
        while self._refusals.pending_msgs:
            message = orjson.loads((await self._refusals.next_msg(timeout=1)).data)
            if message.get("messageType") == "response":
                return message.get("error")
        return None

    async def next_request(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await self.agent.requests.get()

    async def answer(self, request: dict[str, Any], output: Any) -> None:
        await self.agent.answer(request, output=output)

    async def close(self) -> None:
        await self.agent.close()


# -- consumers ---------------------------------------------------------------------------


class _Consumer:
    """Notifications land in one queue; ``next_note`` takes them in order."""

    binding = ""

    async def _call(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except HubError as error:
            raise Refused(error.status, error.problem) from None

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.notes: asyncio.Queue[Note] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def next_note(self, timeout: float = 5.0) -> Note:
        async with asyncio.timeout(timeout):
            return await self.notes.get()

    def _pump(self, source, make_note: Callable[[Any], Note | None]) -> None:
        async def pump() -> None:
            async for item in source:
                note = make_note(item)
                if note is not None:
                    self.notes.put_nowait(note)

        self._tasks.append(asyncio.create_task(pump()))

    def _pump_notifications(self, envelopes: asyncio.Queue[dict[str, Any]]) -> None:
        """The notifications among the envelopes a bus client queues for its responses
        topic (the notifications of observe requests travel there)."""

        async def queued():
            while True:
                yield await envelopes.get()

        self._pump(queued(), WebSocketConsumer._note)

    async def _stop_pumps(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class HttpConsumerSide(_Consumer):
    """clients/http.py: TDD API, the HTTP profile and SSE streams."""

    binding = "http"

    def __init__(self, running: RunningHub, client_id: str, token: str) -> None:
        super().__init__(client_id)
        self.running = running
        self.token = token
        self.client = HttpConsumer(running.url, ca=running.hub.ca.ca_cert_pem, token=token)
        self._hrefs: dict[str, str] = {}  # action id -> its ActionStatus href
        self._raw: list[aiohttp.ClientSession] = []

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        return await self._call(self.client.read_thing(thing_id))

    async def read_property(self, thing_id: str, name: str) -> Any:
        return await self._call(self.client.read_property(thing_id, name))

    async def write_property(self, thing_id: str, name: str, value: Any) -> str:
        status = await self._call(self.client.write_property(thing_id, name, value, wait=0))
        return "completed" if status is None else status["state"]

    async def invoke(self, thing_id: str, name: str, input: Any = ABSENT) -> tuple[str, str]:
        """(action id, state) at once: ``Prefer: respond-async``."""
        input = HTTP_ABSENT if input is ABSENT else input  # the client's own "no input"
        status = await self._call(self.client.invoke(thing_id, name, input, respond_async=True))
        self._hrefs[status["id"]] = status.href
        return status["id"], status["state"]

    async def service(self, thing_id: str, action: str, input: Any) -> Any:
        """The output of an action of one of the hub's own Things (they answer at once)."""
        return await self._call(self.client.invoke_service(thing_id, action, input))

    async def query_action(self, thing_id: str, action_id: str) -> dict[str, Any]:
        status = await self._call(self.client.query_action(self._hrefs[action_id]))
        return {**status, "status": status["state"]}

    async def cancel_action(self, thing_id: str, action_id: str) -> dict[str, Any]:
        await self._call(self.client.cancel_action(self._hrefs[action_id]))
        return await self.query_action(thing_id, action_id)

    async def outcome(self, thing_id: str, action_id: str) -> dict[str, Any]:
        """The final ActionStatus (HTTP tells nobody: the status resource is polled)."""
        final: dict[str, Any] = {}

        async def ended() -> bool:
            final.update(await self.query_action(thing_id, action_id))
            return final["status"] in FINAL

        await until(ended)
        return final

    async def observe_property(self, thing_id: str, name: str) -> None:
        await self._stream(thing_id, self.client.observe_property(thing_id, name))

    async def subscribe_event(self, thing_id: str, name: str) -> None:
        await self._stream(thing_id, self.client.subscribe_event(thing_id, name))

    async def _stream(self, thing_id: str, stream) -> None:
        await self._call(stream.open())  # subscribed once the stream is open
        self._pump(stream, lambda e: Note(thing_id, e.event, e.data, event_id=e.id))

    async def observe_group(self, group: str) -> None:
        """The group's SSE stream (its property and event notifications)."""
        session = self.running.session(self.token)
        self._raw.append(session)
        response = await session.get(f"/groups/{group}/events")
        assert response.status == 200, response.status
        reader = SseReader(response)

        async def events():
            while True:
                yield await reader.next(timeout=60)

        self._pump(
            events(),
            lambda e: Note(
                e["data"]["thingID"], e["data"]["name"], e["data"].get("value"), event_id=e["id"]
            ),
        )

    async def observe_all_and_stall(self, thing_id: str):
        """A raw SSE stream on all the Thing's properties that reads nothing until
        ``cut_off`` (the client would take the error event and resume by itself)."""
        session = self.running.session(self.token)
        self._raw.append(session)
        response = await session.get(
            f"/things/{thing_id}/properties", headers={"Accept": "text/event-stream"}
        )
        assert response.status == 200, response.status
        return SseReader(response)

    async def cut_off(self, stalled) -> str:
        """What the binding tells a consumer that fell behind: SSE sends an ``error``
        event (503) and ends the stream."""
        event = await stalled.next(timeout=10)
        with contextlib.suppress(EOFError):
            await stalled.next(timeout=10)
            return f"{event['event']} {event['data'].get('status')} and more events"
        return f"{event['event']} {event['data']['status']}"

    async def close(self) -> None:
        await self._stop_pumps()
        await self.client.close()
        for session in self._raw:
            await session.close()


class WebSocketConsumer(_Consumer):
    binding = "websocket"

    def __init__(self, client_id: str, client: WsClient) -> None:
        super().__init__(client_id)
        self.client = client
        self._pump(client.notifications(), self._note)

    @classmethod
    async def connect(cls, running: RunningHub, client_id: str, token: str):
        url = running.url.replace("https://", "wss://", 1) + "/ws"
        client = WsClient(url, ca=running.ssl, token=token, reconnect=False)
        await client.connect()
        return cls(client_id, client)

    @staticmethod
    def _note(message: dict[str, Any]) -> Note | None:
        if message.get("messageType") != "notification":
            return None  # later responses to this client's requests
        return Note(message["thingID"], message["name"], message.get("value"), message)

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        return await self._call(self.client.read_thing(thing_id))

    async def read_property(self, thing_id: str, name: str) -> Any:
        return await self._call(self.client.read_property(thing_id, name))

    async def write_property(self, thing_id: str, name: str, value: Any) -> str:
        return (await self._call(self.client.write_property(thing_id, name, value)))["status"]

    async def invoke(self, thing_id: str, name: str, input: Any = ABSENT) -> tuple[str, str]:
        response = await self._call(self.client.invoke(thing_id, name, input))
        return response["actionID"], response["status"]

    async def service(self, thing_id: str, action: str, input: Any) -> Any:
        response = await self._call(self.client.request("invokeaction", thing_id, action, input))
        return response.get("output")

    async def query_action(self, thing_id: str, action_id: str) -> dict[str, Any]:
        return await self._call(self.client.query_action(thing_id, action_id))

    async def cancel_action(self, thing_id: str, action_id: str) -> dict[str, Any]:
        return await self._call(self.client.cancel_action(thing_id, action_id))

    async def outcome(self, thing_id: str, action_id: str) -> dict[str, Any]:
        await self.client.action_result(action_id)
        return await self.query_action(thing_id, action_id)

    async def observe_property(self, thing_id: str, name: str) -> None:
        await self._call(self.client.observe_property(thing_id, name))

    async def subscribe_event(self, thing_id: str, name: str) -> None:
        await self._call(self.client.subscribe_event(thing_id, name))

    async def observe_all_and_stall(self, thing_id: str):
        await self.observe_all(thing_id)

    async def observe_all(self, thing_id: str) -> None:
        await self._call(self.client.observe_property(thing_id, None))

    async def observe_group(self, group: str) -> None:
        """observeallproperties and subscribeallevents on the group's Thing id."""
        await self.observe_all(f"urn:wothub:group:{group}")
        await self._call(self.client.subscribe_event(f"urn:wothub:group:{group}", None))

    async def cut_off(self, stalled) -> str:
        """The hub closes the WebSocket with 1013 (docs/websocket.md)."""
        code = await self.client.wait_closed(10)
        return f"close {code} {self.client.close_reason}"

    async def close(self) -> None:
        await self._stop_pumps()
        await self.client.close()


class _BusConsumer(_Consumer):
    """A consumer whose requests are envelopes on a bus (MQTT, NATS): each subclass
    supplies ``_request(operation, thing_id, name, **fields)`` -> the response."""

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        return (await self._request("readthing", thing_id))["output"]

    async def read_property(self, thing_id: str, name: str) -> Any:
        return (await self._request("readproperty", thing_id, name)).get("output", ABSENT)

    async def write_property(self, thing_id: str, name: str, value: Any) -> str:
        return (await self._request("writeproperty", thing_id, name, input=value))["status"]

    async def invoke(self, thing_id: str, name: str, input: Any = ABSENT) -> tuple[str, str]:
        fields = {} if input is ABSENT else {"input": input}
        response = await self._request("invokeaction", thing_id, name, **fields)
        return response["actionID"], response["status"]

    async def service(self, thing_id: str, action: str, input: Any) -> Any:
        return (await self._request("invokeaction", thing_id, action, input=input)).get("output")

    async def query_action(self, thing_id: str, action_id: str) -> dict[str, Any]:
        return (await self._request("queryaction", thing_id, actionID=action_id))["output"]

    async def cancel_action(self, thing_id: str, action_id: str) -> dict[str, Any]:
        return (await self._request("cancelaction", thing_id, actionID=action_id))["output"]

    async def observe_group(self, group: str) -> None:
        """observeallproperties and subscribeallevents on the group's Thing id; the
        notifications come on the client's responses topic."""
        self._pump_notifications(self._responses())
        for operation in ("observeallproperties", "subscribeallevents"):
            await self._request(operation, f"urn:wothub:group:{group}")

    async def observe_all_and_stall(self, thing_id: str):
        """The twin topics are nats-server's to pace (its slow-consumer policy, for MQTT
        and NATS alike); what the hub queues per client are the notifications of observe
        requests, answered on ``wot/client/{id}/resp`` (``wot.client.{id}.resp``)."""
        await self._request("observeallproperties", thing_id)
        self.connections = self.running.hub.router.open_connections().get("nats", 0)

    async def cut_off(self, stalled) -> str:
        """Nothing on the wire: the hub drops the client's connection and subscriptions
        (the MQTT or NATS connection itself is the server's)."""
        router = self.running.hub.router
        await until(lambda: router.open_connections().get("nats", 0) < self.connections)
        return "subscriptions dropped"


class MqttConsumer(_BusConsumer):
    """clients/mqtt.py. ``MqttClient.request`` raises MqttError with the detail only,
    so requests go through its ``_ask`` to see the problem's status; later responses
    (an action's progress) are taken from its ``_responses`` queue; a disconnect is
    seen through paho's ``on_disconnect`` (the client reconnects by itself)."""

    binding = "mqtt"

    def __init__(self, running: RunningHub, client_id: str, client: MqttClient) -> None:
        super().__init__(client_id)
        self.running = running
        self.client = client
        self.disconnects = 0
        client._paho.on_disconnect = self._disconnected

    def _disconnected(self, *args: Any) -> None:
        self.disconnects += 1

    @classmethod
    async def connect(cls, running: RunningHub, client_id: str, role: str):
        return cls(running, client_id, await _mqtt(running, client_id, role))

    async def _request(self, operation: str, thing_id: str, name: str | None = None, **fields):
        message = {"messageType": "request", "operation": operation, "thingID": thing_id}
        if name is not None:
            message["name"] = name
        message.update(fields)
        response = await self.client._ask(topics.client_requests(self.client_id), message)
        if _problem(response):
            raise Refused(response["error"].get("status"), response["error"])
        return response

    def _responses(self) -> asyncio.Queue[dict[str, Any]]:
        return self.client._responses

    async def outcome(self, thing_id: str, action_id: str) -> dict[str, Any]:
        await _final_response(self.client._responses, action_id)
        return await self.query_action(thing_id, action_id)

    async def observe_property(self, thing_id: str, name: str) -> None:
        await self._observe(thing_id, name, event=False)

    async def subscribe_event(self, thing_id: str, name: str) -> None:
        await self._observe(thing_id, name, event=True)

    async def _observe(self, thing_id: str, name: str | None, *, event: bool) -> None:
        observe = self.client.subscribe_event if event else self.client.observe_property
        family = topics.EVENT if event else topics.PROP
        level = "+" if name is None else topics.encode(name)
        topic_filter = f"wot/twin/{topics.encode(thing_id)}/{family}/{level}"
        self._pump(observe(thing_id, name), self._note)
        # The broker has the subscription once its SUBACK came (the twin topics are
        # nats-server's: the hub's router does not see them).
        client = self.client
        await until(lambda: topic_filter in client._subscriptions and not client._subacks)

    @staticmethod
    def _note(item: tuple[str, Any]) -> Note:
        topic, value = item
        _, _, thing, _, name = topic.split("/")  # wot/twin/{thing}/prop|event/{name}
        return Note(topics.decode(thing), topics.decode(name), value)

    async def close(self) -> None:
        await self._stop_pumps()
        await self.client.close()


class NatsConsumerSide(_BusConsumer):
    """clients/nats.py: requests with reply inboxes; observation on the twin subjects
    of the TD's forms (``wot.twin...``)."""

    binding = "nats"

    def __init__(self, running: RunningHub, client_id: str, consumer: NatsConsumer) -> None:
        super().__init__(client_id)
        self.running = running
        self.consumer = consumer

    @classmethod
    async def connect(cls, running: RunningHub, client_id: str, role: str):
        consumer = await NatsConsumer.connect(
            running.hub.nats.url,
            client_id,
            token=token_for(running, client_id, "consumer", role),
            ca_pem=running.hub.ca.ca_cert_pem,
        )
        return cls(running, client_id, consumer)

    async def _request(self, operation: str, thing_id: str, name: str | None = None, **fields):
        """The response; Refused for an error response, and for a request the server
        refused to take (a subject the client may not publish to: docs/nats.md,
        "Permissions"), which the client raises as 403."""
        return await self._call(self.consumer.request(operation, thing_id, name, **fields))

    async def service(self, thing_id: str, action: str, input: Any) -> Any:
        """On ``wot.client.{c}.req``, the request subject of every role (a viewer has no
        ``.req.invokeaction``; the router checks what it may invoke: docs/nats.md)."""
        message = {"messageType": "request", "operation": "invokeaction"}
        message |= {"thingID": thing_id, "name": action, "input": input}
        subject = f"{subjects.PREFIX}.client.{subjects.encode(self.client_id)}.req"
        response = await self._call(self.consumer._request(subject, message, 5.0))
        if _problem(response):
            raise Refused(response["error"].get("status"), response["error"])
        return response.get("output")

    def _responses(self) -> asyncio.Queue[dict[str, Any]]:
        return self.consumer.responses

    async def outcome(self, thing_id: str, action_id: str) -> dict[str, Any]:
        await _final_response(self.consumer.responses, action_id)
        return await self.query_action(thing_id, action_id)

    async def observe_property(self, thing_id: str, name: str) -> None:
        await self._observe(thing_id, "prop", name)

    async def subscribe_event(self, thing_id: str, name: str) -> None:
        await self._observe(thing_id, "event", name)

    async def _observe(self, thing_id: str, kind: str, name: str) -> None:
        def deliver(message: dict[str, Any]) -> None:
            self.notes.put_nowait(
                Note(message["thingID"], message["name"], message.get("value"), message)
            )

        await self.consumer.observe(thing_id, deliver, kind=kind, name=name)
        await self.consumer.nc.flush()  # the server has the subscription

    async def close(self) -> None:
        await self.consumer.close()


# -- helpers -----------------------------------------------------------------------------


def token_for(running: RunningHub, client_id: str, kind: str, role: str) -> str:
    """A token for the client, added if new. Without a password: hashing one (argon2id)
    costs more than the rest of a test, and the suite logs in with tokens."""
    auth = running.hub.auth
    if auth.accounts.get(client_id) is None:
        auth.add_client(client_id, kind, role)
    return auth.new_token(client_id)["token"]


async def _mqtt(running: RunningHub, client_id: str, role: str) -> MqttClient:
    kind = "agent" if role == "agent" else "consumer"
    client = MqttClient(
        f"mqtts://127.0.0.1:{running.hub.mqtt.port}",
        client_id,
        token=token_for(running, client_id, kind, role),
        ca_pem=running.hub.ca.ca_cert_pem,
        agent=kind == "agent",
    )
    try:
        await client.connect()
    except MqttError as error:
        raise Refused(None, {"detail": str(error)}) from None
    return client


async def _final_response(responses: asyncio.Queue, action_id: str) -> dict[str, Any]:
    """The last response to one's own request (the buses send each change of state)."""
    async with asyncio.timeout(10):
        while True:
            response = await responses.get()
            if response.get("actionID") == action_id and response.get("status") in FINAL:
                return response


async def _mqtt_subscribed(running: RunningHub, client_id: str) -> None:
    """An MQTT agent is online once its subscription to its request topic is in."""
    router = running.hub.router
    await until(lambda: bool(router.connections_of(client_id)))
