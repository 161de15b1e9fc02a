"""Reading the hub's /metrics in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.running import PASSWORD


async def scrape(hub) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value; read as an administrator."""
    auth = hub.hub.auth
    if auth.accounts.get("scraper") is None:
        auth.add_client("scraper", "consumer", "admin", password=PASSWORD)
    token = auth.new_token("scraper")["token"]
    async with hub.session(token) as scraper, scraper.get("/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
