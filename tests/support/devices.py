"""A lamp connected as a real WebSocket agent (``running.device``), for the dashboard's
tests: its TD, its reports and its answers."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from vocabulary.envelope import new_id

LAMP = "urn:dev:ops:lamp/1"
AGENT = "lamp-agent"


def lamp_td(thing_id=LAMP, title="Desk lamp"):
    href = "https://lamp.local"
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "@type": "Light",
        "id": thing_id,
        "title": title,
        "description": "A lamp on the desk",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "on": {"type": "boolean", "forms": [{"href": f"{href}/on"}]},
            "temperature": {
                "type": "number",
                "unit": "°C",
                "readOnly": True,
                "observable": True,
                "forms": [{"href": f"{href}/t"}],
            },
            "brightness": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "unit": "%",
                "forms": [{"href": f"{href}/b"}],
            },
        },
        "actions": {
            "fade": {
                "title": "Fade",
                "input": {
                    "type": "object",
                    "properties": {
                        "to": {"type": "integer", "minimum": 0, "maximum": 100},
                        "seconds": {"type": "number", "minimum": 0},
                    },
                    "required": ["to"],
                },
                "synchronous": False,
                "forms": [{"href": f"{href}/fade"}],
            }
        },
        "events": {"overheated": {"data": {"type": "number"}, "forms": [{"href": f"{href}/o"}]}},
    }


async def register(running, agent_id=AGENT, td=None):
    return await register_all(running, agent_id, [td or lamp_td()])


async def register_all(running, agent_id, tds):
    """Connect the agent and register its TDs; returns its connection."""
    conn = await running.device(agent_id)
    for td in tds:
        wire = {
            "messageType": "request",
            "operation": "updatething",
            "correlationID": new_id(),
            "input": td,
        }
        response = await conn.send(wire)
        assert response.error is None, response.error
    return conn


async def report(running, conn, name, value, thing=LAMP):
    wire = {
        "messageType": "notification",
        "operation": "observeproperty",
        "thingID": thing,
        "name": name,
        "value": value,
    }
    assert await conn.send(wire) is None


async def emit(running, conn, name, value, thing=LAMP):
    wire = {
        "messageType": "notification",
        "operation": "subscribeevent",
        "thingID": thing,
        "name": name,
        "value": value,
    }
    assert await conn.send(wire) is None


async def next_request(conn, timeout=10.0):
    async with asyncio.timeout(timeout):
        message = await conn.next_request()
    return message


async def answer(running, conn, delivered, **fields):
    wire = {
        "messageType": "response",
        "operation": delivered.operation,
        "thingID": delivered.thing_id,
        "name": delivered.name,
        "correlationID": delivered.correlation_id,
        "actionID": delivered.action_id,
        **fields,
    }
    assert await conn.send(wire) is None


def thing_hash(thing_id=LAMP):
    return "/#/thing/" + quote(thing_id, safe="")
