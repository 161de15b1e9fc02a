"""Python client over NATS (nats-py): an agent and a consumer of the hub.

    agent = await NatsAgent.connect(url, "lamp-agent", password="...", ca_pem=ca)
    agent.on_request = handle            # async def handle(message: dict) -> output
    await agent.update_thing(td)
    await agent.report_property("urn:dev:lamp-1", "on", True)

    consumer = await NatsConsumer.connect(url, "otto", token=token, ca_pem=ca)
    await consumer.observe_property("urn:dev:lamp-1", callback=callback)  # every property
    value = await consumer.read_property("urn:dev:lamp-1", "on")

Credentials: ``password`` (with the client id), ``token``, or ``certificate`` =
(cert path, key path) on the hub's ``wss://`` mutual-TLS listener; or ``session``, the
client's login shared with its other connections (clients/session.py): a reconnect sends
its current token. When the hub refuses the credentials at a reconnect the session
renews the token (refresh, else a new login); when it cannot, the session has ended, the
connection is closed and requests raise its ``Unauthorized``. Every client uses the
reply inboxes ``_INBOX.{clientID}`` its permissions allow.

Errors are those of clients/errors.py: refused credentials raise ``Unauthorized``; a
hub that cannot be reached ``HubUnreachable``; an error response ``HubError`` (its
problem in ``problem``); a closed connection ``Disconnected``; no response in time
``HubTimeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import orjson
from nats.aio.client import Client as NatsConnection
from nats.aio.msg import Msg

from vocabulary import twin_wire
from vocabulary.channels import NATS as subjects
from vocabulary.channels import AddressError
from vocabulary.envelope import ABSENT, new_id
from vocabulary.nats_close import close_connection
from vocabulary.nats_confirm import confirmed

from .errors import (
    ClientError,
    Disconnected,
    HubError,
    HubTimeout,
    HubUnreachable,
    Unauthorized,
    hub_error,
    refused,
)
from .results import FinalResponses
from .session import Session

log = logging.getLogger("wothub.nats.client")
# nats-server's error for a publish the client's permissions do not allow.
_PUBLISH_REFUSED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)

__all__ = ["HubError", "NatsAgent", "NatsClient", "NatsConsumer"]  # HubError: old import


class NatsClient:
    def __init__(self, nc: NatsConnection, client_id: str, session: Session | None = None) -> None:
        self.nc = nc
        self.client_id = client_id
        self.session = session or Session(client_id)
        self.session.when_ended(lambda: asyncio.ensure_future(self.close()))
        self.sent: str | None = None  # the credential of the last (re)connect
        self._renewing: asyncio.Task[None] | None = None
        self.errors: list[str] = []  # what the server reported (permission violations...)
        # Requests waiting for an answer, by subject: nats-server drops a publish the
        # client may not make and says so only in an error, which fails them (403).
        self._asking: dict[str, set[asyncio.Future[None]]] = {}

    def _server_error(self, text: str) -> None:
        self.errors.append(text)
        if "authorization violation" in text.lower() and self._renewing is None:
            self._renewing = asyncio.ensure_future(self._renew(self.sent))
        match = _PUBLISH_REFUSED.search(text)
        if match is None:
            return
        for subject, waiting in self._asking.items():
            if _refused_subject(match.group(1), subject):
                for refusal in waiting:
                    if not refusal.done():
                        refusal.set_result(None)

    async def _renew(self, stale: str | None) -> None:
        """The hub refused ``stale`` at a reconnect: the session renews it (nats-py's
        next attempt sends the new token), or it has ended and the connection closes."""
        try:
            await self.session.renew(stale)
        except Unauthorized:
            await self.close()
        except ClientError as exc:  # HTTPS is away too: the next refusal asks again
            log.info("renewing the credentials of %s failed: %s", self.client_id, exc)
        finally:
            self._renewing = None

    @classmethod
    async def connect(
        cls,
        url: str,
        client_id: str,
        *,
        password: str | None = None,
        token: str | None = None,
        certificate: tuple[str, str] | None = None,
        ca_pem: bytes | str | None = None,
        tls: ssl.SSLContext | None = None,
        session: Session | None = None,
        **options: Any,
    ):
        if tls is None:
            tls = ssl.create_default_context(
                cadata=ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem
            )
            if certificate is not None:
                tls.load_cert_chain(*certificate)
        holder: list[NatsClient] = []
        first_errors: list[Exception] = []  # why the first connection failed

        async def error_cb(exc: Exception) -> None:
            if holder:
                holder[0]._server_error(str(exc))
            else:
                first_errors.append(exc)
            log.debug("%s: %s", client_id, exc)

        if session is None:
            session = Session(client_id, password=password, token=token)
        credentials: dict[str, Any] = {}
        if session.password is not None:
            credentials = {"user": client_id, "password": session.password}
        elif session.token is not None:

            def current_token() -> str:  # nats-py asks at every (re)connect
                if holder:
                    holder[0].sent = session.token
                return session.token or ""

            credentials = {"token": current_token}
        options.setdefault("reconnect_time_wait", 0.2)
        # The first connection fails at once, as the other clients' do: nats-py would
        # retry refused credentials, and a server that is not there, for ever. Once
        # connected, a lost connection is reconnected as asked (nats-py reads these two
        # options when the connection drops).
        reconnecting = {
            "allow_reconnect": options.pop("allow_reconnect", True),
            "max_reconnect_attempts": options.pop("max_reconnect_attempts", -1),
        }
        user_reconnected = options.pop("reconnected_cb", None)

        async def reconnected_cb() -> None:
            if holder:
                await holder[0]._reconnected()
            if user_reconnected is not None:
                await user_reconnected()

        try:
            nc = await nats.connect(
                url,
                name=client_id,
                tls=tls,
                inbox_prefix=subjects.inbox_prefix(client_id),
                error_cb=error_cb,
                reconnected_cb=reconnected_cb,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                **credentials,
                **options,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            cause = first_errors[-1] if first_errors else exc
            raise _connect_error(url, cause) from exc
        nc.options.update(reconnecting)
        client = cls(nc, client_id, session)
        client.sent = session.secret()
        holder.append(client)
        try:
            await client._setup()
        except BaseException:
            await client.close()
            raise
        return client

    async def _setup(self) -> None:
        pass

    async def _reconnected(self) -> None:
        pass

    async def flush(self) -> None:
        """Returns once the server has taken everything this client sent before: its
        subscriptions are active (``confirmed``, vocabulary/nats_confirm.py)."""
        await confirmed(self.nc)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await close_connection(self.nc)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, subject: str, message: dict[str, Any], timeout: float) -> dict:
        self.session.check()
        message.setdefault("correlationID", new_id())
        operation = message.get("operation")
        refusal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asking.setdefault(subject, set()).add(refusal)
        asking = asyncio.ensure_future(
            self.nc.request(subject, orjson.dumps(message), timeout=timeout)
        )
        try:
            await asyncio.wait({asking, refusal}, return_when=asyncio.FIRST_COMPLETED)
            if not asking.done():
                asking.cancel()
                raise refused(403, f"the server refused {operation}: may not publish {subject}")
            reply = asking.result()
        except nats.errors.TimeoutError:
            raise HubTimeout(f"no response to {operation} in {timeout} s") from None
        except nats.errors.NoRespondersError:
            raise HubUnreachable(subject, "the hub does not listen (no responders)") from None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
            self.session.check()  # closed because the session ended: say so
            raise Disconnected(f"{operation}: {exc}") from exc
        finally:
            asking.cancel()
            waiting = self._asking.get(subject)
            if waiting is not None:
                waiting.discard(refusal)
                if not waiting:
                    del self._asking[subject]
        response = orjson.loads(reply.data)
        if response.get("error"):
            raise hub_error(response["error"], response=response)
        return response


class NatsAgent(NatsClient):
    """A device: registers TDs, reports values and events, answers requests.

    ``on_request(message)`` (sync or async) gets each request envelope; what it returns
    becomes the ``output`` of a ``completed`` response, an exception a ``failed`` one.
    Without a handler, requests pile up in ``requests``."""

    on_request: Callable[[dict[str, Any]], Any] | None = None

    async def _setup(self) -> None:
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await self.nc.subscribe(subjects.agent(self.client_id, subjects.REQ), cb=self._on_request)
        await self.hello()

    async def _reconnected(self) -> None:
        # The hub forgets who is online when NATS restarts; say hello again (in the
        # background: the hub's own connection may come back after this one).
        self._hello_task = asyncio.create_task(self.hello(attempts=60))

    async def hello(self, *, attempts: int = 10, timeout: float = 1.0) -> None:
        """Tell the hub this agent is online and subscribed: queued requests follow.
        A request, so it is repeated until the hub has answered (``HubUnreachable``
        when it never does)."""
        subject = subjects.agent(self.client_id, subjects.HELLO)
        for attempt in range(attempts):
            try:
                await self.nc.request(subject, b"", timeout=timeout)
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                if attempt == attempts - 1:
                    raise HubUnreachable(subject, f"no answer to hello: {exc}") from exc
                await asyncio.sleep(0.25)  # pacing the retries, not waiting for a condition

    async def update_thing(self, td: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Register or replace a TD; {"id", "created"}."""
        thing = td.get("id")
        subject = subjects.agent(self.client_id, subjects.TD, *([thing] if thing else []))
        message = {"messageType": "request", "operation": "updatething", "input": td}
        return (await self._request(subject, message, timeout))["output"]

    register = update_thing  # the old name, kept for one release

    async def delete_thing(self, thing_id: str, timeout: float = 5.0) -> None:
        subject = subjects.agent(self.client_id, subjects.TD, thing_id)
        message = {"messageType": "request", "operation": "deletething", "thingID": thing_id}
        await self._request(subject, message, timeout)

    async def report_property(self, thing_id: str, name: str, value: Any) -> None:
        await self.nc.publish(
            subjects.agent(self.client_id, subjects.PROP, thing_id, name),
            orjson.dumps(
                {
                    "messageType": "notification",
                    "operation": "observeproperty",
                    "thingID": thing_id,
                    "name": name,
                    "value": value,
                }
            ),
        )

    async def report_properties(self, thing_id: str, values: dict[str, Any]) -> None:
        await self.nc.publish(
            subjects.agent(self.client_id, subjects.PROP, thing_id),
            orjson.dumps(
                {
                    "messageType": "notification",
                    "operation": "observeallproperties",
                    "thingID": thing_id,
                    "value": values,
                }
            ),
        )

    async def report_event(self, thing_id: str, name: str, value: Any = None) -> None:
        message = {
            "messageType": "notification",
            "operation": "subscribeevent",
            "thingID": thing_id,
            "name": name,
        }
        if value is not None:
            message["value"] = value
        await self.nc.publish(
            subjects.agent(self.client_id, subjects.EVENT, thing_id, name), orjson.dumps(message)
        )

    async def answer(
        self,
        request: dict[str, Any],
        *,
        status: str = "completed",
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        message = {
            "messageType": "response",
            "operation": request["operation"],
            "thingID": request.get("thingID"),
            "correlationID": request.get("correlationID") or request.get("actionID"),
            "actionID": request.get("actionID"),
            "status": status,
        }
        if request.get("name") is not None:
            message["name"] = request["name"]
        if output is not None:
            message["output"] = output
        if error is not None:
            message["error"] = error
        await self.nc.publish(
            subjects.agent(self.client_id, subjects.RESP),
            orjson.dumps({k: v for k, v in message.items() if v is not None}),
        )

    async def _on_request(self, msg: Msg) -> None:
        try:
            message = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return
        if message.get("messageType") != "request":
            log.warning("the hub refused a message: %s", message.get("error"))
            return
        if message.get("operation") == "cancelaction" or self.on_request is None:
            await self.requests.put(message)
            return
        try:
            output = self.on_request(message)
            if inspect.isawaitable(output):
                output = await output
        except Exception as exc:
            await self.answer(
                message,
                status="failed",
                error={"type": "about:blank", "title": "Failed", "status": 500, "detail": str(exc)},
            )
        else:
            await self.answer(message, output=output)


class NatsConsumer(NatsClient):
    """A user application: requests over request-reply, twin notifications by subject."""

    async def _setup(self) -> None:
        self.responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._results = FinalResponses()  # the last response of each action or write
        await self.nc.subscribe(subjects.client_responses(self.client_id), cb=self._on_response)

    async def _on_response(self, msg: Msg) -> None:
        with contextlib.suppress(orjson.JSONDecodeError):
            response = orjson.loads(msg.data)
            self._results.record(response)
            await self.responses.put(response)

    async def action_result(self, action_id: str, *, timeout: float = 5.0) -> dict[str, Any]:
        """The last response (completed, failed, expired or cancelled) of an action or
        write this client asked for."""
        try:
            return await self._results.wait(action_id, timeout)
        except TimeoutError:
            raise HubTimeout(f"action {action_id} did not end in {timeout} s") from None

    async def request(
        self,
        operation: str,
        thing_id: str | None = None,
        name: str | None = None,
        *,
        timeout: float = 5.0,
        **fields: Any,
    ) -> dict[str, Any]:
        """One request; the response envelope (``HubError`` when it failed,
        ``HubTimeout`` when none came in ``timeout``)."""
        message: dict[str, Any] = {"messageType": "request", "operation": operation, **fields}
        if thing_id is not None:
            message["thingID"] = thing_id
        if name is not None:
            message["name"] = name
        return await self._request(
            subjects.client_request(self.client_id, operation), message, timeout
        )

    async def read_property(self, thing_id: str, name: str) -> Any:
        return (await self.request("readproperty", thing_id, name)).get("output")

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        return (await self.request("readthing", thing_id))["output"]

    async def write_property(self, thing_id: str, name: str, value: Any) -> dict[str, Any]:
        return await self.request("writeproperty", thing_id, name, input=value)

    async def invoke_action(
        self, thing_id: str, name: str, input: Any = ABSENT, **fields: Any
    ) -> dict[str, Any]:
        if input is not ABSENT:
            fields["input"] = input
        return await self.request("invokeaction", thing_id, name, **fields)

    async def observe_property(
        self,
        thing_id: str | None,
        name: str | None = None,
        *,
        callback: Callable[[dict[str, Any]], Awaitable[None] | None],
    ):
        """``callback(notification)`` each time the property changes (every property
        with ``name=None``; every Thing's too without ``thing_id``)."""
        return await self.observe(thing_id, callback, kind="prop", name=name)

    async def subscribe_event(
        self,
        thing_id: str | None,
        name: str | None = None,
        *,
        callback: Callable[[dict[str, Any]], Awaitable[None] | None],
    ):
        """``callback(notification)`` each time the device reports the event (every
        event with ``name=None``; every Thing's too without ``thing_id``)."""
        return await self.observe(thing_id, callback, kind="event", name=name)

    async def observe(
        self,
        thing_id: str | None,
        callback: Callable[[dict[str, Any]], Awaitable[None] | None],
        *,
        kind: str = "prop",
        name: str | None = None,
    ):
        """Subscribe to twin notifications (``kind`` prop, event, td, presence or state:
        the changes of the state document, one property's entry each) of one Thing (or
        every Thing with None); returns the nats-py subscription. The general form of
        ``observe_property`` and ``subscribe_event``."""
        thing = subjects.encode(thing_id) if thing_id else "*"
        subject = f"{subjects.PREFIX}.twin.{thing}.{kind}"
        if kind in ("prop", "event", "state"):
            subject += "." + (subjects.encode(name) if name else "*")

        async def deliver(msg: Msg) -> None:
            try:  # the raw value and headers (vocabulary/twin_wire.py): the envelope again
                message = twin_wire.rebuild(subjects.parse(msg.subject), msg.data, msg.headers)
            except (AddressError, ValueError) as exc:
                log.warning("dropped a notification on %s: %s", msg.subject, exc)
                return
            result = callback(message)
            if inspect.isawaitable(result):
                await result

        return await self.nc.subscribe(subject, cb=deliver)


def _refused_subject(refused: str, asked: str) -> bool:
    """Whether the server's refusal of ``refused`` is of a publish to ``asked``: the same
    subject, or (with workers) as the server maps it, with the client's partition after
    its id (``wot.client.{c}.{p}.req.{op}``, docs/nats.md)."""
    if refused == asked:
        return True
    tokens, asked_tokens = refused.split("."), asked.split(".")
    return len(tokens) == len(asked_tokens) + 1 and tokens[:3] + tokens[4:] == asked_tokens


def _connect_error(url: str, exc: BaseException) -> ClientError:
    """What a failed ``nats.connect`` means: the hub's auth callout refused the
    credentials, or the server could not be reached."""
    if "authorization violation" in str(exc).lower():
        return refused(401, f"{url} refused the credentials")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return HubUnreachable(url, str(exc), tls=True)
    return HubUnreachable(url, str(exc) or type(exc).__name__)
