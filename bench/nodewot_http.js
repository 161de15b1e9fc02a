// node-wot's own HTTP server as a peer of the hub in bench/http.py (readproperty).
//
// One Thing with a read-only number property, served by @node-wot/binding-http over
// HTTPS with the key and certificate given (issued by a CA of the bench), HTTP Basic
// checked on every request against the Servient's credentials. (Bearer cannot be used:
// node-wot 0.9.2 accepts only the scheme "bearer" in a TD and then checks credentials
// only for "Bearer", so every bearer request is refused with 401.)
//
// It speaks bench/_harness.py's ServerProcess protocol: a hello as one JSON line on
// stdout, then one JSON line for each command read from stdin ("cpu": its CPU seconds
// so far; "quit" or the end of stdin ends it).
//
//   NODE_PATH=tests/interop/nodewot/node_modules node bench/nodewot_http.js KEY CERT THING
"use strict";

const readline = require("node:readline");
const { Servient } = require("@node-wot/core");
const { HttpServer } = require("@node-wot/binding-http");

const [key, cert, thingId] = process.argv.slice(2);
const user = "bench-viewer";
const password = "bench password, not a secret";

function say(fields) {
    process.stdout.write(JSON.stringify(fields) + "\n");
}

async function main() {
    const server = new HttpServer({
        address: "127.0.0.1",
        port: 0,
        serverKey: key,
        serverCert: cert,
        security: [{ scheme: "basic" }],
    });
    const servient = new Servient();
    servient.addServer(server);
    servient.addCredentials({ [thingId]: { username: user, password } });
    const WoT = await servient.start();
    const thing = await WoT.produce({
        id: thingId,
        title: "Thermostat",
        securityDefinitions: { basic_sc: { scheme: "basic", in: "header" } },
        security: "basic_sc",
        properties: { temperature: { type: "number", readOnly: true } },
    });
    const value = 21.5;
    thing.setPropertyReadHandler("temperature", async () => value);
    await thing.expose();

    say({
        url: `https://127.0.0.1:${server.getPort()}`,
        path: `/${encodeURIComponent(thingId)}/properties/temperature`,
        authorization: "Basic " + Buffer.from(`${user}:${password}`).toString("base64"),
        pid: process.pid,
    });
    const commands = readline.createInterface({ input: process.stdin });
    for await (const line of commands) {
        const command = line.trim().split(/\s+/)[0];
        if (command === "quit") break;
        if (command === "cpu") {
            const usage = process.cpuUsage();
            say({ cpu: (usage.user + usage.system) / 1e6, subscribers: 0 });
        } else {
            say({ error: `unknown command ${command}` });
        }
    }
    await servient.shutdown();
    process.exit(0);
}

main().catch((error) => {
    say({ error: String(error && error.stack ? error.stack : error) });
    process.exit(1);
});
