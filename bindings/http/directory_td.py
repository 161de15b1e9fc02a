"""The directory's own TD (WoT Discovery 7.3.2.1), derived from the normative Thing
Model the W3C publishes (digitwin/schemas/discovery-directory.tm.jsonld): fill in the
base URL, drop the model-only terms and the optional affordances the hub does not
offer (XPath and SPARQL search), declare the hub's security."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from vocabulary.things import DIRECTORY_THING

_UNSUPPORTED = ("searchXPath", "searchSPARQL")


def directory_td(base_url: str, security: dict[str, dict[str, Any]]) -> dict[str, Any]:
    raw = resources.files("digitwin").joinpath("schemas/discovery-directory.tm.jsonld")
    text = raw.read_text(encoding="utf-8").replace("{{DIRECTORY_BASE_URL}}", base_url)
    td = json.loads(text)
    td["@type"] = [t for t in td["@type"] if t != "tm:ThingModel"]
    td.pop("tm:optional", None)
    td["@context"] = ["https://www.w3.org/2019/wot/td/v1", *td["@context"]]
    td["id"] = DIRECTORY_THING
    td["title"] = "wothub Thing Description Directory"
    td["version"] = {"instance": "1.0.0"}
    for name in _UNSUPPORTED:
        td["actions"].pop(name, None)
    # The model leaves out the content type of empty responses, which the TD 1.1 schema
    # requires; application/x-empty is what the spec's own derived TD uses.
    for affordance in (*td["properties"].values(), *td["actions"].values()):
        for form in affordance.get("forms", []):
            if "response" in form:
                form["response"].setdefault("contentType", "application/x-empty")
    td["securityDefinitions"] = {"nosec_sc": {"scheme": "nosec"}, **security}
    td["security"] = list(security) or ["nosec_sc"]
    return td
