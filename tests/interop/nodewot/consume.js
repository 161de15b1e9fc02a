// node-wot (Eclipse Thingweb) as a consumer of the hub's twin TDs, run by
// tests/interop/test_nodewot.py against a real hub.
//
//   node consume.js validate   every TD of the directory: node-wot's TD validation, consume,
//                              and a client with security for every form it can use
//   node consume.js http       the lamp over HTTPS: read, write, invoke (sync and async,
//                              then query the action), subscribe to an event, observe a
//                              property (the long-poll forms)
//   node consume.js mqtt       the lamp over MQTT: read (retained), observe, subscribe
//   node consume.js demo       every demo twin (`wothub demo`) over HTTPS: observe every
//                              observable property and subscribe every event, then read
//                              every readable property, write every writable one and
//                              invoke every action, until every observation and
//                              subscription has had a value
//
// Environment: HUB_URL (https://127.0.0.1:port), HUB_TOKEN (a bearer token), THING_ID,
// MQTT_USER (the client id, for MQTT), NODE_EXTRA_CA_CERTS (the hub CA).
// stdout: one JSON object with what was seen; failures exit 1 with the error on stderr.
// node-wot logs through `debug`: run with DEBUG=node-wot:*:warn,node-wot:*:error to see
// its warnings on stderr (the test checks none is about forms or security).
"use strict";

const HUB_URL = process.env.HUB_URL;
const TOKEN = process.env.HUB_TOKEN;
const THING_ID = process.env.THING_ID;
const TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 10000);

const { Servient } = require("@node-wot/core");
const { isThingDescription, getLastValidationErrors } = require("@node-wot/core/dist/validation");
const { HttpsClientFactory } = require("@node-wot/binding-http");

function withTimeout(promise, what, ms = TIMEOUT_MS) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function fetchThings() {
    const response = await fetch(`${HUB_URL}/things?limit=1000`, {
        headers: { Authorization: `Bearer ${TOKEN}`, Accept: "application/json" },
    });
    if (response.status !== 200) {
        throw new Error(`GET /things: ${response.status} ${await response.text()}`);
    }
    return response.json();
}

async function start(factories, tds) {
    const servient = new Servient();
    for (const factory of factories) servient.addClientFactory(factory);
    const credentials = {};
    for (const td of tds) credentials[td.id] = { token: TOKEN };
    servient.addCredentials(credentials);
    const WoT = await servient.start();
    return { servient, WoT };
}

// The values of an observation or subscription, until `count` arrived.
function collect(count) {
    const values = [];
    let done;
    const finished = new Promise((resolve) => (done = resolve));
    const listener = async (output) => {
        try {
            values.push(await output.value());
        } catch (err) {
            values.push({ error: String(err) });
        }
        if (values.length === count) done(values);
    };
    return { listener, finished, values };
}

async function observeAndSubscribe(thing, result) {
    const temperatures = collect(2);
    const subscription = await withTimeout(
        thing.observeProperty("temperature", temperatures.listener),
        "observeProperty temperature",
    );
    result.observed = await withTimeout(temperatures.finished, "two temperature values");
    await subscription.stop();

    const events = collect(1);
    const eventSubscription = await withTimeout(
        thing.subscribeEvent("overheated", events.listener),
        "subscribeEvent overheated",
    );
    result.events = await withTimeout(events.finished, "an overheated event");
    await eventSubscription.stop();
}

// -- validate ---------------------------------------------------------------------------

const AFFORDANCES = { properties: 0, actions: 1, events: 2 };

