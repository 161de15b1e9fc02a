"""History charts on a Thing's page in headless Chromium against a real hub: a real
agent reports values (some with past timestamps, as a device that buffered them would),
the page draws them from the history API, appends live ones from its SSE stream, asks
for another range when a preset is clicked, exports what it shows as CSV, and draws
booleans and enums as steps between their states (docs/history.md, "Plots").

Each test keeps a screenshot: under its tmp path, copied to WOTHUB_TEST_ARTIFACTS (or
tests/output/screenshots/, git-ignored), and prints where."""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.devices import register
from vocabulary import clock

from .conftest import SCREENSHOTS, desk_lamp_td, thing_hash

pytestmark = pytest.mark.timeout(90)

MINUTE = 60.0
TEMPERATURE = '[data-property="temperature"] .history-chart'
OVERHEATED = '[data-event-chart="overheated"] .history-chart'
ON = '[data-property="on"] .history-chart[data-kind="state"]'
MODE = '[data-property="mode"] .history-chart[data-kind="state"]'
# A window's numbers the chart shows: rows (buckets, then live values), and what uPlot holds.
SHOWN = """el => ({
    rows: el.chart.rows,
    x: Array.from(el.chart.plot.data[0]),
    y: Array.from(el.chart.plot.data[1]),
    canvas: [el.querySelector("canvas").width, el.querySelector("canvas").height],
})"""


async def notify(device, operation: str, name: str, value, ago: float | None = None) -> None:
    """A property value or an event, as the device reports it; ``ago`` seconds in the
    past (the message's timestamp), or now."""
    wire = {
        "messageType": "notification",
        "operation": operation,
        "thingID": device.things[0],
        "name": name,
        "value": value,
    }
    if ago is not None:
        wire["timestamp"] = clock.rfc3339(time.time() - ago)
    error = await device.send(wire)
    assert error is None, error.error


@pytest.fixture
def keep_screenshot(tmp_path, request):
    """``await keep_screenshot(ui, label)``: a full-page screenshot in tmp_path, kept
    too where a person finds it after the run (the path is printed)."""
    kept_in = Path(os.environ.get("WOTHUB_TEST_ARTIFACTS") or SCREENSHOTS)
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    async def keep(ui, label: str) -> Path:
        shot = tmp_path / f"{ui.name}-{label}.png"
        await ui.page.screenshot(path=str(shot), full_page=True)
        kept_in.mkdir(parents=True, exist_ok=True)
        kept = Path(shutil.copy(shot, kept_in / shot.name))
        if reporter is not None and capture is not None:  # shown even though output is captured
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"screenshot: {kept}")
        return kept

    return keep


async def open_thing(running, open_dashboard, client_id: str):
    ui = await open_dashboard()
    asked: list[dict] = []  # the history queries the page made, in order

    def note(request) -> None:
        url = urlsplit(request.url)
        if url.path.endswith("/history"):
            asked.append({"path": url.path, **{k: v[0] for k, v in parse_qs(url.query).items()}})

    ui.page.on("request", note)
    await ui.login(client_id)
    await ui.page.goto(running.url + thing_hash())
    await ui.page.wait_for_selector("#thing-title:has-text('Desk lamp')")
    await ui.page.wait_for_selector("#live-state.on")
    return ui, asked


def starts_about(query: dict, seconds_ago: float) -> bool:
    """The query's ``from`` is ``seconds_ago`` before now (within a minute)."""
    return abs(time.time() - seconds_ago - clock.parse_rfc3339(query["from"])) < MINUTE


