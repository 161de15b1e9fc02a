"""Thing Descriptions the tests register. One lamp for every test that needs a device:
two writable properties, a read-only one, an action without input, one with input and
output, and an event."""

LAMP = "urn:dev:ops:32473-lamp-1"


def lamp_td(thing_id: str = LAMP, title: str = "Lamp") -> dict:
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": thing_id,
        "title": title,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "on": {"type": "boolean", "forms": [{"href": "https://lamp.local/on"}]},
            "brightness": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "forms": [{"href": "https://lamp.local/brightness"}],
            },
            "model": {
                "type": "string",
                "readOnly": True,
                "forms": [{"href": "https://lamp.local/model"}],
            },
        },
        "actions": {
            "toggle": {"forms": [{"href": "https://lamp.local/toggle"}]},
            "fade": {
                "input": {
                    "type": "object",
                    "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}},
                    "required": ["level"],
                },
                "output": {"type": "integer"},
                "forms": [{"href": "https://lamp.local/fade"}],
            },
        },
        "events": {
            "overheated": {"data": {"type": "number"}, "forms": [{"href": "https://lamp.local/oh"}]}
        },
    }