async function validate() {
    const tds = await fetchThings();
    const factories = [new HttpsClientFactory()];
    try {
        const { MqttsClientFactory } = require("@node-wot/binding-mqtt");
        factories.push(new MqttsClientFactory({ rejectUnauthorized: true }));
    } catch (err) {
        process.stderr.write(`binding-mqtt not available: ${err}\n`);
    }
    const { servient, WoT } = await start(factories, tds);
    const schemes = new Set(factories.map((f) => f.scheme));
    const result = { things: [] };
    for (const td of tds) {
        const report = { id: td.id, valid: isThingDescription(td), clients: 0, skipped: [] };
        if (!report.valid) report.errors = String(getLastValidationErrors().message);
        try {
            const thing = await WoT.consume(td);
            report.consumed = true;
            // A client, with the TD's security set up, for every form of every affordance.
            for (const [member, kind] of Object.entries(AFFORDANCES)) {
                for (const [name, affordance] of Object.entries(td[member] || {})) {
                    affordance.forms.forEach((form, index) => {
                        const scheme = new URL(form.href).protocol.slice(0, -1);
                        if (!schemes.has(scheme)) {
                            report.skipped.push(scheme);
                            return;
                        }
                        const ops = [].concat(form.op || []);
                        const { client } = thing.getClientFor(affordance.forms, ops[0], kind, {
                            formIndex: index,
                        });
                        if (client == null) throw new Error(`no client for ${name} form ${index}`);
                        report.clients += 1;
                    });
                }
            }
        } catch (err) {
            report.consumed = false;
            report.error = String(err);
        }
        report.skipped = [...new Set(report.skipped)];
        result.things.push(report);
    }
    await servient.shutdown();
    return result;
}

// -- http -------------------------------------------------------------------------------

async function http() {
    const tds = await fetchThings();
    const td = tds.find((t) => t.id === THING_ID);
    if (td == null) throw new Error(`${THING_ID} is not in the directory`);
    const factory = new HttpsClientFactory();
    const { servient, WoT } = await start([factory], tds);
    const thing = await WoT.consume(td);
    const result = {};

    result.brightness = await (await thing.readProperty("brightness")).value();
    await thing.writeProperty("brightness", 42);
    result.brightnessAfterWrite = await (await thing.readProperty("brightness")).value();
    result.all = {};
    for (const [name, output] of await thing.readAllProperties()) {
        result.all[name] = await output.value();
    }

    // Synchronous: the device answers within the hub's wait, 200 with the output.
    result.fade = await (await thing.invokeAction("fade", { level: 7 })).value();

    // Asynchronous (synchronous: false in the TD): 201 + Location and an ActionStatus;
    // node-wot's ActionInteractionOutput.query() is not implemented, so the status is
    // read from its href with node-wot's own HTTP client and the TD's bearer scheme.
    const accepted = await thing.invokeAction("calibrate", { passes: 2 });
    const status = JSON.parse(Buffer.from(await accepted.arrayBuffer()).toString());
    result.calibrateAccepted = status;
    const client = servient.getClientFor("https");
    client.setSecurity([td.securityDefinitions.bearer_sc], { token: TOKEN });
    let last = status;
    for (let i = 0; i < 100 && last.status !== "completed" && last.status !== "failed"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        const content = await client.readResource({
            href: status.href,
            contentType: "application/json",
        });
        last = JSON.parse((await content.toBuffer()).toString());
    }
    result.calibrateFinal = last;

    await observeAndSubscribe(thing, result);
    await servient.shutdown();
    return result;
}

// -- mqtt -------------------------------------------------------------------------------

async function mqtt() {
    const { MqttsClientFactory } = require("@node-wot/binding-mqtt");
    const tds = await fetchThings();
    const td = tds.find((t) => t.id === THING_ID);
    if (td == null) throw new Error(`${THING_ID} is not in the directory`);
    // The TD's scheme is the hub's bearer token, which node-wot's MQTT client does not
    // map to anything; the hub takes the token as the MQTT password. The MQTT client id
    // must be the hub client id (or start with it and "/").
    const factory = new MqttsClientFactory({
        username: process.env.MQTT_USER,
        password: TOKEN,
        clientId: `${process.env.MQTT_USER}/nodewot-${process.pid}`,
        rejectUnauthorized: true,
        reconnectPeriod: 0,
    });
    const { servient, WoT } = await start([factory], tds);
    const thing = await WoT.consume(td);
    const result = {};
    result.brightness = await withTimeout(
        thing.readProperty("brightness").then((output) => output.value()),
        "readProperty brightness over MQTT",
    );
    await observeAndSubscribe(thing, result);
    await servient.shutdown();
    return result;
}


// -- demo -------------------------------------------------------------------------------

const DEMO_PREFIX = "urn:wothub:demo:";