async def test_a_chart_draws_the_history_appends_live_values_and_exports_csv(
    running, open_dashboard, keep_screenshot
):
    running.add_client("vera", "consumer", "viewer")  # reading the Thing is enough
    conn = await register(running, td=desk_lamp_td())
    past = {50: 20.0, 40: 21.5, 30: 23.0, 20: 22.0, 10: 21.25}  # minutes ago: °C
    for minutes, value in past.items():
        await notify(conn, "observeproperty", "temperature", value, ago=minutes * MINUTE)
    await notify(conn, "observeproperty", "temperature", 18.0, ago=3 * 60 * MINUTE)  # a day
    await notify(conn, "observeproperty", "temperature", 15.5, ago=3 * 1440 * MINUTE)  # a week
    for minutes, value in {30: 80.5, 5: 91.0}.items():
        await notify(conn, "subscribeevent", "overheated", value, ago=minutes * MINUTE)
    ui, asked = await open_thing(running, open_dashboard, "vera")

    # the last hour, downsampled into 12 s buckets: one value in each
    chart = ui.page.locator(TEMPERATURE)
    await ui.page.locator(f'{TEMPERATURE}[data-points="5"]').wait_for()
    shown = await chart.evaluate(SHOWN)
    assert shown["y"] == list(past.values())
    assert [row["count"] for row in shown["rows"]] == [1] * 5
    assert shown["x"] == sorted(shown["x"])
    assert shown["canvas"][0] > 200 and shown["canvas"][1] > 100  # drawn, card-wide
    (first,) = [q for q in asked if "/properties/temperature/" in q["path"]]
    assert (first["step"], first["order"]) == ("12s", "oldest") and starts_about(first, 3600)
    assert await chart.locator("button[data-range=hour]").get_attribute("aria-pressed") == "true"
    events = ui.page.locator(OVERHEATED)
    await ui.page.locator(f'{OVERHEATED}[data-points="2"]').wait_for()
    assert (await events.evaluate(SHOWN))["y"] == [80.5, 91.0]

    # live: a new value is appended, and so is an event's
    await notify(conn, "observeproperty", "temperature", 24.5)
    await ui.page.locator(f'{TEMPERATURE}[data-points="6"]').wait_for()
    shown = await chart.evaluate(SHOWN)
    assert shown["y"][-1] == 24.5 and shown["x"] == sorted(shown["x"])
    await notify(conn, "subscribeevent", "overheated", 95.0)
    await ui.page.locator(f'{OVERHEATED}[data-points="3"]').wait_for()
    assert (await events.evaluate(SHOWN))["y"][-1] == 95.0
    await keep_screenshot(ui, "hour")

    # the CSV of what is shown: a row per bucket or live value
    async with ui.page.expect_download() as info:
        await chart.locator("button[data-csv]").click()
    download = await info.value
    assert download.suggested_filename == "Desk-lamp-temperature-hour.csv"
    with open(await download.path(), newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["last"]) for row in rows] == [*past.values(), 24.5]
    assert [float(row["mean"]) for row in rows] == [*past.values(), 24.5]
    assert all(clock.parse_rfc3339(row["time"]) for row in rows)

    # the presets ask for another range, with a step that keeps it to a few hundred points
    await chart.locator("button[data-range=day]").click()
    await ui.page.locator(
        f'{TEMPERATURE}[data-points="7"]'
    ).wait_for()  # 5 m buckets: one value each
    day = asked[-1]
    assert day["step"] == "5m" and starts_about(day, 86_400)
    assert (await chart.evaluate(SHOWN))["y"] == [18.0, *past.values(), 24.5]
    await chart.locator("button[data-range=week]").click()
    await ui.page.wait_for_function(
        "el => el.chart.range === 'week' && !el.chart.loading", arg=await chart.element_handle()
    )
    week = asked[-1]
    assert week["step"] == "30m" and starts_about(week, 7 * 86_400)
    shown = await chart.evaluate(SHOWN)  # 30 m buckets: some hold more than one value
    assert sum(row["count"] for row in shown["rows"]) == 8
    assert shown["rows"][0]["last"] == 15.5
    assert await chart.locator("button[data-range=week]").get_attribute("aria-pressed") == "true"
    await keep_screenshot(ui, "week")
    assert ui.errors == []
    await conn.close()