// What to write to each writable property and invoke each action with, and what makes
// the demo devices notify: every write and action is one the devices answer.
const WRITES = {
    "urn:wothub:demo:thermostat": { mode: "heat" }, // setpoint: see reachSetpoint
    "urn:wothub:demo:lamp": { brightness: 35, on: true },
    "urn:wothub:demo:door": { armed: false },
};
const INPUTS = {
    "urn:wothub:demo:thermostat": { boost: 1 },
    "urn:wothub:demo:lamp": { toggle: undefined, fade: { level: 80 } },
    "urn:wothub:demo:door": { selfTest: undefined },
};

async function valueOf(promise, what) {
    return (await withTimeout(promise, what)).value();
}

// setpointReached fires when the temperature comes within 0.2 of the setpoint: move the
// setpoint away (not reached), wait for a temperature step, then set it to the current
// temperature (the next step reaches it).
async function reachSetpoint(thing, report) {
    const id = thing.getThingDescription().id;
    const temperature = await valueOf(thing.readProperty("temperature"), `${id} temperature`);
    await withTimeout(thing.writeProperty("setpoint", Math.min(30, temperature + 3)), "setpoint");
    const before = temperature;
    for (let i = 0; i < 50; i++) {
        const now = await valueOf(thing.readProperty("temperature"), `${id} temperature`);
        if (now !== before) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const now = await valueOf(thing.readProperty("temperature"), `${id} temperature`);
    const setpoint = Math.round(now * 100) / 100;
    await withTimeout(thing.writeProperty("setpoint", setpoint), "setpoint");
    report.written.setpoint = await valueOf(thing.readProperty("setpoint"), "setpoint back");
}

async function demo() {
    const tds = (await fetchThings()).filter((td) => td.id.startsWith(DEMO_PREFIX));
    if (tds.length === 0) throw new Error("no demo twins in the directory");
    const { servient, WoT } = await start([new HttpsClientFactory()], tds);
    const result = { things: {} };
    const waits = [];
    const subscriptions = [];
    const consumed = [];
    for (const td of tds) {
        const thing = await WoT.consume(td);
        const report = { read: {}, written: {}, invoked: {}, observed: {}, events: {} };
        result.things[td.id] = report;
        consumed.push({ td, thing, report });
        // Observations and subscriptions first: what the writes and actions cause arrives.
        for (const [name, property] of Object.entries(td.properties || {})) {
            if (!property.observable || property.writeOnly) continue;
            const values = collect(1);
            report.observed[name] = values.values;
            subscriptions.push(
                await withTimeout(thing.observeProperty(name, values.listener), `observe ${name}`),
            );
            waits.push(withTimeout(values.finished, `a value of ${td.id} ${name}`, 45000));
        }
        for (const name of Object.keys(td.events || {})) {
            const values = collect(1);
            report.events[name] = values.values;
            subscriptions.push(
                await withTimeout(thing.subscribeEvent(name, values.listener), `subscribe ${name}`),
            );
            waits.push(withTimeout(values.finished, `an event ${td.id} ${name}`, 45000));
        }
    }
    for (const { td, thing, report } of consumed) {
        for (const [name, property] of Object.entries(td.properties || {})) {
            if (property.writeOnly) continue;
            report.read[name] = await valueOf(thing.readProperty(name), `read ${td.id} ${name}`);
        }
        for (const [name, value] of Object.entries(WRITES[td.id] || {})) {
            await withTimeout(thing.writeProperty(name, value), `write ${td.id} ${name}`);
            report.written[name] = await valueOf(thing.readProperty(name), `read back ${name}`);
        }
        if (td.properties && td.properties.setpoint) await reachSetpoint(thing, report);
        for (const [name, input] of Object.entries(INPUTS[td.id] || {})) {
            const output = thing.invokeAction(name, input);
            report.invoked[name] = await valueOf(output, `invoke ${td.id} ${name}`);
        }
    }
    await Promise.all(waits);
    for (const subscription of subscriptions) await subscription.stop();
    await servient.shutdown();
    return result;
}

const scenarios = { validate, http, mqtt, demo };

async function main() {
    const scenario = scenarios[process.argv[2]];
    if (scenario == null) throw new Error(`usage: node consume.js ${Object.keys(scenarios)}`);
    const result = await withTimeout(scenario(), `scenario ${process.argv[2]}`, 90000);
    process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
    () => process.exit(0),
    (err) => {
        process.stderr.write(`FAILED: ${err && err.stack ? err.stack : err}\n`);
        process.exit(1);
    },
);