# Is the stroke drawn at (x, y) of the plot's canvas (a few pixels either way, as lines
# are anti-aliased)? And is the band filled there? Positions from the uPlot instance.
PIXEL = """([el, x, y]) => {
    const plot = el.chart.plot;
    const left = plot.valToPos(x, "x", true), top = plot.valToPos(y, "y", true);
    const ctx = el.querySelector("canvas").getContext("2d");
    const pixels = ctx.getImageData(Math.round(left), Math.round(top) - 3, 1, 7).data;
    let stroke = false;
    for (let i = 0; i < pixels.length; i += 4) {
        const [r, g, b, a] = pixels.slice(i, i + 4);
        if (a > 200 && b > 180 && r < 120) stroke = true;  // the line's #2563eb
    }
    const [r, g, b, a] = ctx.getImageData(Math.round(left), Math.round(top) + 8, 1, 1).data;
    return {stroke, band: a > 0 && b > r};
}"""


async def test_booleans_and_enums_are_drawn_as_steps_between_states(
    running, open_dashboard, keep_screenshot
):
    running.add_client("vera", "consumer", "viewer")
    td = desk_lamp_td()  # with a mode (an enum) and a note (free text: not drawn)
    td["properties"]["mode"] = {
        "type": "string",
        "enum": ["off", "eco", "comfort"],
        "forms": [{"href": "https://lamp.local/mode"}],
    }
    td["properties"]["note"] = {"type": "string", "forms": [{"href": "https://lamp.local/n"}]}
    conn = await register(running, td=td)
    switched = {40: False, 30: True, 20: False, 10: True}  # minutes ago
    for minutes, value in switched.items():
        await notify(conn, "observeproperty", "on", value, ago=minutes * MINUTE)
    for minutes, value in {30: "eco", 15: "comfort"}.items():
        await notify(conn, "observeproperty", "mode", value, ago=minutes * MINUTE)
    ui, _ = await open_thing(running, open_dashboard, "vera")

    on = ui.page.locator(ON)
    await ui.page.locator(f'{ON}[data-points="4"]').wait_for()
    shown = await on.evaluate(SHOWN)
    assert shown["y"] == [0, 1, 0, 1]  # places in [false, true]
    assert await on.evaluate("el => el.chart.plot.axes[1]._values") == ["false", "true"]
    # a step: "true" holds from its time to the next value's (a line would be halfway
    # down at the middle), with the band filled under it
    x = shown["x"]
    element = await on.element_handle()
    middle = await ui.page.evaluate(PIXEL, [element, (x[1] + x[2]) / 2, 1])
    assert middle == {"stroke": True, "band": True}
    halfway = await ui.page.evaluate(PIXEL, [element, (x[1] + x[2]) / 2, 0.5])
    assert halfway["stroke"] is False

    mode = ui.page.locator(MODE)
    await ui.page.locator(f'{MODE}[data-points="2"]').wait_for()
    assert (await mode.evaluate(SHOWN))["y"] == [1, 2]
    assert await mode.evaluate("el => el.chart.plot.axes[1]._values") == ["off", "eco", "comfort"]
    await notify(conn, "observeproperty", "mode", "off")  # live
    await ui.page.locator(f'{MODE}[data-points="3"]').wait_for()
    assert (await mode.evaluate(SHOWN))["y"] == [1, 2, 0]
    assert await ui.page.locator('[data-property="note"] .history-chart').count() == 0
    brightness = ui.page.locator('[data-property="brightness"] .history-chart')  # none kept
    await brightness.locator(".chart-message:text-is('No values in this range yet.')").wait_for()
    assert await brightness.locator(".chart-plot").is_hidden()
    await notify(conn, "observeproperty", "brightness", 40)  # the first: the plot shows, card-wide
    await ui.page.locator('[data-property="brightness"] .history-chart[data-points="1"]').wait_for()
    await ui.page.wait_for_function(
        "el => el.querySelector('canvas').width > 200", arg=await brightness.element_handle()
    )
    assert await brightness.locator(".chart-message").inner_text() == ""
    await keep_screenshot(ui, "states")
    assert ui.errors == []
    await conn.close()
